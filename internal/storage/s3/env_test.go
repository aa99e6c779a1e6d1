package s3_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// clearAWS empties the AWS variables the credential chain reads, for the
// rest of the test (which therefore cannot run in parallel).
func clearAWS(t *testing.T) {
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN",
		"AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_DEFAULT_REGION", "AWS_REGION", s3.EnvBucketLookup} {
		t.Setenv(v, "")
	}
	t.Setenv("HOME", t.TempDir())
}

// openFromEnv creates and reopens a repository at location with the
// configuration ConfigFromEnv reads.
func openFromEnv(t *testing.T, location, caFile string) error {
	t.Helper()
	cfg, err := s3.ConfigFromEnv(location, os.Getenv, caFile)
	if err != nil {
		return err
	}
	ctx := context.Background()
	st, err := s3.Create(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	return st.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("c"))
}

func TestCredentialsFromEnv(t *testing.T) {
	clearAWS(t)
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	loc := strings.TrimPrefix(srv.URL(bucket, "env"), "s3:")

	err := openFromEnv(t, loc, "")
	if !errors.Is(err, s3.ErrNoCredentials) {
		t.Errorf("without credentials: %v, want ErrNoCredentials", err)
	}

	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	t.Setenv("AWS_DEFAULT_REGION", "us-east-1")
	t.Setenv(s3.EnvBucketLookup, "path")
	if err := openFromEnv(t, loc, ""); err != nil {
		t.Fatalf("with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: %v", err)
	}

	t.Setenv(s3.EnvBucketLookup, "sideways")
	if err := openFromEnv(t, loc, ""); err == nil || !strings.Contains(err.Error(), s3.EnvBucketLookup) {
		t.Errorf("bad %s: %v", s3.EnvBucketLookup, err)
	}
}

func TestCredentialsFromProfile(t *testing.T) {
	clearAWS(t)
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	file := filepath.Join(t.TempDir(), "credentials")
	content := "[default]\naws_access_key_id = nobody\naws_secret_access_key = wrong-secret-value\n\n" +
		"[backup]\naws_access_key_id = " + srv.AccessKey + "\naws_secret_access_key = " + srv.SecretKey + "\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
	loc := strings.TrimPrefix(srv.URL(bucket, "profile"), "s3:")
	err := openFromEnv(t, loc, "")
	if !errors.Is(err, s3.ErrCredentials) {
		t.Errorf("default profile (wrong keys): %v, want ErrCredentials", err)
	} else if strings.Contains(err.Error(), "wrong-secret-value") {
		t.Errorf("error shows the secret: %v", err)
	}
	t.Setenv("AWS_PROFILE", "backup")
	if err := openFromEnv(t, loc, ""); err != nil {
		t.Fatalf("AWS_PROFILE=backup: %v", err)
	}
}

// TestCustomCA checks https with a certificate from a private CA: refused
// without the CA file, accepted with it.
func TestCustomCA(t *testing.T) {
	t.Parallel()
	srv := s3test.StartTLS(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	cfg := srv.Config(bucket, "tls")
	if _, err := s3.Create(ctx, cfg); err == nil || !errors.As(err, new(x509.UnknownAuthorityError)) {
		t.Errorf("without the CA: %v, want an unknown-authority error", err)
	}
	pool, err := s3.LoadCAs(srv.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RootCAs = pool
	st, err := s3.Create(ctx, cfg)
	if err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	defer func() { _ = st.Close() }()
	if !strings.HasPrefix(st.Location(), "s3:https://") {
		t.Errorf("Location = %q", st.Location())
	}
	if _, err := s3.LoadCAs(filepath.Join(t.TempDir(), "none.pem")); err == nil {
		t.Error("LoadCAs of a missing file succeeded")
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s3.LoadCAs(empty); err == nil {
		t.Error("LoadCAs of a file without certificates succeeded")
	}
}
