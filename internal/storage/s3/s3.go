// Package s3 is the storage backend for a repository in an S3-compatible
// bucket (AWS, MinIO, Ceph RGW, versitygw...), through minio-go.
package s3

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/coffer-backup/coffer/internal/storage"
)

// BucketLookup says how requests name the bucket.
type BucketLookup string

// The bucket lookup styles.
const (
	// LookupDefault is path-style for custom endpoints and minio-go's
	// automatic choice (virtual-host style) for Amazon's.
	LookupDefault BucketLookup = ""
	// LookupPath puts the bucket in the path: https://HOST/BUCKET/KEY.
	LookupPath BucketLookup = "path"
	// LookupDNS puts the bucket in the host name: https://BUCKET.HOST/KEY.
	LookupDNS BucketLookup = "dns"
	// LookupAuto lets minio-go decide from the endpoint.
	LookupAuto BucketLookup = "auto"
)

// ParseBucketLookup reads a BucketLookup: "", "path", "dns" or "auto"
// ("virtual-host" is another name for "dns").
func ParseBucketLookup(s string) (BucketLookup, error) {
	switch s {
	case "", string(LookupPath), string(LookupDNS), string(LookupAuto):
		return BucketLookup(s), nil
	case "virtual-host":
		return LookupDNS, nil
	}
	return "", fmt.Errorf("unknown S3 bucket lookup %q (path, dns or auto)", s)
}

// Default sizes.
const (
	// DefaultPartSize is the part size of multipart uploads: objects
	// larger than it (full packs) are uploaded in parts of this size.
	DefaultPartSize = 8 << 20
	// DefaultListPageSize is how many keys one listing request asks for.
	DefaultListPageSize = 1000
)

// Config says how to reach a bucket. Only Location is required.
type Config struct {
	// Location is the endpoint, bucket and prefix.
	Location Location
	// Region is the bucket's region; "" lets minio-go ask the server
	// (us-east-1 where the server does not say).
	Region string
	// Creds signs requests. Nil: Credentials(), the environment.
	Creds *credentials.Credentials
	// BucketLookup selects path-style or virtual-host-style requests.
	BucketLookup BucketLookup
	// RootCAs verifies the endpoint's certificate. Nil: the system's.
	RootCAs *x509.CertPool
	// PartSize is the multipart part size (0: DefaultPartSize; at least
	// 5 MiB, S3's minimum).
	PartSize uint64
	// ListPageSize is the number of keys per listing request (0:
	// DefaultListPageSize). Tests lower it to exercise pagination.
	ListPageSize int
	// MaxRetries is how often minio-go itself tries a request (0: once).
	// Retries belong to the retry decorator, which knows when a retried
	// save met its own earlier attempt.
	MaxRetries int
	// RetainUntil, if set, locks every object saved in compliance mode
	// until the time it returns (rounded up to the second); the bucket
	// must have object lock enabled (CheckObjectLock).
	RetainUntil func() time.Time
}

// Credentials returns the credential chain read from the environment:
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, else the
// shared credentials file (AWS_SHARED_CREDENTIALS_FILE or
// ~/.aws/credentials) with the profile AWS_PROFILE (default "default").
func Credentials() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
	})
}

// S3 is a repository under a prefix of a bucket. It is safe for concurrent
// use, also by several processes sharing the bucket.
//
// Layout (the local backend's, so a repository copied between a directory
// and a bucket opens from either): PREFIX/config, PREFIX/KIND/NAME, and
// packs sharded by the first two characters of their name:
// PREFIX/data/NAME[:2]/NAME.
type S3 struct {
	client    *minio.Client
	core      minio.Core
	transport *http.Transport
	loc       Location
	partSize  uint64
	pageSize  int
	closed    atomic.Bool
	// parent is the Bucket's S3 whose client this one shares (Repository);
	// nil for a storage that owns its connections.
	parent *S3

	retainUntil func() time.Time
}

var (
	_ storage.Storage     = (*S3)(nil)
	_ storage.StreamSaver = (*S3)(nil)
	_ storage.Propertied  = (*S3)(nil)
)

// ErrNotEmpty is returned by Create when objects exist under the prefix
// but no repository: coffer never creates a repository among other data.
var ErrNotEmpty = errors.New("objects exist under this bucket prefix but no coffer repository; choose another prefix (s3:https://HOST/BUCKET/PREFIX)")

