package agent

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/regfile"
)

// ServerFile names the file in the identity directory that holds the
// server the identity enrolled with: one line HOST:PORT.
const ServerFile = "server"

// identity is what the agent reads from its identity directory at start.
type identity struct {
	client    string            // the certificate's client name
	server    string            // HOST:PORT
	policyKey ed25519.PublicKey // the pinned policy-signing key
}

func loadIdentity(dir string) (*identity, error) {
	id, err := pki.LoadIdentity(dir)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w (enroll first: coffer enroll)", dir, err)
	}
	name, err := id.ClientName()
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", dir, err)
	}
	server, err := ReadServer(dir)
	if err != nil {
		return nil, err
	}
	pub, err := policy.LoadPublicKey(dir)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w (written by coffer enroll with a fleet server)", dir, err)
	}
	return &identity{client: name, server: server, policyKey: pub}, nil
}

// ReadServer reads DIR/server: one line HOST:PORT.
func ReadServer(dir string) (string, error) {
	path := filepath.Join(dir, ServerFile)
	b, err := regfile.ReadFile(path, 4<<10)
	if err != nil {
		return "", fmt.Errorf("server address: %w (written by coffer enroll)", err)
	}
	s := string(bytes.TrimSuffix(b, []byte("\n")))
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || port == "" || len(s) > 300 || bytes.ContainsAny([]byte(s), " \t\r\n/") {
		return "", fmt.Errorf("server address in %s: %q is not HOST:PORT", path, s)
	}
	return s, nil
}

// WriteServer writes DIR/server (mode 0644), as coffer enroll does.
func WriteServer(dir, hostPort string) error {
	if _, _, err := net.SplitHostPort(hostPort); err != nil {
		return fmt.Errorf("server address %q: %w", hostPort, err)
	}
	return os.WriteFile(filepath.Join(dir, ServerFile), []byte(hostPort+"\n"), 0o644) // #nosec G306 -- an address, not a secret
}
