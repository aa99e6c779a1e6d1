package s3_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/retry"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

// faultProxy forwards to a real S3 server and answers the requests fail
// picks with an S3 error of its own instead.
type faultProxy struct {
	srv   *httptest.Server
	mu    sync.Mutex
	fail  func(r *http.Request) (status int, code string)
	seen  []string // "METHOD path?query" of every request
	hosts []string // the Host of every request
}

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse("http://" + target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.Method+" "+r.URL.RequestURI())
		p.hosts = append(p.hosts, r.Host)
		fail := p.fail
		p.mu.Unlock()
		if fail != nil {
			if status, code := fail(r); status != 0 {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(status)
				fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected</Message></Error>`, code)
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) set(fail func(r *http.Request) (int, string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail, p.seen, p.hosts = fail, nil, nil
}

func (p *faultProxy) hostsSeen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.hosts...)
}

func (p *faultProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

// config is srv's configuration for bucket, reached through the proxy.
func (p *faultProxy) config(srv *s3test.Server, bucket, prefix string) s3.Config {
	cfg := srv.Config(bucket, prefix)
	cfg.Location.Endpoint = strings.TrimPrefix(p.srv.URL, "http://")
	return cfg
}

var fastRetry = retry.Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

// TestRetriesServerErrors checks that 5xx answers and throttling are
// retried with backoff (by the retry decorator the registry adds), that
// every operation then succeeds, and that a save whose first attempt was
// stored but answered with an error is not reported as ErrExists.
func TestRetriesServerErrors(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	proxy := newFaultProxy(t, srv.Endpoint)
	ctx := context.Background()
	raw, err := s3.Create(ctx, proxy.config(srv, bucket, "r"))
	if err != nil {
		t.Fatal(err)
	}
	st := retry.New(raw, fastRetry)
	defer func() { _ = st.Close() }()

	for i, fault := range []struct {
		status int
		code   string
	}{{503, "SlowDown"}, {500, "InternalError"}, {503, "ServiceUnavailable"}} {
		// The first of each distinct request fails.
		var mu sync.Mutex
		n, failed := 0, map[string]bool{}
		proxy.set(func(r *http.Request) (int, string) {
			mu.Lock()
			defer mu.Unlock()
			key := r.Method + " " + r.URL.RequestURI()
			if failed[key] {
				return 0, ""
			}
			failed[key] = true
			n++
			return fault.status, fault.code
		})
		h := storage.Handle{Kind: storage.KindSnapshots, Name: "s-" + strings.ToLower(fault.code)}
		data := storagetest.Content(h.String(), 7000)
		if err := st.Save(ctx, h, data); err != nil {
			t.Fatalf("Save under %s: %v", fault.code, err)
		}
		got, err := st.Load(ctx, h, 0, -1)
		if err != nil || string(got) != string(data) {
			t.Fatalf("Load under %s: %d bytes, %v", fault.code, len(got), err)
		}
		if _, err := st.Stat(ctx, h); err != nil {
			t.Fatalf("Stat under %s: %v", fault.code, err)
		}
		count := 0
		if err := st.List(ctx, storage.KindSnapshots, func(storage.FileInfo) error { count++; return nil }); err != nil {
			t.Fatalf("List under %s: %v", fault.code, err)
		}
		if count != i+1 {
			t.Fatalf("List under %s found %d objects, want %d", fault.code, count, i+1)
		}
		if n < 4 {
			t.Errorf("only %d faults injected under %s, want one for each of HEAD, PUT, GET and the listing", n, fault.code)
		}
	}

	// The PUT is stored, but its answer is lost (a 500 after forwarding):
	// the retry meets its own object, compares it, and reports success.
	proxy.set(nil)
	var once sync.Once
	h := storage.Handle{Kind: storage.KindIndex, Name: "lost-answer"}
	data := storagetest.Content("lost", 3000)
	wrapped := retry.New(&answerLoser{S3: raw, once: &once}, fastRetry)
	if err := wrapped.Save(ctx, h, data); err != nil {
		t.Fatalf("Save whose first answer was lost: %v", err)
	}
	if err := wrapped.Save(ctx, h, data); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Save of the same object: %v, want ErrExists", err)
	}
}

// answerLoser stores the first Save and then reports a transient error,
// as when the server's answer is lost.
type answerLoser struct {
	*s3.S3
	once *sync.Once
}

func (a *answerLoser) Save(ctx context.Context, h storage.Handle, data []byte) error {
	err := a.S3.Save(ctx, h, data)
	lost := false
	a.once.Do(func() { lost = true })
	if err == nil && lost {
		return errors.New("connection reset by peer")
	}
	return err
}

// TestListErrorNeverEmpty checks that a listing whose second page fails is
// an error, never a short or empty listing (restic #4612).
func TestListErrorNeverEmpty(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	proxy := newFaultProxy(t, srv.Endpoint)
	ctx := context.Background()
	cfg := proxy.config(srv, bucket, "r")
	cfg.ListPageSize = 2
	st, err := s3.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	for i := 0; i < 5; i++ {
		if err := st.Save(ctx, storage.Handle{Kind: storage.KindIndex, Name: fmt.Sprintf("i%d", i)}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, page := range []string{"first", "second"} {
		proxy.set(func(r *http.Request) (int, string) {
			q := r.URL.Query()
			if _, listing := q["list-type"]; !listing {
				return 0, ""
			}
			if (page == "first") == (q.Get("continuation-token") == "") {
				return 503, "SlowDown"
			}
			return 0, ""
		})
		var names []string
		err := st.List(ctx, storage.KindIndex, func(fi storage.FileInfo) error { names = append(names, fi.Name); return nil })
		if err == nil {
			t.Errorf("List with its %s page failing: no error, %d names", page, len(names))
		}
		if page == "second" && len(names) != 2 {
			t.Errorf("List reported %v before the failing page, want the first page's 2", names)
		}
	}
	proxy.set(nil)
	n := 0
	if err := st.List(ctx, storage.KindIndex, func(storage.FileInfo) error { n++; return nil }); err != nil || n != 5 {
		t.Errorf("List after the faults: %d, %v; want 5", n, err)
	}
	pages := 0
	for _, r := range proxy.requests() {
		if strings.Contains(r, "list-type=2") {
			pages++
		}
	}
	if pages != 3 {
		t.Errorf("5 keys in pages of 2 took %d listing requests, want 3", pages)
	}
}

// TestMultipart checks that objects above the part size go up in parts,
// conditionally, and that a second multipart save of the name is refused.
func TestMultipart(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	proxy := newFaultProxy(t, srv.Endpoint)
	ctx := context.Background()
	cfg := proxy.config(srv, bucket, "r")
	cfg.PartSize = 5 << 20
	st, err := s3.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	proxy.set(nil)
	h := storage.Handle{Kind: storage.KindData, Name: "ffmulti"}
	data := storagetest.Content("multi", 12<<20)
	if err := st.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	parts := 0
	for _, r := range proxy.requests() {
		if strings.HasPrefix(r, "PUT ") && strings.Contains(r, "partNumber=") {
			parts++
		}
	}
	if parts != 3 {
		t.Errorf("12 MiB in 5 MiB parts took %d part uploads, want 3; requests: %v", parts, proxy.requests())
	}
	got, err := st.Load(ctx, h, 0, -1)
	if err != nil || string(got) != string(data) {
		t.Fatalf("Load: %d bytes, %v", len(got), err)
	}
}

// TestOpenRetriesTransient checks that Open gets past a 503 on its first
// request, and gives up at once on a refusal that another try cannot
// change.
func TestOpenRetriesTransient(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	proxy := newFaultProxy(t, srv.Endpoint)
	ctx := context.Background()
	st, err := s3.Create(ctx, proxy.config(srv, bucket, "r"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("c")); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()

	var mu sync.Mutex
	calls := 0
	proxy.set(func(*http.Request) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return 503, "SlowDown"
		}
		return 0, ""
	})
	st, err = s3.Open(ctx, proxy.config(srv, bucket, "r"))
	if err != nil {
		t.Fatalf("Open after one 503: %v", err)
	}
	_ = st.Close()

	proxy.set(func(*http.Request) (int, string) { return 403, "AccessDenied" })
	if _, err := s3.Open(ctx, proxy.config(srv, bucket, "r")); !errors.Is(err, storage.ErrForbidden) {
		t.Fatalf("Open refused: %v, want ErrForbidden", err)
	}
	if n := len(proxy.requests()); n != 1 {
		t.Errorf("a refused Open made %d requests, want 1 (no retry)", n)
	}
}
