package repository

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/internal/chunker"
	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage"
	"golang.org/x/sync/errgroup"
)

// ErrNoRepository is returned when the location holds no coffer repository.
var ErrNoRepository = storage.ErrNoRepository

// DefaultPackSize is the size at which packs are closed.
const DefaultPackSize = 16 << 20

// Config is the repository's configuration object (docs/format.md §1).
type Config struct {
	Version     int            `json:"version"`
	ID          string         `json:"id"`
	Created     time.Time      `json:"created"`
	Cipher      string         `json:"cipher"`
	Chunker     chunker.Params `json:"chunker"`
	PackSize    int            `json:"pack_size"`
	Compression string         `json:"compression"`
	// Shared, in a version 2 config, replaces the blob-ID and chunker keys
	// derived from the master secret (docs/format.md §2). Config() never
	// returns it.
	Shared *SharedKeys `json:"shared_keys,omitempty"`
}

// Config versions: 1 derives every key from the master secret; 2 takes
// the blob-ID and chunker keys from Shared, which older readers must not
// ignore (they would name blobs differently), so they refuse it.
const (
	configVersion       = 1
	configVersionShared = 2
)

func (c *Config) validate() error {
	switch {
	case c.Version == configVersion && c.Shared == nil:
	case c.Version == configVersionShared && c.Shared != nil:
		if err := c.Shared.validate(); err != nil {
			return err
		}
	case c.Version == configVersion || c.Version == configVersionShared:
		return fmt.Errorf("config version %d does not match its shared keys (present: %t): damaged or forged", c.Version, c.Shared != nil)
	default:
		return fmt.Errorf("unsupported repository version %d", c.Version)
	}
	if _, err := crypto.ParseCipher(c.Cipher); err != nil {
		return err
	}
	if err := c.Chunker.Validate(); err != nil {
		return fmt.Errorf("config chunker: %w", err)
	}
	if c.PackSize < 1<<20 || c.PackSize > 1<<30 {
		return fmt.Errorf("config pack size %d out of range", c.PackSize)
	}
	if _, err := compress.ParseMode(c.Compression); err != nil {
		return err
	}
	return nil
}

// Repository is an opened, unlocked repository.
type Repository struct {
	st       storage.Storage
	id       []byte
	cfg      Config
	cipher   crypto.Cipher
	keys     *unlockedKeys
	hasher   *BlobHasher
	idx      atomic.Pointer[MasterIndex] // swapped whole by LoadIndex and UseIndex
	compress compress.Mode
	// beforeKDF runs before Argon2id in passphrase changes.
	beforeKDF keyring.KDFHook
	// warn reports damage that does not stop an operation (nil: dropped).
	warn func(format string, a ...any)

	packs   *packCache // nil unless UsePackCache
	prmu    sync.Mutex
	readers map[ID]*PackReader

	// writing
	wmu       sync.Mutex
	inflight  map[BlobHandle]bool
	packers   chan *PackWriter
	uploads   *errgroup.Group
	upCtx     context.Context
	written   []IndexPack   // packs uploaded, not yet in an index file
	upScratch commitScratch // reused by uploads, which run one at a time
	stats     WriteStats
}

// WriteStats counts what this session added.
type WriteStats struct {
	Blobs       [3]uint64 // by BlobType
	BytesRaw    uint64
	BytesPacked uint64
	Packs       uint64
}

// Storage returns the backend.
func (r *Repository) Storage() storage.Storage { return r.st }

// Config returns the repository configuration, without the secret keys
// of a version 2 config (SharedKeysFrom says where they came from).
func (r *Repository) Config() Config {
	c := r.cfg
	c.Shared = nil
	return c
}

// ID returns the repository ID.
func (r *Repository) ID() []byte { return r.id }

// Index returns the in-memory master index.
func (r *Repository) Index() *MasterIndex { return r.idx.Load() }

// Hasher returns the keyed blob hasher.
func (r *Repository) Hasher() *BlobHasher { return r.hasher }

// ChunkerSecret returns the keyed chunker secret.
func (r *Repository) ChunkerSecret() [32]byte { return r.keys.chunker }

