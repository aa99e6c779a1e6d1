package enroll

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Sentinel errors of the client.
var (
	// ErrNoEnrollment: the server did not negotiate the enrollment protocol.
	ErrNoEnrollment = errors.New("server does not offer enrollment")
	// ErrBadAnswer: the server's certificate does not fit the request
	// (another key, name or CA than the one checked).
	ErrBadAnswer = errors.New("server answered with an unusable certificate")
	// ErrRefused: the server refused the request; the error carries its
	// status and message.
	ErrRefused = errors.New("server refused")
	// ErrRateLimited: the server answered 429 (too many enrollment attempts)
	// to every attempt; the token was not used.
	ErrRateLimited = errors.New("server is limiting enrollment attempts")
)

// Defaults of the retries of a rate-limited enrollment.
const (
	DefaultAttempts = 6
	// DefaultMaxWait bounds one wait, whatever the server's Retry-After says.
	DefaultMaxWait = time.Minute
)

// Options tune the client. Zero values select the defaults.
type Options struct {
	// Policy is the TLS policy (default tlspolicy.Default()).
	Policy *tlspolicy.Policy
	// Timeout bounds one attempt (default 30s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Attempts bounds the attempts of Enroll when the server answers 429
	// (default DefaultAttempts). Between attempts Enroll waits the
	// server's Retry-After, or else 1s doubling each time, at most MaxWait.
	Attempts int
	// MaxWait bounds one wait between attempts (default DefaultMaxWait).
	MaxWait time.Duration
	// Waiting, if set, is told before each wait (the attempt that was
	// refused and how long Enroll waits), so a command can say so.
	Waiting func(attempt int, wait time.Duration)
	// LocalAddr, if set, is the local address to connect from (nil: the
	// system's choice), for a host with several addresses; the fleet
	// benchmark gives each simulated host its own loopback address, as
	// the server's per-source limits expect of distinct hosts.
	LocalAddr net.Addr
	// sleep waits d or until ctx is done (tests shorten it).
	sleep func(ctx context.Context, d time.Duration) error
}

