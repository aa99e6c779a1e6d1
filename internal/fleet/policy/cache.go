package policy

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/regfile"
)

// Store writes signed, a policy the agent has just verified, as its cached
// copy dir/policy.json (mode 0600), atomically and durably: a crash leaves
// the previous copy or this one.
func Store(dir string, signed []byte) error {
	if len(signed) > MaxSigned {
		return fmt.Errorf("store policy: %w: %d bytes", ErrTooLarge, len(signed))
	}
	if err := atomicfile.Write(filepath.Join(dir, CacheFile), signed, 0o600); err != nil {
		return fmt.Errorf("store policy: %w", err)
	}
	return nil
}

// Load reads the cached policy in dir and verifies it again as Verify does
// (any generation), so a cache edited or replaced on disk is refused with
// the same errors, naming the file. A missing cache is an error matching
// fs.ErrNotExist: the agent has no policy yet.
func Load(dir string, pub ed25519.PublicKey, client string) (*Policy, error) {
	path := filepath.Join(dir, CacheFile)
	f, _, err := regfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cached policy: %w", err)
	}
	defer func() { _ = f.Close() }()
	signed, err := io.ReadAll(io.LimitReader(f, MaxSigned+1))
	if err != nil {
		return nil, fmt.Errorf("cached policy %s: %w", path, err)
	}
	p, err := Verify(signed, pub, client, 0)
	if err != nil {
		return nil, fmt.Errorf("cached policy %s: %w", path, err)
	}
	return p, nil
}
