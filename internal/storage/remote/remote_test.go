package remote_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/servertest"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/remote"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
	"github.com/coffer-backup/coffer/internal/wire"
)

var fast = remote.Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

func TestParseURL(t *testing.T) {
	good := []struct{ in, host, repo string }{
		{"coffer://backup.example.com:7443/main", "backup.example.com:7443", "main"},
		{"coffer://backup.example.com/main", "backup.example.com:" + remote.DefaultPort, "main"},
		{"coffer://127.0.0.1:1/r_1-x", "127.0.0.1:1", "r_1-x"},
		{"coffer://[::1]:8443/r", "[::1]:8443", "r"},
		{"coffer://Host-1:65535/r", "Host-1:65535", "r"},
	}
	for _, g := range good {
		host, repo, err := remote.ParseURL(g.in)
		if err != nil || host != g.host || repo != g.repo {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", g.in, host, repo, err, g.host, g.repo)
		}
	}
	for _, bad := range []string{
		"", "coffer://", "coffer://host", "coffer://host/", "coffer://host:7443/", "coffer://host:7443/a/b",
		"coffer://host:7443/main/", "coffer://host:7443/%2e%2e", "coffer://host:7443/..", "coffer://host:7443/MAIN",
		"coffer://user@host:7443/main", "coffer://host:7443/main?x=1", "coffer://host:7443/main#f", "coffer://host:0/main",
		"coffer://host:65536/main", "coffer://host:07443/main", "coffer://host:/main", "coffer://host:x/main",
		"https://host:7443/main", "coffer:host:7443/main", "COFFER://host/main", "coffer://ho_st/main", "coffer://-h/main",
		"coffer://::1:7443/main", "coffer:///main", "coffer://host:7443/" + strings.Repeat("a", 65), "coffer://host:7443/a%00",
	} {
		if host, repo, err := remote.ParseURL(bad); !errors.Is(err, remote.ErrURL) {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want ErrURL", bad, host, repo, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"coffer://h:1/r", "coffer://[::1]:2/r", "coffer://h/r/../x", "coffer://h:1/%2e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, repo, err := remote.ParseURL(s)
		if err != nil {
			return
		}
		if wire.ValidateRepo(repo) != nil || host == "" {
			t.Fatalf("ParseURL(%q) = %q, %q", s, host, repo)
		}
		// A parsed URL rebuilds to one that parses the same.
		h2, r2, err := remote.ParseURL("coffer://" + host + "/" + repo)
		if err != nil || h2 != host || r2 != repo {
			t.Fatalf("ParseURL(%q) = %q %q, rebuilt: %q %q %v", s, host, repo, h2, r2, err)
		}
	})
}

