package repository

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os/user"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/chunker"
	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/storage"
)

// unlockedKeys holds the keys of an open repository.
type unlockedKeys struct {
	mu      sync.RWMutex
	master  *keyring.Master
	ring    *keyring.Ring
	chunker [32]byte
	slot    *keyring.Slot // the slot that opened the repository
}

func (k *unlockedKeys) lookup(term uint32) (crypto.Key, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.ring.Lookup(term)
}

func (k *unlockedKeys) current() (uint32, crypto.Key) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	t := k.ring.Current()
	return t.Number, t.Key
}

// InitOptions configure a new repository.
type InitOptions struct {
	Passphrase  []byte
	Cipher      crypto.Cipher
	Chunker     chunker.Params
	Compression compress.Mode
	PackSize    int
	KDF         keyring.KDFParams
	// Shared, when not nil, makes the repository use these blob-ID and
	// chunker keys instead of deriving its own (a version 2 config), so
	// that it deduplicates with the repository they come from; give that
	// repository's chunker parameters in Chunker too.
	Shared *SharedKeys
	// Recovery, when true, adds a recovery key slot; Init returns the key.
	Recovery bool
	// RecoveryKey, when not nil and Passphrase is empty, makes a recovery
	// slot for this key the repository's only slot: no passphrase slot and
	// no Argon2id (an agent's random per-host key).
	RecoveryKey *keyring.RecoveryKey
	// BeforeKDF, if not nil, runs before each Argon2id derivation, here and
	// in the returned repository's passphrase changes.
	BeforeKDF keyring.KDFHook
}

// OpenOptions are Open's optional settings; the zero value is valid.
type OpenOptions struct {
	// BeforeKDF, if not nil, runs before each Argon2id derivation, when
	// unlocking and in the returned repository's passphrase changes.
	BeforeKDF keyring.KDFHook
	// StateDir is the client's state directory (see StateFile): the key
	// slot that opened the repository last time is tried first, and the
	// one that opens it now is remembered there. "" does neither.
	StateDir string
	// KDFMaxMemoryKiB raises (or lowers) the most Argon2id memory a key
	// slot may ask for; 0 is keyring.DefaultUnlockMaxMemoryKiB.
	KDFMaxMemoryKiB uint32
	// Escrow, if not nil, unlocks with this escrow identity instead of a
	// secret: only escrow slots are tried, and no Argon2id runs.
	Escrow *keyring.EscrowIdentity
}

func slotInfo(before keyring.KDFHook) keyring.SlotInfo {
	info := keyring.SlotInfo{Created: time.Now().UTC(), Host: Hostname(), BeforeKDF: before}
	if u, err := user.Current(); err == nil {
		info.User = u.Username
	}
	return info
}

// defaults fills in the zero fields Init has defaults for.
func (o *InitOptions) defaults() {
	if o.Cipher == 0 {
		o.Cipher = crypto.AES256GCM
	}
	if o.Chunker == (chunker.Params{}) {
		o.Chunker = chunker.DefaultParams
	}
	if o.PackSize == 0 {
		o.PackSize = DefaultPackSize
	}
	if o.KDF == (keyring.KDFParams{}) {
		o.KDF = keyring.DefaultKDFParams()
	}
}

// newConfig is the config of a new repository: version 2 with o.Shared.
func newConfig(repoID []byte, o InitOptions) Config {
	cfg := Config{Version: configVersion, ID: hex.EncodeToString(repoID), Created: time.Now().UTC(), Cipher: o.Cipher.String(),
		Chunker: o.Chunker, PackSize: o.PackSize, Compression: modeName(o.Compression)}
	if o.Shared != nil {
		cfg.Version, cfg.Shared = configVersionShared, o.Shared
	}
	return cfg
}