// SetWarnf sets where problems that do not stop an operation are reported
// (an unreadable lock or index file); nil drops them. Call it before use.
func (r *Repository) SetWarnf(f func(format string, a ...any)) { r.warn = f }

func (r *Repository) warnf(format string, a ...any) {
	if r.warn != nil {
		r.warn(format, a...)
	}
}

// SetCompression overrides the repository's default compression for writes.
func (r *Repository) SetCompression(m compress.Mode) { r.compress = m }

// KeyLookup returns the key of a term; term 0 is the KEK.
func (r *Repository) KeyLookup(term uint32) (crypto.Key, error) { return r.keys.lookup(term) }

// Stats returns what this session wrote so far.
func (r *Repository) Stats() WriteStats {
	r.wmu.Lock()
	defer r.wmu.Unlock()
	return r.stats
}

// SaveSealed seals v as JSON with the current term and stores it under a new
// random name of the given kind. It returns the name.
func (r *Repository) SaveSealed(ctx context.Context, sk storage.Kind, ok crypto.ObjectKind, v any) (ID, error) {
	id := NewRandomID()
	return id, r.saveSealedAs(ctx, storage.Handle{Kind: sk, Name: id.String()}, ok, v)
}

func (r *Repository) saveSealedAs(ctx context.Context, h storage.Handle, ok crypto.ObjectKind, v any) error {
	plain, err := json.Marshal(v)
	if err != nil {
		return err
	}
	term, key := r.keys.current()
	data, err := crypto.SealObject(ok, r.cipher, term, key, r.id, h.String(), plain)
	if err != nil {
		return err
	}
	// Backends name the object in their errors (save locks/…: …).
	return r.st.Save(ctx, h, data)
}

// LoadSealed loads and opens a sealed object of the given kinds. An object
// larger than its kind's limit is refused unread (ErrTooLarge).
func (r *Repository) LoadSealed(ctx context.Context, h storage.Handle, ok crypto.ObjectKind) ([]byte, error) {
	return r.loadSealedSized(ctx, h, ok, -1)
}

// loadSealedSized is LoadSealed for an object whose size was listed
// (negative: unknown, asked of the storage).
func (r *Repository) loadSealedSized(ctx context.Context, h storage.Handle, ok crypto.ObjectKind, size int64) ([]byte, error) {
	data, err := r.LoadObject(ctx, h, size)
	if err != nil {
		return nil, err // names h already
	}
	plain, err := crypto.OpenObject(ok, r.keys.lookup, r.id, h.String(), data)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %w", h, ErrUnreadableObject, err)
	}
	return plain, nil
}

// ErrUnreadableObject marks an object that was loaded but does not open
// (authentication, header) or decode: damage or forgery, not a failure to
// reach the storage.
var ErrUnreadableObject = errors.New("object cannot be read")

// Unreadable reports whether err says an object is damaged (it does not
// open or decode, or is too large to read) rather than out of reach.
func Unreadable(err error) bool {
	return errors.Is(err, ErrUnreadableObject) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrCorruptIndex)
}

// ListIDs lists the names of a kind as IDs, skipping (and reporting) names
// that are not IDs.
func (r *Repository) ListIDs(ctx context.Context, k storage.Kind) ([]ID, error) {
	listed, err := r.listSized(ctx, k)
	if err != nil {
		return nil, err
	}
	ids := make([]ID, len(listed))
	for i, l := range listed {
		ids[i] = l.ID
	}
	return ids, nil
}

// listedID is an object listed with its size.
type listedID struct {
	ID   ID
	Size int64
}

// listSized is ListIDs keeping each object's listed size, so that loading
// it whole needs no Stat to check the size first.
func (r *Repository) listSized(ctx context.Context, k storage.Kind) ([]listedID, error) {
	var out []listedID
	err := r.st.List(ctx, k, func(fi storage.FileInfo) error {
		id, err := ParseID(fi.Name)
		if err != nil {
			return nil // foreign file: ignored, check reports it
		}
		out = append(out, listedID{ID: id, Size: fi.Size})
		return nil
	})
	if err != nil {
		return nil, err // names k already
	}
	return out, nil
}

