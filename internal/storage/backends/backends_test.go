package backends_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/backends"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/storage/remote"
)

var ctx = context.Background()

// TestLocalLocations creates and reopens a repository through every form a
// local location takes. Not parallel: it changes the working directory.
func TestLocalLocations(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, c := range []struct{ create, open, dir string }{
		{filepath.Join(dir, "abs"), filepath.Join(dir, "abs"), "abs"},
		{"./dot:colon", "local:dot:colon", "dot:colon"},
		{"plain", "./plain", "plain"},
		{"local:" + filepath.Join(dir, "prefixed"), filepath.Join(dir, "prefixed"), "prefixed"},
	} {
		st, err := backends.Open(ctx, c.create, storage.OpenOptions{Create: true})
		if err != nil {
			t.Fatalf("create %q: %v", c.create, err)
		}
		if _, ok := st.(*local.Local); !ok || st.Location() != filepath.Join(dir, c.dir) {
			t.Fatalf("create %q: %T at %s, want local storage at %s", c.create, st, st.Location(), filepath.Join(dir, c.dir))
		}
		if _, err := backends.Open(ctx, c.open, storage.OpenOptions{}); !errors.Is(err, storage.ErrNoRepository) {
			t.Fatalf("open %q before its config exists: %v, want ErrNoRepository", c.open, err)
		}
		if err := st.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("c")); err != nil {
			t.Fatal(err)
		}
		_ = st.Close()
		again, err := backends.Open(ctx, c.open, storage.OpenOptions{})
		if err != nil {
			t.Fatalf("open %q: %v", c.open, err)
		}
		if again.Location() != st.Location() {
			t.Errorf("%q opened %s, created %s", c.open, again.Location(), st.Location())
		}
		if p := storage.PropertiesOf(again); p != (storage.Properties{}) {
			t.Errorf("local properties %+v", p)
		}
		_ = again.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, "dot:colon", "data")); err != nil {
		t.Errorf("./dot:colon not created as a directory with a colon: %v", err)
	}
}

func TestUnknownScheme(t *testing.T) {
	t.Parallel()
	for _, loc := range []string{"sftp:user@host:/srv", "foo://bar", "rest:http://h/"} {
		_, err := backends.Open(ctx, loc, storage.OpenOptions{Create: true})
		if !errors.Is(err, storage.ErrUnknownScheme) {
			t.Fatalf("Open(%q): %v, want ErrUnknownScheme", loc, err)
		}
		if !strings.Contains(err.Error(), "known: local, coffer, s3;") {
			t.Errorf("Open(%q): %q does not name the known schemes", loc, err)
		}
	}
	if got := strings.Join(backends.New().Schemes(), ","); got != "local,coffer,s3" {
		t.Errorf("built-in schemes %s", got)
	}
}

func TestRemoteLocations(t *testing.T) {
	t.Parallel()
	if _, err := backends.Open(ctx, "coffer://backup.example.com/main", storage.OpenOptions{}); !errors.Is(err, backends.ErrNoRemoteTLS) {
		t.Errorf("coffer:// without RemoteTLS: %v, want ErrNoRemoteTLS", err)
	}
	if _, err := backends.Open(ctx, "coffer://host:7443/a/b", storage.OpenOptions{}); !errors.Is(err, remote.ErrURL) {
		t.Errorf("bad coffer:// URL: %v, want remote.ErrURL", err)
	}
	refused := errors.New("no identity enrolled")
	var asked string
	opts := storage.OpenOptions{RemoteTLS: func(_ context.Context, host string) (*tls.Config, error) {
		asked = host
		return nil, refused
	}}
	if _, err := backends.Open(ctx, "coffer://backup.example.com/main", opts); !errors.Is(err, refused) {
		t.Errorf("RemoteTLS error not passed on: %v", err)
	}
	if asked != "backup.example.com:"+remote.DefaultPort {
		t.Errorf("RemoteTLS asked for %q", asked)
	}
	// A configuration that does not pin a CA is refused before any dial.
	opts.RemoteTLS = func(context.Context, string) (*tls.Config, error) {
		return &tls.Config{MinVersion: tls.VersionTLS12}, nil
	}
	if _, err := backends.Open(ctx, "coffer://127.0.0.1:1/main", opts); !errors.Is(err, remote.ErrInsecureTLS) {
		t.Errorf("unpinned TLS configuration: %v, want ErrInsecureTLS", err)
	}
}
