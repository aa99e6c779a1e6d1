package backends_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/backends"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestS3Locations opens s3: locations through the registry, with the
// credentials and CA file a user gives. Not parallel: it sets the AWS
// environment variables.
func TestS3Locations(t *testing.T) {
	srv := s3test.StartTLS(t)
	bucket := srv.NewBucket(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_PROFILE", "")
	loc := srv.URL(bucket, "via/registry")
	opts := storage.OpenOptions{Create: true, CACertFile: srv.CAFile}

	st, err := backends.Open(ctx, loc, opts)
	if err != nil {
		t.Fatalf("create %s: %v", loc, err)
	}
	if err := st.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("c")); err != nil {
		t.Fatal(err)
	}
	if u, ok := st.(storage.Unwrapper); !ok {
		t.Errorf("%T is not the retry decorator", st)
	} else if _, ok := u.Unwrap().(*s3.S3); !ok {
		t.Errorf("registry opened %T under the decorator", u.Unwrap())
	}
	if p := storage.PropertiesOf(st); !p.Remote {
		t.Errorf("properties %+v, want Remote", p)
	}
	if st.Location() != loc {
		t.Errorf("Location = %q, want %q", st.Location(), loc)
	}
	_ = st.Close()

	opts.Create = false
	st, err = backends.Open(ctx, loc, opts)
	if err != nil {
		t.Fatalf("open %s: %v", loc, err)
	}
	_ = st.Close()
	if _, err := backends.Open(ctx, loc, storage.OpenOptions{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("open without the CA file: %v, want a certificate error", err)
	}
	if _, err := backends.Open(ctx, srv.URL(bucket, "elsewhere"), opts); !errors.Is(err, storage.ErrNoRepository) {
		t.Errorf("open of an empty prefix: %v, want ErrNoRepository", err)
	}
	_, err = backends.Open(ctx, "s3:https://AKIAEXAMPLE:s3cr3t-value@"+srv.Endpoint+"/"+bucket, opts)
	if !errors.Is(err, s3.ErrLocation) || strings.Contains(err.Error(), "s3cr3t-value") {
		t.Errorf("location with credentials: %v, want ErrLocation without the secret", err)
	}
}