// Open opens the repository at cfg.Location. It fails with an error
// wrapping storage.ErrNoRepository when the bucket or the config object
// does not exist, and with ErrCredentials when the server refuses the
// credentials.
func Open(ctx context.Context, cfg Config) (*S3, error) {
	s, err := newS3(cfg)
	if err != nil {
		return nil, err
	}
	found, err := s.probeRetried(ctx)
	switch {
	case errors.Is(err, errNoBucket):
		err = fmt.Errorf("bucket %s does not exist at %s: %w", s.loc.Bucket, s.loc.Endpoint, storage.ErrNoRepository)
	case err == nil && !found["config"]:
		err = fmt.Errorf("no config object: %w", storage.ErrNoRepository)
	}
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open repository %s: %w", s.Location(), err)
	}
	return s, nil
}

// Create makes the bucket if it is missing and returns the empty
// repository under the prefix; the caller then saves the config object.
// A prefix that holds a repository fails with storage.ErrExists, one that
// holds anything else with ErrNotEmpty.
func Create(ctx context.Context, cfg Config) (*S3, error) {
	s, err := newS3(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.create(ctx, cfg.Region); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("create repository %s: %w", s.Location(), err)
	}
	return s, nil
}

func (s *S3) create(ctx context.Context, region string) error {
	found, err := s.probeRetried(ctx)
	if errors.Is(err, errNoBucket) {
		if err := s.client.MakeBucket(ctx, s.loc.Bucket, minio.MakeBucketOptions{Region: region}); err != nil {
			return fmt.Errorf("make bucket %s: %w", s.loc.Bucket, mapError(err))
		}
		return nil
	}
	switch {
	case err != nil:
		return err
	case found["config"]:
		return fmt.Errorf("a repository is there: %w", storage.ErrExists)
	case len(found) > 0:
		return ErrNotEmpty
	}
	return nil
}

