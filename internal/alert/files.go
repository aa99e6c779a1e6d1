package alert

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
)

// maxSecretFile and maxCAFile bound what is read from a configured file.
const (
	maxSecretFile = 4 << 10
	maxCAFile     = 1 << 20
	minWebhookKey = 16
)

// CheckFiles checks the files a channel names: a password or secret file
// is a regular file that group and others cannot access, and not empty (a
// webhook secret at least 16 bytes); a CA file holds at least one PEM
// certificate. Dispatcher reads them again at each delivery, so a rotated
// secret is picked up without a restart.
func (c Channel) CheckFiles() error {
	var err error
	switch {
	case c.Email != nil:
		if c.Email.PasswordFile != "" {
			_, err = readSecret(c.Email.PasswordFile, 1)
		}
		if err == nil && c.Email.CAFile != "" {
			_, err = readCAs(c.Email.CAFile)
		}
	case c.Webhook != nil:
		_, err = readSecret(c.Webhook.SecretFile, minWebhookKey)
		if err == nil && c.Webhook.CAFile != "" {
			_, err = readCAs(c.Webhook.CAFile)
		}
	}
	if err != nil {
		return fmt.Errorf("channel %s: %w", c.Name, err)
	}
	return nil
}

// readSecret reads a secret file: a regular file of mode 0600 or stricter,
// at most 4 KiB, one trailing newline ("\n" or "\r\n") dropped, at least
// minLen bytes after that. The error never contains the secret.
func readSecret(path string, minLen int) ([]byte, error) {
	f, err := os.Open(path) // #nosec G304 -- a file the administrator configured
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secret file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: secret file %s is not a regular file", ErrInsecure, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: secret file %s has mode %04o; it must not be accessible to group or others (chmod 600)", ErrInsecure, path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("secret file %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%w: secret file %s is over %d bytes", ErrInvalid, path, maxSecretFile)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) < minLen {
		return nil, fmt.Errorf("%w: secret file %s holds %d bytes; at least %d needed", ErrInvalid, path, len(b), minLen)
	}
	return b, nil
}

// readCAs reads a PEM bundle into a pool.
func readCAs(path string) (*x509.CertPool, error) {
	f, err := os.Open(path) // #nosec G304 -- a file the administrator configured
	if err != nil {
		return nil, fmt.Errorf("ca file: %w", err)
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("ca file %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if len(b) > maxCAFile || !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w: ca file %s holds no PEM certificate (or is over 1 MiB)", ErrInvalid, path)
	}
	return pool, nil
}

// tlsConfig is the client TLS configuration for serverName: TLS 1.2 or
// later, and the CAs of caFile when it is set (the system's otherwise).
func tlsConfig(serverName, caFile string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := readCAs(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// ReadSecretFile reads a secret as a channel's files are read (a regular
// file of mode 0600 or stricter, at most 4 KiB, one trailing newline
// dropped, at least minLen bytes): the CLI reads an SMTP password or a
// webhook key with it before sending it to the server.
func ReadSecretFile(path string, minLen int) ([]byte, error) {
	return readSecret(path, max(minLen, 1))
}

// MinWebhookKey is the least length of a webhook's HMAC key.
const MinWebhookKey = minWebhookKey
