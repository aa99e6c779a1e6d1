package enrollment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/pki/enroll"
	"github.com/coffer-backup/coffer/internal/server/enrollment"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/wire"
)

// newEnroller returns an Enroller over a fresh CA and database.
func newEnroller(t testing.TB) *enrollment.Enroller {
	t.Helper()
	db, err := serverdb.Open(context.Background(), filepath.Join(t.TempDir(), serverdb.DefaultFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ca, err := pki.NewCA("test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &enrollment.Enroller{CA: ca, DB: db, ClientTTL: time.Hour, Logger: discard}
}

// request encodes an enrollment request for tok with a fresh CSR.
func request(t testing.TB, tok *pki.Token) []byte {
	t.Helper()
	key, err := pki.NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	csr, err := pki.NewCSR(key, tok.ClientName)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(enroll.Request{Token: s, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func post(e *enrollment.Enroller, method string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, wire.EnrollPath, bytes.NewReader(body))
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	return w
}

func issue(t *testing.T, e *enrollment.Enroller, name string) *pki.Token {
	t.Helper()
	tok, err := e.CA.IssueToken(context.Background(), e.DB.Tokens(), name, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestServeHTTP(t *testing.T) {
	t.Parallel()
	e := newEnroller(t)
	ctx := context.Background()
	changed := 0
	e.Changed = func(context.Context) error { changed++; return nil }

	for _, c := range []struct {
		name, method string
		body         []byte
		status       int
	}{
		{"GET", http.MethodGet, nil, http.StatusMethodNotAllowed},
		{"over MaxBody", http.MethodPost, bytes.Repeat([]byte("x"), enroll.MaxBody+1), http.StatusRequestEntityTooLarge},
		{"not JSON", http.MethodPost, []byte("token"), http.StatusBadRequest},
		{"empty object", http.MethodPost, []byte("{}"), http.StatusBadRequest},
	} {
		if w := post(e, c.method, c.body); w.Code != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.status)
		}
	}

	// A token whose client name was edited is refused and spends nothing.
	tok := issue(t, e, "alice")
	edited := *tok
	edited.ClientName = "admin"
	if w := post(e, http.MethodPost, request(t, &edited)); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "unknown enrollment token") {
		t.Fatalf("edited token: %d %s", w.Code, w.Body)
	}
	if _, err := e.DB.Client(ctx, "admin"); err == nil {
		t.Fatal("an edited token enrolled its name")
	}
	w := post(e, http.MethodPost, request(t, tok))
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("genuine token after an edited copy: %d %s", w.Code, w.Body)
	}
	certPEM, caPEM, err := enroll.ParseResponse(w.Body.Bytes())
	if err != nil || !bytes.Equal(caPEM, e.CA.CertPEM()) {
		t.Fatalf("answer: %v", err)
	}
	cert, err := pki.ParseCertPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.DB.Client(ctx, "alice")
	if err != nil || c.CertSerial.Cmp(cert.SerialNumber) != 0 || changed != 1 {
		t.Fatalf("client record %+v %v, %d refreshes", c, err, changed)
	}
	// Spent.
	if w := post(e, http.MethodPost, request(t, tok)); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "already used") {
		t.Fatalf("reused token: %d %s", w.Code, w.Body)
	}
	// Every refusal is in the audit log, with its peer.
	evs, err := e.DB.Events(ctx, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, ev := range evs {
		if ev.Action == serverdb.ActionEnrollRefused {
			refused++
			if !strings.Contains(ev.Detail, "enrollment from ") {
				t.Errorf("refusal detail %q", ev.Detail)
			}
		}
	}
	if refused != 6 {
		t.Errorf("%d refusals logged, want 6", refused)
	}
}

// Renewal needs a verified client certificate: a request without TLS is
// refused before its body is read.
func TestRenewNeedsCertificate(t *testing.T) {
	t.Parallel()
	e := newEnroller(t)
	w := httptest.NewRecorder()
	e.Renew(w, httptest.NewRequest(http.MethodPost, enroll.RenewPath, strings.NewReader("{}")))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("renewal without a certificate: %d %s", w.Code, w.Body)
	}
}

// No body makes the enrollment endpoint fail on the server's side or
// enroll anyone without a token it issued.
func FuzzServeHTTP(f *testing.F) {
	e := newEnroller(f)
	tok, err := e.CA.IssueToken(context.Background(), e.DB.Tokens(), "alice", time.Hour, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	edited := *tok
	edited.ClientName = "mallory"
	f.Add(request(f, &edited))
	f.Add([]byte(`{"token":"cfr1.AAAA","csr":""}`))
	f.Add([]byte(`{"token":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w := post(e, http.MethodPost, body)
		if w.Code == http.StatusOK || w.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, w.Code, w.Body)
		}
		if _, err := e.DB.Client(context.Background(), "mallory"); err == nil {
			t.Fatal("an edited token enrolled")
		}
	})
}