// LoadIndex reads every index file into memory (superseded ones skipped) and
// excludes condemned packs from deduplication. Condemned records are read
// first (docs/format.md §10): a record that a prune finishes after this point
// has its packs already gone from the index files read next. If an index file
// vanishes between listing and loading, a prune replaced it: list again.
//
// An index file or condemned record that is damaged (Unreadable) is
// reported through SetWarnf and skipped (issue 10, item 7): the blobs only
// it lists are unindexed, so a backup stores them again and a restore
// reads the rest. Skipping a condemned record is safe because prune stops
// while one is unreadable, so its packs stay.
func (r *Repository) LoadIndex(ctx context.Context) error {
	condemned, err := r.loadCondemned(ctx, true)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		use, vanished, err := r.loadIndexFiles(ctx)
		if err != nil {
			return err
		}
		if vanished {
			if attempt < 5 {
				continue
			}
			return errors.New("index files kept changing while loading (a prune is running?); try again")
		}
		idx := NewMasterIndex()
		idx.AddFiles(use)
		for _, c := range condemned {
			idx.Exclude(c.Packs)
		}
		r.idx.Store(idx)
		return nil
	}
}

// loadIndexFiles loads the listed index files that no other one supersedes;
// vanished reports that a listed file was gone when read.
func (r *Repository) loadIndexFiles(ctx context.Context) (use []*IndexFile, vanished bool, err error) {
	listed, err := r.listSized(ctx, storage.KindIndex)
	if err != nil {
		return nil, false, err
	}
	files := make([]*IndexFile, len(listed))
	var gone atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, l := range listed {
		g.Go(func() error {
			f, err := r.loadIndexFile(gctx, l.ID, l.Size)
			if errors.Is(err, storage.ErrNotFound) {
				gone.Store(true)
				return nil
			}
			if Unreadable(err) {
				r.warnf("%v: its blobs are treated as unindexed; `coffer repair index` rebuilds the index from the packs", err)
				return nil
			}
			files[i] = f
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, false, err
	}
	if gone.Load() {
		return nil, true, nil
	}
	superseded := map[ID]bool{}
	for _, f := range files {
		if f == nil {
			continue
		}
		for _, s := range f.Supersedes {
			superseded[s] = true
		}
	}
	for i, f := range files {
		if f != nil && !superseded[listed[i].ID] {
			use = append(use, f)
		}
	}
	return use, false, nil
}

// LoadIndexFile loads and decodes one index object.
func (r *Repository) LoadIndexFile(ctx context.Context, id ID) (*IndexFile, error) {
	return r.loadIndexFile(ctx, id, -1)
}

// loadIndexFile is LoadIndexFile for a file of a listed size (negative:
// unknown).
func (r *Repository) loadIndexFile(ctx context.Context, id ID, size int64) (*IndexFile, error) {
	plain, err := r.loadSealedSized(ctx, storage.Handle{Kind: storage.KindIndex, Name: id.String()}, crypto.KindIndex, size)
	if err != nil {
		return nil, err
	}
	f, err := DecodeIndexFile(plain)
	if err != nil {
		return nil, fmt.Errorf("index/%s: %w", id, err)
	}
	return f, nil
}

// SaveIndexFile seals and stores an index file, returning its ID.
func (r *Repository) SaveIndexFile(ctx context.Context, f *IndexFile) (ID, error) {
	n := 0
	for _, p := range f.Packs {
		n += len(p.Blobs)
	}
	if n > maxIndexEntries {
		// Readers refuse larger index files: fail before anything relies on it.
		return ID{}, fmt.Errorf("index file with %d blobs exceeds the limit of %d; split it", n, maxIndexEntries)
	}
	id := NewRandomID()
	h := storage.Handle{Kind: storage.KindIndex, Name: id.String()}
	term, key := r.keys.current()
	data, err := crypto.SealObject(crypto.KindIndex, r.cipher, term, key, r.id, h.String(), f.Encode())
	if err != nil {
		return ID{}, err
	}
	if err := r.st.Save(ctx, h, data); err != nil {
		return ID{}, err // names h already
	}
	return id, nil
}
