package seed

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/atrest"
	"github.com/coffer-backup/coffer/internal/server/objstore"
	"github.com/coffer-backup/coffer/internal/server/replicate"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/storage"
)

// ExportOptions configure Export.
type ExportOptions struct {
	Dir     string   // the server's state directory
	Clients []string // empty: every client
	To      string   // the seed directory (made if missing)
	Now     func() time.Time
}

// Report is what Export or Import did.
type Report struct {
	Objects     int64  // objects in the seed
	Bytes       int64  // their bytes
	Written     int64  // objects written (the rest were there already)
	PublicKey   string // Export: the path of seed.pub
	Fingerprint string // Export: the hex SHA-256 of the public key
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Export writes every object of the selected clients to opts.To as the
// client's ciphertext, in objects/CLIENT/REPO/<repository layout>, then
// the manifest and, last, its signature with the server's seed key (made
// on first use). Objects already in the seed with the right content are
// kept, so an interrupted export is resumed by running it again.
func Export(ctx context.Context, opts ExportOptions) (*Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	key, err := state.LoadKey(opts.Dir)
	if err != nil {
		return nil, err
	}
	priv, err := LoadOrCreateKey(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(opts.To, ObjectsDir), 0o700); err != nil {
		return nil, err
	}
	store, err := openStore(ctx, opts.Dir, key)
	if err != nil {
		return nil, err
	}
	defer func() { _ = store.Close() }()
	src := replicate.Source{Store: store}
	repos, err := src.Repos(ctx, opts.Clients)
	if err != nil {
		return nil, err
	}
	m := Manifest{Version: 1, Created: opts.Now().UTC(), Objects: []Entry{}}
	rep := &Report{PublicKey: filepath.Join(opts.Dir, PublicKeyFile), Fingerprint: Fingerprint(priv.Public().(ed25519.PublicKey))}
	for _, k := range repos {
		entries, err := exportRepo(ctx, src, k, opts.To, rep)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", k, err)
		}
		m.Objects = append(m.Objects, entries...)
	}
	b, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(opts.To, SignatureFile)) // a stale signature never covers a new manifest
	if err := atomicfile.Write(filepath.Join(opts.To, ManifestFile), b, 0o600); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(opts.To, SignatureFile), Sign(priv, b), 0o600); err != nil {
		return nil, err
	}
	return rep, nil
}

func exportRepo(ctx context.Context, src replicate.Source, k replicate.RepoKey, to string, rep *Report) ([]Entry, error) {
	objs, err := src.Objects(ctx, k)
	if err != nil {
		return nil, err
	}
	st, err := src.Open(ctx, k)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.Close() }()
	var out []Entry
	for _, o := range objs {
		data, err := st.Load(ctx, o.Handle, 0, -1)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", o.Handle, err)
		}
		e := Entry{Client: k.Client, Repo: k.Repo, Kind: string(o.Handle.Kind), Name: o.Handle.Name, Size: int64(len(data)), SHA256: sum(data)}
		path := filepath.Join(to, ObjectsDir, k.Client, k.Repo, filepath.FromSlash(replicate.LayoutPath(o.Handle)))
		if old, err := os.ReadFile(path); err != nil || sum(old) != e.SHA256 { // #nosec G304 -- below the seed directory, from validated names
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, err
			}
			if err := atomicfile.Write(path, data, 0o600); err != nil {
				return nil, err
			}
			rep.Written++
		}
		rep.Objects++
		rep.Bytes += e.Size
		out = append(out, e)
	}
	return out, nil
}

// ImportOptions configure Import.
type ImportOptions struct {
	Dir       string            // the importing server's state directory
	From      string            // the seed directory
	PublicKey ed25519.PublicKey // the exporter's seed.pub
	// As, if set, is the client at this server that holds the copies:
	// each repository goes to As/CLIENT--REPO (replicate.CofferRepoName),
	// where a replication from the exporter to this server puts it. ""
	// keeps each object in its own client's namespace.
	As string
}

