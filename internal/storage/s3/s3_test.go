package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/readonly"
	"github.com/coffer-backup/coffer/internal/storage/retry"
	"github.com/coffer-backup/coffer/internal/storage/s3"
	"github.com/coffer-backup/coffer/internal/storage/s3/s3test"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
)

// create makes a repository on srv under a fresh prefix of bucket.
func create(t *testing.T, srv *s3test.Server, bucket string, seq *atomic.Int64, tune func(*s3.Config)) *s3.S3 {
	t.Helper()
	cfg := srv.Config(bucket, fmt.Sprintf("repos/r%d", seq.Add(1)))
	if tune != nil {
		tune(&cfg)
	}
	st, err := s3.Create(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return st
}

// TestContract runs the storage contract against versitygw, with listing
// pages of three keys so that every listing spans several pages.
func TestContract(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	var seq atomic.Int64
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return create(t, srv, bucket, &seq, func(c *s3.Config) { c.ListPageSize = 3; c.PartSize = 5 << 20 })
	})
}

// TestContractRetried runs the contract through the retry decorator, as
// the backend registry opens it, at the bucket's root.
func TestContractRetried(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		st, err := s3.Create(context.Background(), srv.Config(srv.NewBucket(t), ""))
		if err != nil {
			t.Fatal(err)
		}
		return retry.New(st, retry.Options{})
	})
}

func TestContractReadOnly(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	var seq atomic.Int64
	storagetest.RunReadOnly(t, func(t *testing.T) (storage.Storage, storage.Storage) {
		base := create(t, srv, bucket, &seq, nil)
		t.Cleanup(func() { _ = base.Close() })
		return readonly.New(base), base
	})
}