func (o *Options) defaults() {
	if o.Policy == nil {
		p := tlspolicy.Default()
		o.Policy = &p
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Attempts <= 0 {
		o.Attempts = DefaultAttempts
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.sleep == nil {
		o.sleep = sleepCtx
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryLater is a 429 answer: the server asks to come back after a while.
type retryLater struct {
	after  time.Duration // 0: the server did not say
	status string
}

func (e *retryLater) Error() string { return fmt.Sprintf("%v (%s)", ErrRateLimited, e.status) }
func (e *retryLater) Unwrap() error { return ErrRateLimited }

// backoff is the wait before attempt n+1 after attempt n was refused.
func backoff(n int, retryAfter, maxWait time.Duration) time.Duration {
	d := time.Second << min(n-1, 6)
	if retryAfter > 0 {
		d = retryAfter
	}
	return min(d, maxWait)
}

// Identity is an enrolled identity as PEM, ready for pki.WriteIdentity.
type Identity struct {
	KeyPEM, CertPEM, CAPEM []byte
	ClientName             string
	// User marks a person's identity (a user certificate, from a user token).
	User     bool
	NotAfter time.Time
	// PolicyPub is the server's policy signing key, to pin; nil from a
	// server that sent none.
	PolicyPub ed25519.PublicKey
}

// Enroll makes a new key pair, connects to addr (host:port) offering only
// the enrollment protocol, and checks the server's chain against the
// token's CA fingerprint during the handshake: a server that does not
// match gets nothing (errors wrap pki.ErrFingerprintMismatch or
// pki.ErrServerNotTrusted). Only then does it send the token and a CSR.
// A server that answers 429 is asked again after its Retry-After (or an
// exponential backoff), up to opts.Attempts times; then the error wraps
// ErrRateLimited. The returned identity pins the CA whose fingerprint was
// checked; the key never leaves this process.
func Enroll(ctx context.Context, addr string, tok *pki.Token, opts Options) (*Identity, error) {
	opts.defaults()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("enroll: server address %q: %w", addr, err)
	}
	encoded, err := tok.Encode()
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	key, err := pki.NewClientKey()
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(key, tok.ClientName)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(Request{Token: encoded, CSR: encodeCSR(csr)})
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	start := opts.Now()
	for attempt := 1; ; attempt++ {
		ans, ca, err := enrollOnce(ctx, addr, host, tok, body, opts)
		var later *retryLater
		if errors.As(err, &later) {
			if attempt >= opts.Attempts {
				return nil, fmt.Errorf("enroll with %s: %w: gave up after %d attempts in %s (the token was not used; try again later)",
					addr, later, attempt, opts.Now().Sub(start).Round(time.Second))
			}
			wait := backoff(attempt, later.after, opts.MaxWait)
			if opts.Waiting != nil {
				opts.Waiting(attempt, wait)
			}
			if err := opts.sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("enroll with %s: %w", addr, err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("enroll with %s: %w", addr, err)
		}
		cert, err := checkAnswer(ans.CertPEM, ca, key, tok.ClientName, tok.User, opts.Now())
		if err != nil {
			return nil, fmt.Errorf("enroll with %s: %w", addr, err)
		}
		keyPEM, err := pki.EncodeKeyPEM(key)
		if err != nil {
			return nil, err
		}
		return &Identity{KeyPEM: keyPEM, CertPEM: ans.CertPEM, CAPEM: pki.EncodeCertPEM(ca.Raw), ClientName: tok.ClientName, User: tok.User,
			NotAfter: cert.NotAfter, PolicyPub: ans.PolicyPub}, nil
	}
}

// enrollOnce makes one attempt: connect, check the CA, post the request.
// It returns the certificate and the CA it was checked against.
func enrollOnce(ctx context.Context, addr, host string, tok *pki.Token, body []byte, opts Options) (*Answer, *x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	conf := opts.Policy.EnrollmentConfig(host, pki.FingerprintVerifier(host, tok.CAFingerprint, opts.Now))
	conn, err := dial(ctx, addr, conf, opts.LocalAddr)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	cs := conn.ConnectionState()
	if cs.NegotiatedProtocol != tlspolicy.EnrollmentProto {
		return nil, nil, fmt.Errorf("%w (ALPN %q)", ErrNoEnrollment, cs.NegotiatedProtocol)
	}
	ca, err := pki.VerifyServerAgainstFingerprint(cs.PeerCertificates, host, tok.CAFingerprint, opts.Now())
	if err != nil {
		return nil, nil, err
	}
	ans, err := post(ctx, conn, addr, EnrollPath, body)
	return ans, ca, err
}

// Renew asks the server at addr, over mutual TLS with the current
// certificate of id, for a new certificate for the same key. The answer
// must name the same principal (a host, or a person: a user certificate
// renews the same way) and chain to the pinned CA. It returns the new
// certificate as PEM; the server has revoked the old one when it answers.
func Renew(ctx context.Context, addr string, id *pki.Identity, opts Options) ([]byte, error) {
	opts.defaults()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("renew: server address %q: %w", addr, err)
	}
	kind, name, err := pki.PrincipalOf(id.Cert)
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	csr, err := pki.NewCSR(id.Key, name)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(RenewRequest{CSR: encodeCSR(csr)})
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	conf := opts.Policy.ClientConfig(id.TLSCertificate(), id.CAPool(), host)
	conf.NextProtos = []string{"http/1.1"}
	conf.ClientSessionCache = nil
	conn, err := dial(ctx, addr, conf, opts.LocalAddr)
	if err != nil {
		return nil, fmt.Errorf("renew with %s: %w", addr, err)
	}
	defer conn.Close()
	ans, err := post(ctx, conn, addr, RenewPath, body)
	if err != nil {
		return nil, fmt.Errorf("renew with %s: %w", addr, err)
	}
	if _, err := checkAnswer(ans.CertPEM, id.CA, id.Key, name, kind == pki.KindUser, opts.Now()); err != nil {
		return nil, fmt.Errorf("renew with %s: %w", addr, err)
	}
	return ans.CertPEM, nil
}

// RenewIfDue loads the identity in dir and, once its certificate has
// passed two thirds of its lifetime (pki.NeedsRenewal), renews it with the
// server at addr, keeping the key: only client.crt changes, atomically. It
// returns the identity to use and whether it was renewed. On a failed
// renewal it returns the current identity with the error; the caller may
// go on while the certificate is still valid.
func RenewIfDue(ctx context.Context, dir, addr string, opts Options) (*pki.Identity, bool, error) {
	opts.defaults()
	id, err := pki.LoadIdentity(dir)
	if err != nil {
		return nil, false, err
	}
	if !pki.NeedsRenewal(id.Cert, opts.Now()) {
		return id, false, nil
	}
	certPEM, err := Renew(ctx, addr, id, opts)
	if err != nil {
		return id, false, err
	}
	keyPEM, err := pki.EncodeKeyPEM(id.Key)
	if err != nil {
		return id, false, err
	}
	if err := pki.WriteIdentity(dir, keyPEM, certPEM, pki.EncodeCertPEM(id.CA.Raw)); err != nil {
		return id, false, fmt.Errorf("save renewed certificate: %w", err)
	}
	nid, err := pki.LoadIdentity(dir)
	if err != nil {
		return nil, false, err
	}
	return nid, true, nil
}

func dial(ctx context.Context, addr string, conf *tls.Config, local net.Addr) (*tls.Conn, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second, LocalAddr: local}, Config: conf}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		_ = c.Close()
		return nil, errors.New("dial: not a TLS connection")
	}
	return tc, nil
}