// Init writes a new repository into an empty storage: key slot(s), the
// first keyring term, then the config (whose presence marks a repository).
func Init(ctx context.Context, st storage.Storage, o InitOptions) (*Repository, *keyring.RecoveryKey, error) {
	if len(o.Passphrase) == 0 && o.RecoveryKey == nil {
		return nil, nil, errors.New("an empty passphrase is not allowed")
	}
	o.defaults()
	if _, err := st.Stat(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}); err == nil {
		return nil, nil, fmt.Errorf("a repository already exists at %s", st.Location())
	}
	repoID, err := crypto.RandomBytes(32)
	if err != nil {
		return nil, nil, err
	}
	m, err := keyring.GenerateMaster(repoID)
	if err != nil {
		return nil, nil, err
	}
	cfg := newConfig(repoID, o)
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	slot, err := firstSlot(m, o)
	if err != nil {
		return nil, nil, err
	}
	if err := saveSlot(ctx, st, slot); err != nil {
		return nil, nil, err
	}
	var rk *keyring.RecoveryKey
	if o.Recovery {
		k, err := keyring.NewRecoveryKey()
		if err != nil {
			return nil, nil, err
		}
		rs, err := keyring.NewRecoverySlot(m, k, o.Cipher, slotInfo(nil))
		if err != nil {
			return nil, nil, err
		}
		if err := saveSlot(ctx, st, rs); err != nil {
			return nil, nil, err
		}
		rk = &k
	}
	term, err := keyring.NewTerm(1, time.Now())
	if err != nil {
		return nil, nil, err
	}
	sealed, err := keyring.SealTerm(m, o.Cipher, term)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Save(ctx, keyring.TermHandle(1), sealed); err != nil {
		return nil, nil, fmt.Errorf("save keyring: %w", err)
	}
	plain, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	cdata, err := crypto.SealObject(crypto.KindConfig, o.Cipher, 0, m.KEK(), repoID, "config", plain)
	if err != nil {
		return nil, nil, err
	}
	if err := st.Save(ctx, storage.Handle{Kind: storage.KindConfig, Name: "config"}, cdata); err != nil {
		return nil, nil, fmt.Errorf("save config: %w", err)
	}
	ring, err := keyring.NewRing(m, []keyring.Term{term})
	if err != nil {
		return nil, nil, err
	}
	r, err := assemble(st, m, ring, slot, cfg)
	return withKDFHook(r, o.BeforeKDF), rk, err
}

// firstSlot makes Init's first key slot: a passphrase slot, or with only
// o.RecoveryKey a recovery slot for it.
func firstSlot(m *keyring.Master, o InitOptions) (*keyring.Slot, error) {
	if len(o.Passphrase) == 0 {
		return keyring.NewRecoverySlot(m, *o.RecoveryKey, o.Cipher, slotInfo(nil))
	}
	return keyring.NewPassphraseSlot(m, o.Passphrase, o.Cipher, o.KDF, slotInfo(o.BeforeKDF))
}

func modeName(m compress.Mode) string {
	switch m {
	case compress.Off:
		return "off"
	case compress.Max:
		return "max"
	}
	return "auto"
}

func saveSlot(ctx context.Context, st storage.Storage, s *keyring.Slot) error {
	b, err := s.Marshal()
	if err != nil {
		return err
	}
	if err := st.Save(ctx, s.Handle(), b); err != nil {
		return fmt.Errorf("save key slot: %w", err)
	}
	return nil
}

func assemble(st storage.Storage, m *keyring.Master, ring *keyring.Ring, slot *keyring.Slot, cfg Config) (*Repository, error) {
	c, err := crypto.ParseCipher(cfg.Cipher)
	if err != nil {
		return nil, err
	}
	mode, err := compress.ParseMode(cfg.Compression)
	if err != nil {
		return nil, err
	}
	blobID, chunkerKey := m.BlobIDKey(), m.ChunkerKey()
	if cfg.Shared != nil {
		blobID, chunkerKey = crypto.Key(cfg.Shared.BlobID), crypto.Key(cfg.Shared.Chunker)
	}
	keys := &unlockedKeys{master: m, ring: ring, chunker: chunkerKey, slot: slot}
	r := &Repository{
		st: st, id: m.RepoID(), cfg: cfg, cipher: c, keys: keys,
		hasher: NewBlobHasher(blobID), compress: mode,
	}
	r.idx.Store(NewMasterIndex())
	return r, nil
}

// withKDFHook makes r (if any) run before ahead of Argon2id.
func withKDFHook(r *Repository, before keyring.KDFHook) *Repository {
	if r != nil {
		r.beforeKDF = before
	}
	return r
}

