package s3_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
)

// TestBucketLookup stores an object with each addressing style through a
// server that serves virtual-host requests for the domain s3.test:
// virtual-host style names the bucket only in the host, so an object that
// lands in the bucket shows the server read it from there.
func TestBucketLookup(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t, "--virtual-domain", "s3.test")
	bucket := srv.NewBucket(t)
	proxy := newFaultProxy(t, srv.Endpoint)
	proxyAddr := strings.TrimPrefix(proxy.srv.URL, "http://")
	_, port, _ := net.SplitHostPort(proxyAddr)
	ctx := context.Background()
	wantHost := map[s3.BucketLookup]string{s3.LookupDefault: "s3.test:" + port, s3.LookupPath: "s3.test:" + port, s3.LookupDNS: bucket + ".s3.test:" + port}
	for _, lookup := range []s3.BucketLookup{s3.LookupDefault, s3.LookupPath, s3.LookupDNS} {
		proxy.set(nil)
		cfg := srv.Config(bucket, "lookup-"+string(lookup))
		cfg.Location.Endpoint = "s3.test:" + port
		cfg.BucketLookup = lookup
		st, err := s3.NewRedirected(cfg, proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		h := storage.Handle{Kind: storage.KindSnapshots, Name: "s1"}
		if err := st.Save(ctx, h, []byte(lookup)); err != nil {
			t.Fatalf("Save with lookup %q: %v", lookup, err)
		}
		b, err := os.ReadFile(filepath.Join(srv.Dir, bucket, "lookup-"+string(lookup), "snapshots", "s1"))
		if err != nil || string(b) != string(lookup) {
			t.Errorf("lookup %q: object in the bucket = %q, %v", lookup, b, err)
		}
		n := 0
		if err := st.List(ctx, storage.KindSnapshots, func(storage.FileInfo) error { n++; return nil }); err != nil || n != 1 {
			t.Errorf("List with lookup %q: %d, %v", lookup, n, err)
		}
		_ = st.Close()
		hosts := proxy.hostsSeen()
		if len(hosts) == 0 {
			t.Fatalf("lookup %q: no request went through the proxy", lookup)
		}
		for _, h := range hosts {
			if h != wantHost[lookup] {
				t.Errorf("lookup %q: a request for host %q, want %q", lookup, h, wantHost[lookup])
				break
			}
		}
	}
}