func newS3(cfg Config) (*S3, error) {
	loc := cfg.Location
	if loc.Bucket == "" || loc.Endpoint == "" {
		return nil, fmt.Errorf("%w: no endpoint or bucket", ErrLocation)
	}
	tr, err := minio.DefaultTransport(loc.Secure)
	if err != nil {
		return nil, err
	}
	if cfg.RootCAs != nil {
		tr.TLSClientConfig.RootCAs = cfg.RootCAs
	}
	creds := cfg.Creds
	if creds == nil {
		creds = Credentials()
	}
	v, err := creds.GetWithContext(&credentials.CredContext{Client: &http.Client{Transport: tr}})
	if err != nil || v.AccessKeyID == "" {
		return nil, fmt.Errorf("%w: found none", ErrNoCredentials)
	}
	client, err := minio.New(loc.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       loc.Secure,
		Transport:    tr,
		Region:       cfg.Region,
		BucketLookup: lookupOf(cfg.BucketLookup, loc.Endpoint),
		MaxRetries:   max(cfg.MaxRetries, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", loc, err)
	}
	s := &S3{client: client, core: minio.Core{Client: client}, transport: tr, loc: loc, partSize: DefaultPartSize, pageSize: DefaultListPageSize,
		retainUntil: cfg.RetainUntil}
	if cfg.PartSize > 0 {
		s.partSize = max(cfg.PartSize, 5<<20)
	}
	if cfg.ListPageSize > 0 {
		s.pageSize = cfg.ListPageSize
	}
	return s, nil
}

func lookupOf(l BucketLookup, endpoint string) minio.BucketLookupType {
	switch l {
	case LookupPath:
		return minio.BucketLookupPath
	case LookupDNS:
		return minio.BucketLookupDNS
	case LookupAuto:
		return minio.BucketLookupAuto
	}
	host, _, _ := strings.Cut(endpoint, ":")
	if host == "amazonaws.com" || strings.HasSuffix(host, ".amazonaws.com") {
		return minio.BucketLookupAuto
	}
	return minio.BucketLookupPath
}

// probeAttempts and probeBackoff bound how Open and Create retry their
// first request when it fails for a reason another try may not meet (a
// 5xx, throttling, a refused connection); the retry decorator takes over
// once the backend is open.
const (
	probeAttempts = 3
	probeBackoff  = 250 * time.Millisecond
)

// probeRetried is probe, tried again after transient failures.
func (s *S3) probeRetried(ctx context.Context) (map[string]bool, error) {
	for attempt := 1; ; attempt++ {
		found, err := s.probe(ctx)
		if err == nil || attempt == probeAttempts || permanent(err) {
			return found, err
		}
		t := time.NewTimer(probeBackoff << (attempt - 1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (last attempt failed: %w)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// permanent reports whether another try cannot change err.
func permanent(err error) bool {
	for _, target := range []error{errNoBucket, storage.ErrForbidden, storage.ErrNoRepository, storage.ErrNotFound, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// errNoBucket is probe's error for a missing bucket.
var errNoBucket = errors.New("no such bucket")

// probe lists the first keys under the prefix (a GET, whose error body
// names why the server refuses: a HEAD's would not) and returns the first
// path segments found below it.
func (s *S3) probe(ctx context.Context) (map[string]bool, error) {
	found := map[string]bool{}
	for obj := range s.client.ListObjectsIter(ctx, s.loc.Bucket, minio.ListObjectsOptions{Prefix: s.keyPrefix(), MaxKeys: 10}) {
		if obj.Err != nil {
			if minio.ToErrorResponse(obj.Err).Code == minio.NoSuchBucket {
				return nil, errNoBucket
			}
			return nil, mapError(obj.Err)
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(obj.Key, s.keyPrefix()), "/")
		found[first] = true
		if len(found) >= 10 {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return found, nil
}

// Location returns the repository's location, "s3:https://HOST/BUCKET/PREFIX".
func (s *S3) Location() string { return s.loc.String() }

// Properties implements storage.Propertied: every call is a request.
func (s *S3) Properties() storage.Properties { return storage.Properties{Remote: true} }

// Close implements storage.Storage: it closes idle connections; every call
// after it fails with storage.ErrClosed.
func (s *S3) Close() error {
	s.closed.Store(true)
	if s.parent == nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}

// isClosed reports whether s, or the bucket it shares connections with,
// is closed.
func (s *S3) isClosed() bool {
	return s.closed.Load() || s.parent != nil && s.parent.closed.Load()
}

// usable returns why a call cannot proceed: s is closed or ctx is done.
func (s *S3) usable(ctx context.Context) error {
	if s.isClosed() {
		return storage.ErrClosed
	}
	return ctx.Err()
}

// keyPrefix is "PREFIX/", or "" at the bucket's root.
func (s *S3) keyPrefix() string {
	if s.loc.Prefix == "" {
		return ""
	}
	return s.loc.Prefix + "/"
}

// key returns the object key of h, which must be valid.
func (s *S3) key(h storage.Handle) string {
	switch h.Kind {
	case storage.KindConfig:
		return s.keyPrefix() + "config"
	case storage.KindData:
		return s.keyPrefix() + "data/" + shard(h.Name) + "/" + h.Name
	default:
		return s.keyPrefix() + string(h.Kind) + "/" + h.Name
	}
}

// shard is the directory of a pack under data/, as in the local backend.
func shard(name string) string {
	if len(name) < 2 {
		return name
	}
	return name[:2]
}

// check validates h and s's state before a call on h.
func (s *S3) check(ctx context.Context, op string, h storage.Handle) error {
	if err := storage.ValidateHandle(h); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("%s %s: %w", op, h, err)
	}
	return nil
}

// Save implements storage.Storage. The object is refused if a HEAD finds
// it, and written with If-None-Match: * so that a server that supports
// conditional writes refuses it atomically if another writer got there in
// between. Objects larger than the part size go up as a multipart upload,
// which the server publishes only when complete.
func (s *S3) Save(ctx context.Context, h storage.Handle, data []byte) error {
	return s.put(ctx, h, bytes.NewReader(data), int64(len(data)))
}

// SaveStream implements storage.StreamSaver with Save's guarantees: src
// is piped into the upload, and a source that writes more or fewer than
// size bytes, or fails, fails the upload before the server publishes it.
func (s *S3) SaveStream(ctx context.Context, h storage.Handle, src io.WriterTo, size int64) error {
	if err := s.check(ctx, "save", h); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := newStreamReader(ctx, src, size)
	defer r.Close()
	return s.put(ctx, h, r, size)
}

func (s *S3) put(ctx context.Context, h storage.Handle, r io.Reader, size int64) error {
	if err := s.check(ctx, "save", h); err != nil {
		return err
	}
	if _, err := s.stat(ctx, h); err == nil {
		return fmt.Errorf("save %s: %w", h, storage.ErrExists)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("save %s: %w", h, err)
	}
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s.partSize,
	}
	opts.SetMatchETagExcept("*")
	s.putRetention(&opts)
	if _, err := s.client.PutObject(ctx, s.loc.Bucket, s.key(h), r, size, opts); err != nil {
		return fmt.Errorf("save %s: %w", h, s.callError(ctx, err))
	}
	return nil
}

// Stat implements storage.Storage.
func (s *S3) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if err := s.check(ctx, "stat", h); err != nil {
		return storage.FileInfo{}, err
	}
	size, err := s.stat(ctx, h)
	if err != nil {
		return storage.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	return storage.FileInfo{Name: h.Name, Size: size}, nil
}

func (s *S3) stat(ctx context.Context, h storage.Handle) (int64, error) {
	info, err := s.client.StatObject(ctx, s.loc.Bucket, s.key(h), minio.StatObjectOptions{})
	if err != nil {
		return 0, s.callError(ctx, err)
	}
	return info.Size, nil
}

// Remove implements storage.Storage. S3 deletes a missing key without
// complaint, so a HEAD first tells a missing object (storage.ErrNotFound).
func (s *S3) Remove(ctx context.Context, h storage.Handle) error {
	if err := s.check(ctx, "remove", h); err != nil {
		return err
	}
	if _, err := s.stat(ctx, h); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	if err := s.client.RemoveObject(ctx, s.loc.Bucket, s.key(h), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("remove %s: %w", h, s.callError(ctx, err))
	}
	return nil
}

// List implements storage.Storage. The listing is paginated by minio-go;
// an error on any page is returned, and a listing cut short by ctx is
// ctx's error, never a short listing reported as complete. Keys that do
// not name a valid object of kind (strays left by other tools) are
// skipped.
func (s *S3) List(ctx context.Context, kind storage.Kind, fn func(storage.FileInfo) error) error {
	return s.ListTags(ctx, kind, func(t Tag) error { return fn(storage.FileInfo{Name: t.Name, Size: t.Size}) })
}

// ListTags is List with each object's ETag, with List's guarantees.
func (s *S3) ListTags(ctx context.Context, kind storage.Kind, fn func(Tag) error) error {
	if !storage.ValidKind(kind) {
		return fmt.Errorf("list: %w: unknown kind %q", storage.ErrInvalidName, kind)
	}
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("list %s: %w", kind, err)
	}
	prefix := s.keyPrefix() + string(kind) + "/"
	if kind == storage.KindConfig {
		prefix = s.keyPrefix() + "config"
	}
	opts := minio.ListObjectsOptions{Prefix: prefix, Recursive: true, MaxKeys: s.pageSize}
	for obj := range s.client.ListObjectsIter(ctx, s.loc.Bucket, opts) {
		if obj.Err != nil {
			return fmt.Errorf("list %s: %w", kind, s.callError(ctx, obj.Err))
		}
		h := storage.Handle{Kind: kind, Name: nameOf(kind, obj.Key[len(s.keyPrefix()):])}
		if storage.ValidateHandle(h) != nil || s.key(h) != obj.Key {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", kind, err)
		}
		if err := fn(Tag{Name: h.Name, Size: obj.Size, ETag: obj.ETag}); err != nil {
			return err
		}
	}
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("list %s: %w", kind, err)
	}
	return nil
}

// nameOf returns the object name in rel, a key below the prefix.
func nameOf(kind storage.Kind, rel string) string {
	if kind == storage.KindConfig {
		return rel
	}
	return rel[strings.LastIndexByte(rel, '/')+1:]
}

// callError maps a minio-go error to the storage sentinels, preferring
// ctx's error when ctx ended the call.
func (s *S3) callError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	if s.isClosed() {
		return fmt.Errorf("%w (%v)", storage.ErrClosed, err)
	}
	return mapError(err)
}