// LoadSlots reads and parses every key slot; unparsable slots are returned
// as errors beside the good ones.
func LoadSlots(ctx context.Context, st storage.Storage) ([]*keyring.Slot, []error, error) {
	var files []keyring.SlotFile
	var errs []error
	err := st.List(ctx, storage.KindKeys, func(fi storage.FileInfo) error {
		h := storage.Handle{Kind: storage.KindKeys, Name: fi.Name}
		if err := CheckSize(h, fi.Size, keyring.MaxSlotSize); err != nil {
			errs = append(errs, err) // one bad slot does not hide the others
			return nil
		}
		b, err := loadWhole(ctx, st, h, fi.Size, keyring.MaxSlotSize)
		if err != nil {
			return fmt.Errorf("load key slot %s: %w", fi.Name, err)
		}
		files = append(files, keyring.SlotFile{ID: fi.Name, Data: b})
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list key slots: %w", err)
	}
	slots, perrs := keyring.ParseSlots(files)
	return slots, append(errs, perrs...), nil
}

// Open unlocks the repository in st with a passphrase or recovery key.
func Open(ctx context.Context, st storage.Storage, secret []byte) (*Repository, error) {
	return OpenWith(ctx, st, secret, OpenOptions{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, st storage.Storage, secret []byte, o OpenOptions) (*Repository, error) {
	cfgData, err := loadWhole(ctx, st, storage.Handle{Kind: storage.KindConfig, Name: "config"}, -1, maxConfigObject)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w at %s", storage.ErrNoRepository, st.Location())
	}
	if err != nil {
		return nil, err // loadWhole names the object
	}
	if h, err := crypto.ParseHeader(cfgData); err != nil || h.Kind != crypto.KindConfig {
		// Another tool's repository, or a damaged config: say so before
		// asking the key slots, which would only report a wrong passphrase.
		return nil, fmt.Errorf("%w: %s holds no coffer repository config (foreign or damaged)", storage.ErrNoRepository, st.Location())
	}
	slots, slotErrs, err := LoadSlots(ctx, st)
	if err != nil {
		return nil, err
	}
	m, slot, err := keyring.UnlockWithOptions(slots, secret, keyring.UnlockOptions{
		BeforeKDF: o.BeforeKDF, Prefer: lastSlot(o.StateDir, slots), MaxMemoryKiB: o.KDFMaxMemoryKiB,
		Escrow: o.Escrow, Verify: opensConfig(cfgData),
	})
	if err != nil {
		if errors.Is(err, keyring.ErrNoSlots) && len(slotErrs) > 0 {
			return nil, fmt.Errorf("%w: %w", err, errors.Join(slotErrs...))
		}
		return nil, err
	}
	plain, err := crypto.OpenObject(crypto.KindConfig, m.KEKLookup(), m.RepoID(), "config", cfgData)
	if err != nil {
		return nil, fmt.Errorf("open config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(plain, &cfg); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.ID != hex.EncodeToString(m.RepoID()) {
		return nil, errors.New("config belongs to another repository than its key slots")
	}
	ring, err := loadRing(ctx, st, m)
	if err != nil {
		return nil, err
	}
	r, err := assemble(st, m, ring, slot, cfg)
	if err != nil {
		return nil, err
	}
	r.rememberSlot(o.StateDir)
	return withKDFHook(r, o.BeforeKDF), nil
}

func loadRing(ctx context.Context, st storage.Storage, m *keyring.Master) (*keyring.Ring, error) {
	var files []keyring.TermFile
	err := st.List(ctx, storage.KindKeyring, func(fi storage.FileInfo) error {
		b, err := loadWhole(ctx, st, storage.Handle{Kind: storage.KindKeyring, Name: fi.Name}, fi.Size, keyring.MaxTermObjectSize)
		if err != nil {
			return fmt.Errorf("load keyring term %s: %w", fi.Name, err)
		}
		files = append(files, keyring.TermFile{Name: fi.Name, Data: b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list keyring: %w", err)
	}
	return keyring.OpenRing(m, files)
}

// CurrentSlot is the key slot that opened the repository.
func (r *Repository) CurrentSlot() *keyring.Slot { return r.keys.slot }

// AddPassphrase adds a passphrase slot and returns it.
func (r *Repository) AddPassphrase(ctx context.Context, pass []byte, p keyring.KDFParams) (*keyring.Slot, error) {
	if len(pass) == 0 {
		return nil, errors.New("an empty passphrase is not allowed")
	}
	s, err := keyring.NewPassphraseSlot(r.keys.master, pass, r.cipher, p, slotInfo(r.beforeKDF))
	if err != nil {
		return nil, err
	}
	return s, saveSlot(ctx, r.st, s)
}

// AddRecoveryKey adds a recovery slot and returns its key.
func (r *Repository) AddRecoveryKey(ctx context.Context) (keyring.RecoveryKey, *keyring.Slot, error) {
	k, err := keyring.NewRecoveryKey()
	if err != nil {
		return k, nil, err
	}
	s, err := keyring.NewRecoverySlot(r.keys.master, k, r.cipher, slotInfo(nil))
	if err != nil {
		return k, nil, err
	}
	return k, s, saveSlot(ctx, r.st, s)
}

// Errors of RemoveSlot, besides keyring.ErrLastSlot.
var (
	// ErrSlotInUse: the slot opened this repository; removing it would
	// lock out whoever is using it now.
	ErrSlotInUse = errors.New("refusing to remove key currently used")
	// ErrLastOfKind: the slot is the last passphrase slot or the last
	// recovery slot; RemoveSlot removes it only when forced.
	ErrLastOfKind = errors.New("refusing to remove the last key slot of its kind")
)

// RemoveSlot removes key slot id. It never removes the slot that opened
// the repository (ErrSlotInUse) or the last slot (keyring.ErrLastSlot),
// and removes the last slot of a kind (passphrase, recovery, escrow) only
// when force is set (ErrLastOfKind otherwise).
func (r *Repository) RemoveSlot(ctx context.Context, id string, force bool) error {
	if r.keys.slot != nil && r.keys.slot.ID == id {
		return fmt.Errorf("%w: key slot %s opened the repository; open it with another passphrase or recovery key to remove this one", ErrSlotInUse, shortSlot(id))
	}
	slots, _, err := LoadSlots(ctx, r.st)
	if err != nil {
		return err
	}
	if err := keyring.CheckRemovable(slots, id); err != nil {
		return err
	}
	if err := lastOfKind(slots, id); err != nil && !force {
		return err
	}
	if err := r.st.Remove(ctx, storage.Handle{Kind: storage.KindKeys, Name: id}); err != nil {
		return fmt.Errorf("remove key slot %s: %w", id, err)
	}
	return nil
}

// lastOfKind returns ErrLastOfKind when slot id is the only one of its kind.
func lastOfKind(slots []*keyring.Slot, id string) error {
	var kind keyring.SlotKind
	for _, s := range slots {
		if s.ID == id {
			kind = s.Kind
		}
	}
	for _, s := range slots {
		if s.ID != id && s.Kind == kind {
			return nil
		}
	}
	return fmt.Errorf("%w: key slot %s is the last %s slot (--force removes it)", ErrLastOfKind, shortSlot(id), kind)
}

func shortSlot(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// ChangePassphrase adds a slot for pass, then removes the slot that opened
// the repository. A crash in between leaves both usable.
func (r *Repository) ChangePassphrase(ctx context.Context, pass []byte, p keyring.KDFParams) (*keyring.Slot, error) {
	if r.keys.slot.Kind == keyring.SlotEscrow {
		// Replacing the escrow slot would take the escrow key's access away.
		return nil, ErrEscrowNotPassphrase
	}
	s, err := r.AddPassphrase(ctx, pass, p)
	if err != nil {
		return nil, err
	}
	old := r.keys.slot
	if err := r.st.Remove(ctx, old.Handle()); err != nil {
		return s, fmt.Errorf("new passphrase added, but removing the old slot %s failed: %w", old.ID, err)
	}
	r.keys.slot = s
	return s, nil
}

// RotateKey starts a new data-key term; new objects use it from now on.
func (r *Repository) RotateKey(ctx context.Context) (keyring.Term, error) {
	r.keys.mu.Lock()
	defer r.keys.mu.Unlock()
	t, err := r.keys.ring.NextTerm(time.Now())
	if err != nil {
		return t, err
	}
	sealed, err := keyring.SealTerm(r.keys.master, r.cipher, t)
	if err != nil {
		return t, err
	}
	if err := r.st.Save(ctx, keyring.TermHandle(t.Number), sealed); err != nil {
		return t, fmt.Errorf("save term %d: %w", t.Number, err)
	}
	return t, r.keys.ring.Add(t)
}

// Terms returns the keyring's terms (numbers and creation times).
func (r *Repository) Terms() []keyring.Term {
	r.keys.mu.RLock()
	defer r.keys.mu.RUnlock()
	return r.keys.ring.Terms()
}