// TestLayout checks the keys objects are stored under: the local
// backend's layout below the prefix, so a repository copied between a
// directory and a bucket opens from either, and nothing outside it.
func TestLayout(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	st, err := s3.Create(ctx, srv.Config(bucket, "a/b"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	for _, h := range []storage.Handle{{Kind: storage.KindConfig, Name: "config"}, {Kind: storage.KindData, Name: "abcdef"}, {Kind: storage.KindSnapshots, Name: "s1"}} {
		if err := st.Save(ctx, h, []byte(h.String())); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range []string{"config", "data/ab/abcdef", "snapshots/s1"} {
		b, err := os.ReadFile(filepath.Join(srv.Dir, bucket, "a", "b", rel))
		if err != nil {
			t.Errorf("object file %s: %v", rel, err)
			continue
		}
		if want := strings.Replace(rel, "data/ab/", "data/", 1); string(b) != want {
			t.Errorf("%s holds %q, want %q", rel, b, want)
		}
	}
	if got := st.Location(); got != "s3:http://"+srv.Endpoint+"/"+bucket+"/a/b" {
		t.Errorf("Location = %q", got)
	}
	if !storage.PropertiesOf(st).Remote {
		t.Error("Properties.Remote not set: the pack cache would not be used")
	}
}

// TestStrayKeys checks that keys which name no valid object (left by
// other tools, or in another shard) are not listed.
func TestStrayKeys(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	st, err := s3.Create(ctx, srv.Config(bucket, "p"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	c := rawClient(t, srv)
	for _, key := range []string{"p/data/zz/abcd", "p/data/cd", "p/data/ab/UPPER", "p/snapshots/x/y", "p/configx", "p/other/thing", "p2/config", "p/snapshots/ok"} {
		if _, err := c.PutObject(ctx, bucket, key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range storage.Kinds {
		var names []string
		if err := st.List(ctx, k, func(fi storage.FileInfo) error { names = append(names, fi.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		want := ""
		if k == storage.KindSnapshots {
			want = "ok"
		}
		if strings.Join(names, ",") != want {
			t.Errorf("List %s = %v, want [%s]", k, names, want)
		}
	}
}

func rawClient(t *testing.T, srv *s3test.Server) *minio.Client {
	t.Helper()
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: srv.Creds(), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOpenErrors checks the errors a user meets: no bucket, no repository,
// an occupied prefix, wrong credentials, an unreachable endpoint. Messages
// never hold the secret.
func TestOpenErrors(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()

	_, err := s3.Open(ctx, srv.Config("no-such-bucket", ""))
	if !errors.Is(err, storage.ErrNoRepository) || !strings.Contains(err.Error(), "bucket no-such-bucket does not exist") {
		t.Errorf("Open of a missing bucket: %v", err)
	}
	_, err = s3.Open(ctx, srv.Config(bucket, "nothing"))
	if !errors.Is(err, storage.ErrNoRepository) {
		t.Errorf("Open of an empty prefix: %v", err)
	}

	st, err := s3.Create(ctx, srv.Config(bucket, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, []byte("c")); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(ctx, storage.Handle{Kind: storage.KindKeys, Name: "k"}, []byte("k")); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if _, err := s3.Create(ctx, srv.Config(bucket, "repo")); !errors.Is(err, storage.ErrExists) {
		t.Errorf("Create over a repository: %v, want ErrExists", err)
	}
	if _, err := s3.Create(ctx, srv.Config(bucket, "repo/keys")); !errors.Is(err, s3.ErrNotEmpty) {
		t.Errorf("Create over other objects: %v, want ErrNotEmpty", err)
	}
	if st, err := s3.Open(ctx, srv.Config(bucket, "repo")); err != nil {
		t.Errorf("Open: %v", err)
	} else {
		_ = st.Close()
	}

	for name, creds := range map[string]*credentials.Credentials{
		"wrong secret": credentials.NewStaticV4(srv.AccessKey, "not-the-secret-42", ""),
		"unknown key":  credentials.NewStaticV4("nobody", "not-the-secret-42", ""),
	} {
		cfg := srv.Config(bucket, "repo")
		cfg.Creds = creds
		for op, open := range map[string]func(context.Context, s3.Config) (*s3.S3, error){"Open": s3.Open, "Create": s3.Create} {
			_, err := open(ctx, cfg)
			if !errors.Is(err, s3.ErrCredentials) || !errors.Is(err, storage.ErrForbidden) {
				t.Errorf("%s with %s: %v, want ErrCredentials", op, name, err)
			} else if strings.Contains(err.Error(), "not-the-secret-42") {
				t.Errorf("%s with %s: the error shows the secret: %v", op, name, err)
			}
		}
	}

	cfg := srv.Config(bucket, "repo")
	cfg.Location.Endpoint = "127.0.0.1:1"
	if _, err := s3.Open(ctx, cfg); !errors.Is(err, s3.ErrUnreachable) {
		t.Errorf("Open of an unreachable endpoint: %v, want ErrUnreachable", err)
	}
}

// TestCreateMakesBucket checks that init on a missing bucket creates it.
func TestCreateMakesBucket(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	ctx := context.Background()
	st, err := s3.Create(ctx, srv.Config("made-by-coffer", "r"))
	if err != nil {
		t.Fatal(err)
	}
	h := storage.Handle{Kind: storage.KindConfig, Name: "config"}
	if err := st.Save(ctx, h, []byte("cfg")); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	st, err = s3.Open(ctx, srv.Config("made-by-coffer", "r"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	if b, err := st.Load(ctx, h, 0, -1); err != nil || !bytes.Equal(b, []byte("cfg")) {
		t.Errorf("Load = %q, %v", b, err)
	}
}

// TestConditionalWrite checks that the server refuses a second write of
// a key even when the HEAD check is bypassed: two backends race for the
// same name many times and exactly one wins each time (the contract's
// ConcurrentSameName, here with more rounds).
func TestConditionalWrite(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	c := rawClient(t, srv)
	opts := minio.PutObjectOptions{}
	opts.SetMatchETagExcept("*")
	if _, err := c.PutObject(ctx, bucket, "k", strings.NewReader("one"), 3, opts); err != nil {
		t.Fatal(err)
	}
	_, err := c.PutObject(ctx, bucket, "k", strings.NewReader("two"), 3, opts)
	if minio.ToErrorResponse(err).StatusCode != 412 {
		t.Fatalf("second conditional PUT: %v, want 412 Precondition Failed", err)
	}
}

// TestSaveStreamMultipart checks SaveStream above the part size: the
// object is stored as streamed, and a source that fails or writes more or
// fewer bytes than announced leaves nothing, not even a pending upload.
func TestSaveStreamMultipart(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	cfg := srv.Config(bucket, "stream")
	cfg.PartSize = 5 << 20
	st, err := s3.Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	data := storagetest.Content("stream", 12<<20+5)
	h := storage.Handle{Kind: storage.KindData, Name: "aabig"}
	if err := st.SaveStream(ctx, h, chunks{data: data, step: 1 << 20}, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Load(ctx, h, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Load: %d bytes, %v", len(got), err)
	}
	for name, c := range map[string]struct {
		src  chunks
		size int64
	}{
		"long":    {chunks{data: data, step: 1 << 20}, int64(len(data)) - 1},
		"short":   {chunks{data: data[:11<<20], step: 1 << 20}, int64(len(data))},
		"failing": {chunks{data: data, step: 1 << 20, failAfter: 11 << 20}, int64(len(data))},
	} {
		bh := storage.Handle{Kind: storage.KindData, Name: "bb" + name}
		if err := st.SaveStream(ctx, bh, c.src, c.size); err == nil {
			t.Errorf("%s source: SaveStream succeeded", name)
		}
		if _, err := st.Stat(ctx, bh); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s source: object visible (Stat: %v)", name, err)
		}
	}
	uploads := 0
	for u := range rawClient(t, srv).ListIncompleteUploads(ctx, bucket, "stream/", true) {
		if u.Err != nil {
			t.Fatalf("list pending uploads: %v", u.Err)
		}
		uploads++
	}
	if uploads != 0 {
		t.Errorf("%d multipart uploads left pending", uploads)
	}
}

// chunks writes data in pieces of step bytes, failing once failAfter
// bytes are written if it is set.
type chunks struct {
	data      []byte
	step      int
	failAfter int
}

func (c chunks) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for rest := c.data; len(rest) > 0; {
		if c.failAfter > 0 && n >= int64(c.failAfter) {
			return n, errors.New("source broke")
		}
		k := min(c.step, len(rest))
		m, err := w.Write(rest[:k])
		n += int64(m)
		if err != nil {
			return n, err
		}
		rest = rest[k:]
	}
	return n, nil
}

// LoadPrefix returns an object's first bytes and its size in one request,
// all of a shorter object, an empty one's size, and ErrNotFound.
func TestLoadPrefix(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	var seq atomic.Int64
	st := create(t, srv, srv.NewBucket(t), &seq, nil)
	ctx := context.Background()
	long := storage.Handle{Kind: storage.KindData, Name: "ab01"}
	short := storage.Handle{Kind: storage.KindIndex, Name: "i1"}
	empty := storage.Handle{Kind: storage.KindLocks, Name: "l1"}
	data := bytes.Repeat([]byte("0123456789"), 1000)
	for h, b := range map[storage.Handle][]byte{long: data, short: []byte("tiny"), empty: nil} {
		if err := st.Save(ctx, h, b); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		h    storage.Handle
		want []byte
		size int64
	}{{long, data[:100], int64(len(data))}, {short, []byte("tiny"), 4}, {empty, []byte{}, 0}}
	for _, c := range cases {
		b, size, err := st.LoadPrefix(ctx, c.h, 100)
		if err != nil || !bytes.Equal(b, c.want) || size != c.size {
			t.Errorf("%s: %q, %d, %v; want %q, %d", c.h, b, size, err, c.want, c.size)
		}
	}
	if _, _, err := st.LoadPrefix(ctx, storage.Handle{Kind: storage.KindData, Name: "cd02"}, 100); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing object: %v", err)
	}
	if _, _, err := st.LoadPrefix(ctx, long, 0); !errors.Is(err, storage.ErrRange) {
		t.Errorf("empty prefix: %v", err)
	}
}
