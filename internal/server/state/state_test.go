package state_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

func TestParseConfig(t *testing.T) {
	st, err := state.ParseConfig([]byte(`{"version":1,"listen":":7443"}`))
	if err != nil {
		t.Fatal(err)
	}
	if st.ClientCertTTL != state.DefaultClientCertTTL || st.Policy.MinVersion != tls.VersionTLS12 {
		t.Fatalf("defaults: %+v", st)
	}
	st, err = state.ParseConfig([]byte(`{"version":1,"listen":"127.0.0.1:9","client_cert_ttl":"720h","tls":{"min_version":"1.3"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if st.Listen != "127.0.0.1:9" || st.ClientCertTTL != 720*time.Hour || st.Policy.MinVersion != tls.VersionTLS13 {
		t.Fatalf("tightened: %+v", st)
	}
	// Loosening the policy is refused, naming the setting.
	for _, tlsSection := range []string{
		`{"min_version":"1.0"}`,
		`{"cipher_suites":["TLS_RSA_WITH_AES_128_CBC_SHA"]}`,
		`{"cipher_suites":["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"]}`,
		`{"curves":["P-521"]}`,
	} {
		_, err := state.ParseConfig([]byte(`{"version":1,"listen":":1","tls":` + tlsSection + `}`))
		if !errors.Is(err, tlspolicy.ErrLooserThanPolicy) {
			t.Errorf("%s: %v", tlsSection, err)
		}
	}
	for _, bad := range []string{
		``, `[]`, `{"version":2,"listen":":1"}`, `{"version":1}`, `{"version":1,"listen":":1","extra":true}`,
		`{"version":1,"listen":":1","client_cert_ttl":"1s"}`, `{"version":1,"listen":":1","client_cert_ttl":"soon"}`,
		`{"version":1,"listen":":1"} {}`, `{"version":1,"listen":":1","tls":{"min_versoin":"1.3"}}`,
	} {
		if _, err := state.ParseConfig([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"version":1,"listen":":7443","client_cert_ttl":"2160h","tls":{}}`))
	f.Add([]byte(`{"version":1,"listen":":7443","tls":{"min_version":"1.3","curves":["X25519"]}}`))
	f.Add([]byte(`{"version":1,"listen":":7443","tls":null}`))
	f.Add([]byte(`{"version":1,"listen":":7443","storage":"s3:https://h:9000/b/p"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := state.ParseConfig(b)
		if err != nil {
			return
		}
		if err := st.Policy.Validate(); err != nil {
			t.Fatalf("accepted a policy looser than the default: %v", err)
		}
		if st.Listen == "" || st.ClientCertTTL < state.MinClientCertTTL || st.ClientCertTTL > state.MaxClientCertTTL {
			t.Fatalf("accepted out-of-bounds settings %+v", st)
		}
	})
}

func TestInit(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	res, err := state.Init(ctx, dir, state.InitOptions{Names: []string{"backup.example", "192.0.2.7"}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.ServerNames, ",") != "backup.example,192.0.2.7" {
		t.Fatalf("names %v", res.ServerNames)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode: %v %v", fi.Mode(), err)
	}
	for _, name := range state.SecretFiles[:4] {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", name, fi.Mode(), err)
		}
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Fingerprint() != res.CAFingerprint {
		t.Fatal("reported fingerprint differs from the CA's")
	}
	kp, err := pki.LoadKeyPair(dir, pki.ServerCertFile, pki.ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.Cert.VerifyHostname("backup.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := state.LoadSettings(dir); err != nil {
		t.Fatal(err)
	}
	if err := state.CheckTree(dir); err != nil {
		t.Fatal(err)
	}
	if err := state.CheckOwner(dir); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, pki.CAKeyFile))
	if _, err := state.Init(ctx, dir, state.InitOptions{}); !errors.Is(err, state.ErrAlreadyInitialised) {
		t.Fatalf("second init: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, pki.CAKeyFile)); string(after) != string(before) {
		t.Fatal("second init replaced the CA key")
	}
}

func TestCheckSecrets(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := state.Init(context.Background(), dir, state.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{pki.CAKeyFile, pki.ServerKeyFile, state.KeyFile, state.AuditKeyFile, "state.db", "policy.key", filepath.Join(state.AdminDir, pki.ClientKeyFile)} {
		path := filepath.Join(dir, name)
		for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			err := state.CheckTree(dir)
			if !errors.Is(err, state.ErrInsecureFile) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "chmod 600 "+path) {
				t.Errorf("%s mode %o: %v", name, mode, err)
			}
		}
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Public files may be readable.
	if err := os.Chmod(filepath.Join(dir, pki.CACertFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := state.CheckTree(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := state.CheckTree(dir); !errors.Is(err, state.ErrInsecureFile) || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("world-writable directory: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

// Issue 10, item 15: every file and directory of the state tree is
// checked, not only the directory and the secrets at its top.
func TestCheckTree(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := state.Init(context.Background(), dir, state.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(dir, state.ObjectsDir, "alice", "main")
	if err := os.MkdirAll(filepath.Join(repo, "data", "ab"), 0o700); err != nil {
		t.Fatal(err)
	}
	object := filepath.Join(repo, "data", "ab", "abcd")
	if err := os.WriteFile(object, []byte("sealed"), 0o600); err != nil {
		t.Fatal(err)
	}
	segment := filepath.Join(dir, state.AuditDir, "00000001.jsonl")
	if err := os.WriteFile(segment, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := state.CheckTree(dir); err != nil {
		t.Fatalf("a sound tree: %v", err)
	}
	cases := []struct {
		path string
		mode os.FileMode
		fix  string
	}{
		{filepath.Join(dir, state.ConfigFile), 0o666, "chmod go-w "},
		{filepath.Join(dir, state.ConfigFile), 0o620, "chmod go-w "},
		{filepath.Join(dir, state.ObjectsDir), 0o777, "chmod 700 "},
		{filepath.Join(dir, state.TempDir), 0o770, "chmod 700 "},
		{filepath.Join(repo, "data"), 0o757, "chmod 700 "},
		{object, 0o602, "chmod go-w "},
		{filepath.Join(dir, state.AuditDir), 0o777, "chmod 700 "},
		{segment, 0o666, "chmod go-w "},
		{filepath.Join(dir, state.AuditPublicKeyFile), 0o646, "chmod go-w "},
		{filepath.Join(dir, pki.CACertFile), 0o666, "chmod go-w "},
	}
	for _, c := range cases {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(c.path, c.mode); err != nil {
			t.Fatal(err)
		}
		err = state.CheckTree(dir)
		if !errors.Is(err, state.ErrInsecureFile) || !strings.Contains(err.Error(), c.fix+c.path) {
			t.Errorf("%s mode %04o: %v; want the path and %q", c.path, c.mode, err, c.fix+c.path)
		}
		if err := os.Chmod(c.path, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	// Readable is fine for what is not secret.
	if err := os.Chmod(object, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := state.CheckTree(dir); err != nil {
		t.Errorf("an object readable by others (it is sealed): %v", err)
	}
	// A symbolic link below the directory is refused; the directory itself
	// may be one.
	link := filepath.Join(repo, "index")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if err := state.CheckTree(dir); !errors.Is(err, state.ErrInsecureFile) || !strings.Contains(err.Error(), link+" is a symbolic link") {
		t.Errorf("symlink in the tree: %v", err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	alias := filepath.Join(t.TempDir(), "alias")
	if err := os.Symlink(dir, alias); err != nil {
		t.Fatal(err)
	}
	if err := state.CheckTree(alias); err != nil {
		t.Errorf("state directory reached through a link: %v", err)
	}
	// Many problems are listed up to a bound, then counted.
	for i := range 30 {
		p := filepath.Join(repo, fmt.Sprintf("junk%02d", i))
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	err := state.CheckTree(dir)
	if !errors.Is(err, state.ErrInsecureFile) || !strings.Contains(err.Error(), "and 10 more problems") || !strings.Contains(err.Error(), "chmod -R go-w "+dir) {
		t.Errorf("30 problems: %v", err)
	}
}

// An interrupted initialisation (a key, no configuration) is completed
// and keeps the key; LoadKey and Lock refuse what they must.
func TestInitKeepsKeyAndChecksIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := state.LoadKey(dir); !errors.Is(err, state.ErrNotInitialised) {
		t.Fatalf("no key: %v", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, state.KeyFile)
	want := []byte("0123456789abcdef0123456789abcdef")
	if err := os.WriteFile(key, want, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := state.Init(ctx, dir, state.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	k, err := state.LoadKey(dir)
	if err != nil || string(k[:]) != string(want) {
		t.Fatalf("key after init: %v", err)
	}
	for _, sub := range []string{state.ObjectsDir, state.TempDir} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", sub, err)
		}
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := state.LoadKey(dir); !errors.Is(err, state.ErrInsecureFile) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("key mode %v: %v", mode, err)
		}
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, append(want, 'x'), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := state.LoadKey(dir); err == nil {
		t.Error("a key of 33 bytes loaded")
	}
	lock, err := state.Lock(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := state.Lock(dir); !errors.Is(err, state.ErrLocked) {
		t.Errorf("second lock: %v", err)
	}
	if err := lock.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := state.Lock(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	_ = again.Close()
}

// The audit key is made once, at init or at the first start of an older
// directory, never replaced, and refused when others may read it.
func TestEnsureAuditKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := state.LoadAuditKey(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadAuditKey of a directory without one: %v", err)
	}
	key, err := state.EnsureAuditKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	again, err := state.EnsureAuditKey(dir)
	if err != nil || !key.Equal(again) {
		t.Fatalf("second EnsureAuditKey: %v, same key %v", err, key.Equal(again))
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, state.AuditPublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pubPEM)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil || !key.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("audit.pub does not hold the key's public half: %v", err)
	}
	path := filepath.Join(dir, state.AuditKeyFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit.key mode: %v", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := state.EnsureAuditKey(dir); !errors.Is(err, state.ErrInsecureFile) {
		t.Fatalf("a group-readable key: %v, want ErrInsecureFile", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := state.EnsureAuditKey(dir); err == nil || !strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("a damaged key: %v; want it refused, not replaced", err)
	}
}

// The storage location is checked when the configuration is read; one
// with user information is refused without repeating it.
func TestParseConfigStorage(t *testing.T) {
	st, err := state.ParseConfig([]byte(`{"version":1,"listen":":7443","storage":"s3:https://s3.example.com:9000/bucket/srv/a"}`))
	if err != nil || st.Storage != "s3:https://s3.example.com:9000/bucket/srv/a" {
		t.Fatalf("storage: %q, %v", st.Storage, err)
	}
	for _, bad := range []string{"s3:ftp://h/b", "https://h/b", "s3:https://h", "s3:https://h/b/../x", "s3:https://key:secret@h/b", "/srv/objects"} {
		_, err := state.ParseConfig([]byte(`{"version":1,"listen":":7443","storage":"` + bad + `"}`))
		if !errors.Is(err, state.ErrConfig) || strings.Contains(err.Error(), "secret") {
			t.Errorf("storage %q: %v", bad, err)
		}
	}
}