// post sends one HTTP/1.1 request on conn and returns a successful answer.
func post(ctx context.Context, conn *tls.Conn, addr, path string, body []byte) (*Answer, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Close = true
	if err := req.Write(conn); err != nil {
		return nil, fmt.Errorf("send request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests {
		return nil, &retryLater{after: parseRetryAfter(resp.Header.Get("Retry-After")), status: resp.Status}
	}
	if resp.StatusCode != http.StatusOK {
		var eb wire.ErrorBody
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		if json.Unmarshal(b, &eb) != nil || eb.Message == "" || len(eb.Message) > 512 || !utf8.ValidString(eb.Message) {
			return nil, fmt.Errorf("%w (%s)", ErrRefused, resp.Status)
		}
		return nil, fmt.Errorf("%w (%s): %s", ErrRefused, resp.Status, printable(eb.Message))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	return ParseAnswer(b)
}

// parseRetryAfter reads a Retry-After of delay-seconds; anything else
// (an HTTP date included) is 0, the caller's own backoff.
func parseRetryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(min(n, 24*3600)) * time.Second
}

// checkAnswer accepts a certificate only for our key and name, issued by
// the CA we checked, for client authentication, valid now.
func checkAnswer(certPEM []byte, ca *x509.Certificate, key crypto.Signer, name string, user bool, now time.Time) (*x509.Certificate, error) {
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: it is not for our key", ErrBadAnswer)
	}
	wantKind := pki.KindClient
	if user {
		wantKind = pki.KindUser
	}
	if kind, got, err := pki.PrincipalOf(cert); err != nil || got != name || kind != wantKind {
		return nil, fmt.Errorf("%w: it does not name %s %q", ErrBadAnswer, wantKind, name)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadAnswer, err)
	}
	return cert, nil
}

// printable drops control characters from a server's message before it
// reaches a terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// SaveIdentity writes an enrolled identity to dir: client.key, client.crt
// and ca.crt (pki.WriteIdentity), the server address addr (pki.ServerFile)
// and the policy key the server sent (policy.pub), or removes a policy.pub
// left from an earlier identity when it sent none.
func SaveIdentity(dir, addr string, id *Identity) error {
	if err := pki.WriteIdentity(dir, id.KeyPEM, id.CertPEM, id.CAPEM); err != nil {
		return err
	}
	if err := pki.WriteServerAddr(dir, addr); err != nil {
		return err
	}
	if id.PolicyPub == nil {
		if err := os.Remove(filepath.Join(dir, policy.PublicKeyFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove the earlier policy key: %w", err)
		}
		return nil
	}
	return policy.WritePublicKey(dir, id.PolicyPub)
}