// Import checks the seed in opts.From and stores its objects at this
// server, sealed with its at-rest key. The manifest's signature is checked
// first, then every object against the manifest, before anything is
// stored: a tampered seed is refused whole with an error naming the
// object (ErrTampered). It takes the state directory's lock, so it does
// not run beside a server on the same directory. Objects already stored
// with the same content are kept.
func Import(ctx context.Context, opts ImportOptions) (*Report, error) {
	mb, err := os.ReadFile(filepath.Join(opts.From, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("seed manifest: %w", err)
	}
	sig, err := os.ReadFile(filepath.Join(opts.From, SignatureFile))
	if err != nil {
		return nil, fmt.Errorf("seed signature: %w", err)
	}
	if err := Verify(opts.PublicKey, mb, sig); err != nil {
		return nil, fmt.Errorf("%w with the public key given (fingerprint %s): the seed was not written by that server, or it was changed", err, Fingerprint(opts.PublicKey))
	}
	m, err := ParseManifest(mb)
	if err != nil {
		return nil, err
	}
	for _, e := range m.Objects {
		if _, err := readEntry(opts.From, e); err != nil {
			return nil, err
		}
	}
	key, err := state.LoadKey(opts.Dir)
	if err != nil {
		return nil, err
	}
	lock, err := state.Lock(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("%w (stop the server while importing a seed)", err)
	}
	defer func() { _ = lock.Close() }()
	store, err := openStore(ctx, opts.Dir, key)
	if err != nil {
		return nil, err
	}
	defer func() { _ = store.Close() }()
	rep := &Report{}
	for _, e := range m.Objects {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := importEntry(ctx, opts, store, e, rep); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// readEntry reads an object of the seed and checks it against its entry.
func readEntry(from string, e Entry) ([]byte, error) {
	path := filepath.Join(from, ObjectsDir, e.Client, e.Repo, filepath.FromSlash(replicate.LayoutPath(e.Handle())))
	b, err := os.ReadFile(path) // #nosec G304 -- below the seed directory, from validated names
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: object %s is missing from the seed", ErrTampered, e)
	}
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != e.Size || sum(b) != e.SHA256 {
		return nil, fmt.Errorf("%w: object %s (%s) has %d bytes and SHA-256 %s; the manifest lists %d bytes and %s", ErrTampered, e, path, len(b), sum(b), e.Size, e.SHA256)
	}
	return b, nil
}

func importEntry(ctx context.Context, opts ImportOptions, store *objstore.Store, e Entry, rep *Report) error {
	data, err := readEntry(opts.From, e)
	if err != nil {
		return err
	}
	ns := atrest.Namespace{Client: e.Client, Repo: e.Repo}
	if opts.As != "" {
		name, err := replicate.CofferRepoName(replicate.RepoKey{Client: e.Client, Repo: e.Repo})
		if err != nil {
			return err
		}
		ns = atrest.Namespace{Client: opts.As, Repo: name}
	}
	st, err := openRepo(ctx, store, ns)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	err = st.Save(ctx, e.Handle(), data)
	switch {
	case errors.Is(err, storage.ErrExists):
		o, oerr := st.Open(ctx, e.Handle())
		if oerr != nil {
			return fmt.Errorf("object %s exists at this server and does not open: %w", e, oerr)
		}
		if h := o.ContentSHA256(); hex.EncodeToString(h[:]) != e.SHA256 {
			return fmt.Errorf("object %s exists at this server with other content", e)
		}
	case err != nil:
		return fmt.Errorf("store %s: %w", e, err)
	default:
		rep.Written++
	}
	rep.Objects++
	rep.Bytes += e.Size
	return nil
}

// openStore opens the objects of the state directory dir where its
// configuration keeps them.
func openStore(ctx context.Context, dir string, key *atrest.Key) (*objstore.Store, error) {
	st, err := state.LoadSettings(dir)
	if err != nil {
		return nil, err
	}
	return objstore.OpenState(ctx, dir, key, st.Storage, false)
}

// openRepo opens (making it if missing) the repository of ns.
func openRepo(ctx context.Context, store *objstore.Store, ns atrest.Namespace) (*atrest.Storage, error) {
	st, err := store.Open(ctx, ns.Client, ns.Repo)
	if errors.Is(err, storage.ErrNoRepository) {
		if err := store.Create(ctx, ns.Client, ns.Repo); err != nil && !errors.Is(err, storage.ErrExists) {
			return nil, err
		}
		st, err = store.Open(ctx, ns.Client, ns.Repo)
	}
	return st, err
}