func TestContractAppendOnly(t *testing.T) {
	env := servertest.Start(t, servertest.Options{})
	id := env.Enroll(t, "alice", nil)
	var n atomic.Int64
	storagetest.RunWithOptions(t, storagetest.Options{AppendOnly: true, RemovableKinds: server.DefaultAppendOnlyRemovable}, func(t *testing.T) storage.Storage {
		r, err := remote.CreateWithOptions(context.Background(), env.URL(fmt.Sprintf("repo%d", n.Add(1))), id.TLS, fast)
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

func TestContractAllowDelete(t *testing.T) {
	env := servertest.Start(t, servertest.Options{})
	id := env.Enroll(t, "admin", func(c *serverdb.Client) { c.AllowDelete = true })
	var n atomic.Int64
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		r, err := remote.CreateWithOptions(context.Background(), env.URL(fmt.Sprintf("repo%d", n.Add(1))), id.TLS, fast)
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

func TestOpenAndCreate(t *testing.T) {
	env := servertest.Start(t, servertest.Options{})
	id := env.Enroll(t, "alice", nil)
	ctx := context.Background()
	if _, err := remote.Open(ctx, env.URL("main"), id.TLS); !errors.Is(err, storage.ErrNoRepository) {
		t.Fatalf("Open of a missing repository: %v", err)
	}
	r, err := remote.Create(ctx, env.URL("main"), id.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Location() != env.URL("main") {
		t.Errorf("Location = %q", r.Location())
	}
	if _, err := remote.Create(ctx, env.URL("main"), id.TLS); !errors.Is(err, storage.ErrExists) {
		t.Errorf("second Create: %v", err)
	}
	if _, err := remote.Open(ctx, env.URL("main"), id.TLS); !errors.Is(err, storage.ErrNoRepository) {
		t.Errorf("Open before the config exists: %v", err)
	}
	if err := r.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("cfg")); err != nil {
		t.Fatal(err)
	}
	r2, err := remote.Open(ctx, env.URL("main"), id.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	before := time.Now()
	h := storage.Handle{Kind: storage.KindSnapshots, Name: "s1"}
	if err := r2.Save(ctx, h, []byte("snap")); err != nil {
		t.Fatal(err)
	}
	got, err := r2.Received(ctx, h)
	if err != nil || got.Before(before.Add(-time.Second)) || got.After(time.Now().Add(time.Second)) {
		t.Errorf("Received = %v, %v", got, err)
	}
	var entries []wire.Entry
	if err := r2.ListEntries(ctx, storage.KindSnapshots, func(e wire.Entry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Received == nil || !entries[0].Received.Equal(got) {
		t.Errorf("ListEntries = %+v", entries)
	}
	// Remove is forbidden for this append-only client.
	if err := r2.Remove(ctx, h); !errors.Is(err, storage.ErrForbidden) {
		t.Errorf("Remove: %v", err)
	}
}

func TestRefusesInsecureTLS(t *testing.T) {
	ctx := context.Background()
	pool := x509.NewCertPool()
	for _, conf := range []*tls.Config{nil, {RootCAs: nil}, {RootCAs: pool, InsecureSkipVerify: true}} { // #nosec G402 -- the test proves it is refused
		if _, err := remote.Create(ctx, "coffer://127.0.0.1:1/r", conf); !errors.Is(err, remote.ErrInsecureTLS) {
			t.Errorf("Create with %+v: %v", conf, err)
		}
	}
	if _, err := remote.Create(ctx, "coffer://127.0.0.1:1/a/b", &tls.Config{RootCAs: pool}); !errors.Is(err, remote.ErrURL) {
		t.Errorf("bad URL: %v", err)
	}
}

// A rogue server with its own CA: the client refuses it in the handshake,
// sends nothing, and does not retry.
func TestRogueServerRefused(t *testing.T) {
	env := servertest.Start(t, servertest.Options{})
	id := env.Enroll(t, "alice", nil)
	rogueCA, err := pki.NewCA("rogue", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kp, err := rogueCA.IssueServer([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	rogue := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	rogue.TLS = &tls.Config{Certificates: []tls.Certificate{kp.TLSCertificate(rogueCA.Cert)}, MinVersion: tls.VersionTLS12}
	rogue.StartTLS()
	defer rogue.Close()
	url := "coffer://" + strings.TrimPrefix(rogue.URL, "https://") + "/main"
	start := time.Now()
	_, err = remote.CreateWithOptions(context.Background(), url, id.TLS, remote.Options{MinBackoff: time.Second})
	if err == nil {
		t.Fatal("connected to a rogue server")
	}
	if hits.Load() != 0 {
		t.Error("a request reached the rogue server")
	}
	if time.Since(start) > 900*time.Millisecond {
		t.Errorf("a certificate failure was retried (%v)", time.Since(start))
	}
}

// fake is a minimal wire server with injectable failures.
type fake struct {
	mu      sync.Mutex
	objects map[string][]byte
	fail    map[string]int // method -> how many times to fail next
	mode    string         // "503", "drop-after-store", "cut-list"
	calls   map[string]int
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[r.Method]++
	if f.fail[r.Method] > 0 {
		f.fail[r.Method]--
		switch f.mode {
		case "503":
			w.Header().Set("Retry-After", "0")
			wire.WriteError(w, wire.ErrUnavailable)
			return
		case "drop-after-store":
			if r.Method == "PUT" {
				b := make([]byte, r.ContentLength)
				_, _ = io.ReadFull(r.Body, b)
				if _, exists := f.objects[r.URL.Path]; !exists {
					f.objects[r.URL.Path] = b
				}
			}
			if r.Method == "DELETE" {
				delete(f.objects, r.URL.Path)
			}
			panic(http.ErrAbortHandler)
		}
	}
	route, err := wire.ParseRequest(r.Method, r.RequestURI)
	if err != nil {
		wire.WriteError(w, err)
		return
	}
	switch route.Op {
	case wire.OpCreateRepo, wire.OpStatRepo:
		w.WriteHeader(204)
	case wire.OpSave:
		if _, ok := f.objects[r.URL.Path]; ok {
			wire.WriteError(w, storage.ErrExists)
			return
		}
		b := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			wire.WriteError(w, wire.ErrBadRequest)
			return
		}
		f.objects[r.URL.Path] = b
		w.WriteHeader(201)
	case wire.OpStat, wire.OpLoad:
		b, ok := f.objects[r.URL.Path]
		if !ok {
			wire.WriteError(w, storage.ErrNotFound)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Header().Set(wire.HeaderContentSHA256, sha(b))
		if f.mode == "bad-digest" {
			w.Header().Set(wire.HeaderContentSHA256, sha([]byte("other")))
		}
		w.WriteHeader(200)
		if route.Op == wire.OpLoad {
			_, _ = w.Write(b)
		}
	case wire.OpRemove:
		if _, ok := f.objects[r.URL.Path]; !ok {
			wire.WriteError(w, storage.ErrNotFound)
			return
		}
		delete(f.objects, r.URL.Path)
		w.WriteHeader(204)
	case wire.OpList:
		w.Header().Set("Content-Type", wire.ListContentType)
		lw := wire.NewListWriter(w)
		_ = lw.Write(wire.Entry{Name: "a", Size: 1})
		_ = lw.Write(wire.Entry{Name: "b", Size: 2})
		if f.mode == "cut-list" {
			_ = lw.Flush()
			return
		}
		_ = lw.Close()
	}
}

func startFake(t *testing.T, f *fake) (string, *tls.Config) {
	f.objects, f.calls = map[string][]byte{}, map[string]int{}
	if f.fail == nil {
		f.fail = map[string]int{}
	}
	srv := httptest.NewUnstartedServer(f)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return "coffer://" + strings.TrimPrefix(srv.URL, "https://") + "/r", &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func TestRetries(t *testing.T) {
	ctx := context.Background()
	h := storage.Handle{Kind: storage.KindData, Name: "ab"}

	f := &fake{mode: "503", fail: map[string]int{"PUT": 2, "GET": 2}}
	url, conf := startFake(t, f)
	r, err := remote.CreateWithOptions(ctx, url, conf, fast)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, h, []byte("data")); err != nil {
		t.Fatalf("Save through two 503s: %v", err)
	}
	if got, err := r.Load(ctx, h, 0, -1); err != nil || string(got) != "data" {
		t.Fatalf("Load through two 503s: %q, %v", got, err)
	}
	if f.calls["PUT"] != 3 || f.calls["GET"] != 3 {
		t.Errorf("calls %v", f.calls)
	}
	// Permanent errors are not retried.
	if err := r.Save(ctx, h, []byte("again")); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Save over existing: %v", err)
	}
	if f.calls["PUT"] != 4 {
		t.Errorf("a 409 was retried: %v", f.calls)
	}
	// Too many failures give up with the server's error.
	f.mu.Lock()
	f.fail["HEAD"] = 10
	f.mu.Unlock()
	if _, err := r.Stat(ctx, h); !errors.Is(err, wire.ErrUnavailable) {
		t.Errorf("Stat through ten 503s: %v", err)
	}
}

// The response to a PUT or DELETE is lost after the server acted: the
// retry sees the result and reports success, not ErrExists/ErrNotFound.
func TestLostResponses(t *testing.T) {
	ctx := context.Background()
	h := storage.Handle{Kind: storage.KindData, Name: "ab"}
	f := &fake{mode: "drop-after-store", fail: map[string]int{"PUT": 1, "DELETE": 1}}
	url, conf := startFake(t, f)
	r, err := remote.CreateWithOptions(ctx, url, conf, fast)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, h, []byte("data")); err != nil {
		t.Fatalf("Save whose first response was lost: %v", err)
	}
	if err := r.Remove(ctx, h); err != nil {
		t.Fatalf("Remove whose first response was lost: %v", err)
	}
	// But an object of other content under the name is still ErrExists.
	f.mu.Lock()
	f.fail["PUT"] = 1
	f.objects["/v1/repos/r/data/cd"] = []byte("theirs")
	f.mu.Unlock()
	if err := r.Save(ctx, storage.Handle{Kind: storage.KindData, Name: "cd"}, []byte("mine")); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Save over other content after a lost response: %v", err)
	}
}

func TestBadResponses(t *testing.T) {
	ctx := context.Background()
	f := &fake{mode: "cut-list"}
	url, conf := startFake(t, f)
	r, err := remote.CreateWithOptions(ctx, url, conf, fast)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = r.List(ctx, storage.KindData, func(storage.FileInfo) error { n++; return nil })
	if !errors.Is(err, wire.ErrTruncatedList) {
		t.Errorf("cut listing: %v after %d entries", err, n)
	}
	if n > 2 {
		t.Errorf("cut listing retried after delivering entries: %d calls", n)
	}

	f2 := &fake{mode: "bad-digest"}
	url, conf = startFake(t, f2)
	verify := fast
	verify.VerifyDigest = true
	r, err = remote.CreateWithOptions(ctx, url, conf, verify)
	if err != nil {
		t.Fatal(err)
	}
	h := storage.Handle{Kind: storage.KindData, Name: "ab"}
	if err := r.Save(ctx, h, []byte("data")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Load(ctx, h, 0, -1); !errors.Is(err, wire.ErrCorrupt) {
		t.Errorf("Load with a wrong digest: %v", err)
	}
	if got, err := r.Load(ctx, h, 1, 2); err == nil {
		t.Errorf("range read answered with 200: %q", got)
	}
}

// The real server's quota and size limits come back as their sentinels.
func TestServerLimitsMapped(t *testing.T) {
	env := servertest.Start(t, servertest.Options{Config: server.Config{MaxObjectSize: 5000}})
	// Room for the repository's own charge, one full-size object and one
	// minimum-charge object, nothing more.
	id := env.Enroll(t, "alice", func(c *serverdb.Client) { c.QuotaBytes = server.RepoCharge + 5000 + server.MinObjectCharge })
	ctx := context.Background()
	r, err := remote.CreateWithOptions(ctx, env.URL("r"), id.TLS, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Save(ctx, storage.Handle{Kind: storage.KindData, Name: "big"}, make([]byte, 5001)); !errors.Is(err, wire.ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	if err := r.Save(ctx, storage.Handle{Kind: storage.KindData, Name: "a"}, make([]byte, 5000)); err != nil {
		t.Fatal(err)
	}
	if err := r.Save(ctx, storage.Handle{Kind: storage.KindData, Name: "b"}, make([]byte, server.MinObjectCharge+1)); !errors.Is(err, wire.ErrQuota) {
		t.Errorf("over quota: %v", err)
	}
	if err := r.Save(ctx, storage.Handle{Kind: storage.KindData, Name: "b"}, bytes.Repeat([]byte{1}, 500)); err != nil {
		t.Errorf("at quota: %v", err)
	}
	// Revocation turns into ErrUnauthenticated (or a handshake failure), not retried forever.
	if err := env.DB.RevokeClient(ctx, "alice", time.Now(), "test"); err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Stat(ctx, storage.Handle{Kind: storage.KindData, Name: "a"}); err == nil {
		t.Error("revoked client still served")
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Many clients back up at once: no errors, and each sees only its own objects.
// The server refreshes at the production interval: servertest's 50 ms would
// make it refuse everyone as stale after 500 ms without a database read,
// and under -race on a loaded machine one read of the client table (with
// 20 clients writing) can take longer than that.
func TestManyClients(t *testing.T) {
	env := servertest.Start(t, servertest.Options{Config: server.Config{RefreshInterval: server.DefaultRefreshInterval}})
	const clients, objects = 20, 20
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		id := env.Enroll(t, fmt.Sprintf("host-%02d", c), nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := remote.Create(ctx, env.URL("main"), id.TLS)
			if err != nil {
				errs <- err
				return
			}
			defer r.Close()
			var inner sync.WaitGroup
			for i := 0; i < objects; i++ {
				inner.Add(1)
				go func() {
					defer inner.Done()
					h := storage.Handle{Kind: storage.KindData, Name: fmt.Sprintf("%02x%s", i, id.Name)}
					if err := r.Save(ctx, h, storagetest.Content(id.Name+h.Name, 1000+i)); err != nil {
						errs <- err
					}
				}()
			}
			inner.Wait()
			n := 0
			err = r.List(ctx, storage.KindData, func(fi storage.FileInfo) error {
				n++
				if !strings.HasSuffix(fi.Name, id.Name) {
					return fmt.Errorf("%s lists %s", id.Name, fi.Name)
				}
				return nil
			})
			if err == nil && n != objects {
				err = fmt.Errorf("%s lists %d objects", id.Name, n)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkSave16MiB(b *testing.B) {
	env := servertest.Start(b, servertest.Options{})
	id := env.Enroll(b, "bench", nil)
	r, err := remote.Create(context.Background(), env.URL("main"), id.TLS)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	data := storagetest.Content("bench", 16<<20)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := r.Save(context.Background(), storage.Handle{Kind: storage.KindData, Name: fmt.Sprintf("p%d", i)}, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoad16MiB(b *testing.B) {
	env := servertest.Start(b, servertest.Options{})
	id := env.Enroll(b, "bench", nil)
	r, err := remote.Create(context.Background(), env.URL("main"), id.TLS)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	data := storagetest.Content("bench", 16<<20)
	h := storage.Handle{Kind: storage.KindData, Name: "p"}
	if err := r.Save(context.Background(), h, data); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Load(context.Background(), h, 0, -1); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCloseReleasesConnections: Close hangs up the connections the remote
// keeps, the server sees them go, and every later call fails with
// ErrClosed without reaching it.
func TestCloseReleasesConnections(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := &fake{objects: map[string][]byte{}, calls: map[string]int{}, fail: map[string]int{}}
	var open atomic.Int64
	srv := httptest.NewUnstartedServer(f)
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	url := "coffer://" + strings.TrimPrefix(srv.URL, "https://") + "/r"
	r, err := remote.CreateWithOptions(ctx, url, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, fast)
	if err != nil {
		t.Fatal(err)
	}
	h := storage.Handle{Kind: storage.KindData, Name: "ab"}
	if err := r.Save(ctx, h, []byte("data")); err != nil {
		t.Fatal(err)
	}
	if open.Load() < 1 {
		t.Fatal("no connection open after a request")
	}
	if !storage.PropertiesOf(r).Remote {
		t.Error("a remote does not declare Properties.Remote")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open 10s after Close", open.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.mu.Lock()
	before := f.calls["GET"] + f.calls["HEAD"]
	f.mu.Unlock()
	if _, err := r.Load(ctx, h, 0, -1); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Load after Close: %v, want ErrClosed", err)
	}
	if _, err := r.Stat(ctx, h); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Stat after Close: %v, want ErrClosed", err)
	}
	f.mu.Lock()
	after := f.calls["GET"] + f.calls["HEAD"]
	f.mu.Unlock()
	if after != before {
		t.Errorf("calls after Close reached the server (%d requests)", after-before)
	}
	if open.Load() != 0 {
		t.Error("a call after Close opened a connection")
	}
}
