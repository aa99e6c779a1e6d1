package keyring

import (
	"bytes"
	"cmp"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
	"golang.org/x/crypto/argon2"
)

// SlotKind says what secret opens a key slot.
type SlotKind string

// Slot kinds, as written in the "kind" field.
const (
	SlotPassphrase SlotKind = "passphrase"
	SlotRecovery   SlotKind = "recovery"
)

// Limits on slot files. Parsing enforces them before any work is done, so a
// hostile repository cannot make a client allocate without bound.
const (
	MaxSlotSize   = 4096 // bytes of one slot file
	MaxInfoLength = 255  // bytes of the host and user fields
	slotIDBytes   = 16   // slot IDs are 32 lowercase hex characters
	kdfSaltSize   = 32
	slotVersion   = 1
)

// Argon2id bounds accepted in a slot. A slot is rejected (not clamped) when
// its parameters are outside them.
const (
	MinKDFTime      = 1
	MaxKDFTime      = 100
	MinKDFMemoryKiB = 8 * 1024        // 8 MiB
	MaxKDFMemoryKiB = 4 * 1024 * 1024 // 4 GiB
	MinKDFThreads   = 1
	MaxKDFThreads   = 255
	// MaxKDFCost bounds time × memory (in KiB), so a hostile slot cannot
	// combine the largest memory with the largest time: 64 GiB-passes is
	// about 340 times the default cost.
	MaxKDFCost = 64 * 1024 * 1024
)

const (
	kdfAlgArgon2id  = "argon2id"
	slotAADPrefix   = "coffer/v1/keyslot\x00"
	recoverySalt    = "coffer/v1/recovery-slot"
	recoveryKeyInfo = "coffer/v1/recovery-slot-key"
)

// KDFParams are the Argon2id parameters of a passphrase slot.
type KDFParams struct {
	Time      uint32 // passes over memory
	MemoryKiB uint32 // memory in KiB
	Threads   uint8  // lanes
}

// DefaultKDFParams returns the parameters new passphrase slots use in
// production: t=3, m=64 MiB, p=4 (RFC 9106's second recommended option).
// Tests pass cheaper parameters explicitly; there is no global to lower.
func DefaultKDFParams() KDFParams {
	return KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}
}

// Validate checks p against the accepted bounds.
func (p KDFParams) Validate() error {
	switch {
	case p.Time < MinKDFTime || p.Time > MaxKDFTime:
		return fmt.Errorf("argon2id time %d outside %d..%d", p.Time, MinKDFTime, MaxKDFTime)
	case p.MemoryKiB < MinKDFMemoryKiB || p.MemoryKiB > MaxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB outside %d..%d KiB", p.MemoryKiB, MinKDFMemoryKiB, MaxKDFMemoryKiB)
	case p.Threads < MinKDFThreads:
		return fmt.Errorf("argon2id threads %d outside %d..%d", p.Threads, MinKDFThreads, MaxKDFThreads)
	case uint64(p.Time)*uint64(p.MemoryKiB) > MaxKDFCost:
		return fmt.Errorf("argon2id cost time %d × memory %d KiB exceeds %d", p.Time, p.MemoryKiB, MaxKDFCost)
	}
	return nil
}

// SlotInfo is the descriptive metadata of a new slot. It is shown by
// `key list` and authenticated like the rest of the slot.
type SlotInfo struct {
	Created time.Time
	Host    string
	User    string
	// BeforeKDF, if not nil, runs before Argon2id allocates its work area
	// (it is not stored in the slot).
	BeforeKDF KDFHook
}

// KDFHook is called with the size in bytes of the Argon2id work area just
// before it is allocated. A program's main may pass PrepareWorkArea; library
// code never tunes the process itself.
type KDFHook func(workArea int)

// Slot is one key slot: the master secret wrapped under a passphrase or a
// recovery key, or sealed to an escrow public key. Every field is bound
// into the wrapping AEAD's associated data (for escrow slots, into the
// sealed plaintext), so editing any of them makes the slot fail to open.
type Slot struct {
	ID      string // storage name under keys/: 32 lowercase hex characters
	Kind    SlotKind
	Created time.Time // UTC, whole seconds
	Host    string
	User    string
	RepoID  []byte
	Cipher  crypto.Cipher
	KDF     KDFParams // zero for recovery and escrow slots
	// Recipient is the "age1…" public key an escrow slot is sealed to;
	// "" for other kinds.
	Recipient string

	salt    [kdfSaltSize]byte // Argon2id salt; zero for recovery and escrow slots
	wrapped []byte            // crypto.Seal output: nonce || ciphertext || tag; an age file for escrow slots
}

// Handle is where the slot is stored.
func (s *Slot) Handle() storage.Handle {
	return storage.Handle{Kind: storage.KindKeys, Name: s.ID}
}

// NewSlotID returns a fresh random slot ID.
func NewSlotID() (string, error) {
	b, err := crypto.RandomBytes(slotIDBytes)
	if err != nil {
		return "", fmt.Errorf("generate slot ID: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ValidSlotID reports whether id has the form of a slot ID.
func ValidSlotID(id string) bool {
	if len(id) != 2*slotIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// NewPassphraseSlot wraps m's master secret under passphrase with Argon2id
// params (DefaultKDFParams in production) and cipher c.
func NewPassphraseSlot(m *Master, passphrase []byte, c crypto.Cipher, params KDFParams, info SlotInfo) (*Slot, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("create key slot: empty passphrase")
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("create key slot: %w", err)
	}
	s, err := newSlot(m, SlotPassphrase, c, info)
	if err != nil {
		return nil, err
	}
	s.KDF = params
	salt, err := crypto.RandomBytes(kdfSaltSize)
	if err != nil {
		return nil, fmt.Errorf("create key slot: %w", err)
	}
	copy(s.salt[:], salt)
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("create key slot: %w", err)
	}
	if err := s.wrap(m, passphraseKey(passphrase, s.salt[:], params, info.BeforeKDF)); err != nil {
		return nil, err
	}
	return s, nil
}

// NewRecoverySlot wraps m's master secret under recovery key rk.
func NewRecoverySlot(m *Master, rk RecoveryKey, c crypto.Cipher, info SlotInfo) (*Slot, error) {
	s, err := newSlot(m, SlotRecovery, c, info)
	if err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("create key slot: %w", err)
	}
	if err := s.wrap(m, recoveryWrapKey(rk)); err != nil {
		return nil, err
	}
	return s, nil
}

func newSlot(m *Master, kind SlotKind, c crypto.Cipher, info SlotInfo) (*Slot, error) {
	id, err := NewSlotID()
	if err != nil {
		return nil, err
	}
	created := info.Created
	if created.IsZero() {
		created = time.Now()
	}
	return &Slot{
		ID:      id,
		Kind:    kind,
		Created: created.UTC().Truncate(time.Second),
		Host:    info.Host,
		User:    info.User,
		RepoID:  m.RepoID(),
		Cipher:  c,
	}, nil
}

func passphraseKey(passphrase, salt []byte, p KDFParams, before KDFHook) crypto.Key {
	var k crypto.Key
	if before != nil {
		before(int(p.MemoryKiB) << 10)
	}
	out := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, crypto.KeySize)
	copy(k[:], out)
	clear(out)
	return k
}

func recoveryWrapKey(rk RecoveryKey) crypto.Key {
	return crypto.DeriveKey(rk[:], []byte(recoverySalt), recoveryKeyInfo)
}

func (s *Slot) wrap(m *Master, k crypto.Key) error {
	a, err := crypto.NewAEAD(s.Cipher, k)
	if err != nil {
		return fmt.Errorf("create key slot: %w", err)
	}
	s.wrapped = crypto.Seal(a, nil, m.secret[:], s.aad())
	return nil
}

// unwrap opens the slot with k; crypto.ErrAuthFailed when k is wrong or any
// authenticated field was changed.
func (s *Slot) unwrap(k crypto.Key) (*Master, error) {
	a, err := crypto.NewAEAD(s.Cipher, k)
	if err != nil {
		return nil, err
	}
	return s.open(a)
}

func (s *Slot) open(a cipher.AEAD) (*Master, error) {
	pt, err := crypto.Open(a, nil, s.wrapped, s.aad())
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	if len(pt) != MasterSecretSize {
		// Authenticated but wrong length: only a buggy writer does this.
		return nil, fmt.Errorf("%w: slot %s wraps %d bytes, want %d", ErrInvalidSlot, s.ID, len(pt), MasterSecretSize)
	}
	var ms MasterSecret
	copy(ms[:], pt)
	return NewMaster(ms, s.RepoID)
}

// aad binds every field of the slot, each length-prefixed so that no two
// different slots share an encoding. The "v1" in the prefix is the version.
func (s *Slot) aad() []byte {
	b := []byte(slotAADPrefix)
	field := func(v []byte) {
		b = binary.BigEndian.AppendUint16(b, uint16(len(v))) // #nosec G115 -- every field is bounded far below 64 KiB by check()
		b = append(b, v...)
	}
	field(s.RepoID)
	field([]byte(s.ID))
	field([]byte(s.Kind))
	field([]byte(formatTime(s.Created)))
	field([]byte(s.Host))
	field([]byte(s.User))
	field([]byte(s.Cipher.String()))
	if s.Kind == SlotPassphrase {
		field([]byte(kdfAlgArgon2id))
		b = binary.BigEndian.AppendUint32(b, s.KDF.Time)
		b = binary.BigEndian.AppendUint32(b, s.KDF.MemoryKiB)
		b = append(b, s.KDF.Threads)
		field(s.salt[:])
	} else if s.Kind == SlotEscrow {
		field([]byte(s.Recipient))
	} else {
		field(nil)
	}
	return b
}

// check validates every field of a slot, whether built here or parsed.
func (s *Slot) check() error {
	if !ValidSlotID(s.ID) {
		return fmt.Errorf("slot ID %q is not 32 lowercase hex characters", s.ID)
	}
	if err := checkRepoID(s.RepoID); err != nil {
		return err
	}
	if !s.Cipher.Valid() {
		return fmt.Errorf("unknown cipher %d", uint8(s.Cipher))
	}
	if err := checkInfo("host", s.Host); err != nil {
		return err
	}
	if err := checkInfo("user", s.User); err != nil {
		return err
	}
	if y := s.Created.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("creation time %v out of range", s.Created)
	}
	switch s.Kind {
	case SlotPassphrase:
		if err := s.KDF.Validate(); err != nil {
			return err
		}
	case SlotRecovery:
		if s.KDF != (KDFParams{}) || s.salt != [kdfSaltSize]byte{} {
			return errors.New("recovery slot must not have KDF parameters")
		}
	case SlotEscrow:
		if s.KDF != (KDFParams{}) || s.salt != [kdfSaltSize]byte{} {
			return errors.New("escrow slot must not have KDF parameters")
		}
		if s.Cipher != EscrowCipher {
			return fmt.Errorf("escrow slot cipher is %s, must be %s", s.Cipher, EscrowCipher)
		}
		return checkEscrowRecipient(s.Recipient)
	default:
		return fmt.Errorf("unknown slot kind %q", s.Kind)
	}
	if s.Recipient != "" {
		return fmt.Errorf("%s slot must not have a recipient", s.Kind)
	}
	return nil
}

// checkWrapped checks the wrapped secret's form: its exact size, and for
// escrow slots the age file's structure.
func (s *Slot) checkWrapped() error {
	if s.Kind == SlotEscrow {
		return s.checkEscrowWrapped()
	}
	if len(s.wrapped) != MasterSecretSize+crypto.Overhead {
		return fmt.Errorf("wrapped secret is %d bytes, want %d", len(s.wrapped), MasterSecretSize+crypto.Overhead)
	}
	return nil
}

// checkInfo keeps host and user printable: they are shown in terminals, and
// control or bidi-override characters there could disguise a planted slot.
func checkInfo(field, v string) error {
	if len(v) > MaxInfoLength {
		return fmt.Errorf("%s is %d bytes, at most %d allowed", field, len(v), MaxInfoLength)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%s contains the non-printable character %U", field, r)
		}
	}
	return nil
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// parseTime accepts only the canonical form formatTime writes: RFC 3339, UTC
// ("Z"), whole seconds.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("created: %w", err)
	}
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, fmt.Errorf("created %q: year out of range", s)
	}
	if formatTime(t) != s {
		return time.Time{}, fmt.Errorf("created %q is not canonical RFC 3339 UTC with whole seconds", s)
	}
	return t.UTC(), nil
}

type slotJSON struct {
	Version   int      `json:"version"`
	Kind      string   `json:"kind"`
	Created   string   `json:"created"`
	Host      string   `json:"host"`
	User      string   `json:"user"`
	RepoID    string   `json:"repo_id"`
	Cipher    string   `json:"cipher"`
	KDF       *kdfJSON `json:"kdf,omitempty"`
	Recipient *string  `json:"recipient,omitempty"`
	Wrapped   string   `json:"wrapped"`
}

type kdfJSON struct {
	Alg       string `json:"alg"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint32 `json:"threads"`
	Salt      string `json:"salt"`
}

// Marshal encodes the slot as the JSON stored at keys/<ID>.
func (s *Slot) Marshal() ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrInvalidSlot, s.ID, err)
	}
	if err := s.checkWrapped(); err != nil {
		return nil, fmt.Errorf("%w %s: slot was not created by NewPassphraseSlot, NewRecoverySlot or NewEscrowSlot: %w", ErrInvalidSlot, s.ID, err)
	}
	j := slotJSON{
		Version: slotVersion,
		Kind:    string(s.Kind),
		Created: formatTime(s.Created),
		Host:    s.Host,
		User:    s.User,
		RepoID:  hex.EncodeToString(s.RepoID),
		Cipher:  s.Cipher.String(),
		Wrapped: base64.StdEncoding.EncodeToString(s.wrapped),
	}
	if s.Kind == SlotPassphrase {
		j.KDF = &kdfJSON{
			Alg:       kdfAlgArgon2id,
			Time:      s.KDF.Time,
			MemoryKiB: s.KDF.MemoryKiB,
			Threads:   uint32(s.KDF.Threads),
			Salt:      base64.StdEncoding.EncodeToString(s.salt[:]),
		}
	}
	if s.Kind == SlotEscrow {
		j.Recipient = &s.Recipient
	}
	out, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("encode key slot %s: %w", s.ID, err)
	}
	if len(out) > MaxSlotSize {
		return nil, fmt.Errorf("%w %s: encodes to %d bytes, limit %d", ErrInvalidSlot, s.ID, len(out), MaxSlotSize)
	}
	return out, nil
}

// ParseSlot decodes and validates the slot stored as keys/<id>. It checks
// form and bounds only; whether the slot is authentic is known when it opens.
// Errors wrap ErrInvalidSlot.
func ParseSlot(id string, data []byte) (*Slot, error) {
	s, err := parseSlot(id, data)
	if err != nil {
		return nil, fmt.Errorf("%w keys/%.40q: %w", ErrInvalidSlot, id, err)
	}
	return s, nil
}

func parseSlot(id string, data []byte) (*Slot, error) {
	if !ValidSlotID(id) {
		return nil, errors.New("name is not 32 lowercase hex characters")
	}
	if len(data) > MaxSlotSize {
		return nil, fmt.Errorf("%d bytes, limit %d", len(data), MaxSlotSize)
	}
	var j slotJSON
	if err := decodeStrict(data, &j); err != nil {
		return nil, err
	}
	if j.Version != slotVersion {
		return nil, fmt.Errorf("unsupported version %d", j.Version)
	}
	s := &Slot{ID: id, Kind: SlotKind(j.Kind), Host: j.Host, User: j.User}
	var err error
	if s.Created, err = parseTime(j.Created); err != nil {
		return nil, err
	}
	if s.RepoID, err = decodeHex(j.RepoID); err != nil {
		return nil, fmt.Errorf("repo_id: %w", err)
	}
	switch j.Cipher {
	case crypto.AES256GCM.String():
		s.Cipher = crypto.AES256GCM
	case crypto.ChaCha20Poly1305.String():
		s.Cipher = crypto.ChaCha20Poly1305
	default:
		return nil, fmt.Errorf("unknown cipher %.40q", j.Cipher)
	}
	if err := s.parseKindFields(&j); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.wrapped, err = decodeB64(j.Wrapped); err != nil {
		return nil, fmt.Errorf("wrapped: %w", err)
	}
	if err := s.checkWrapped(); err != nil {
		return nil, err
	}
	return s, nil
}

// parseKindFields reads the fields only some kinds of slot have: kdf
// (passphrase) and recipient (escrow).
func (s *Slot) parseKindFields(j *slotJSON) error {
	switch s.Kind {
	case SlotPassphrase:
		if j.KDF == nil {
			return errors.New("passphrase slot without kdf")
		}
		if j.KDF.Alg != kdfAlgArgon2id {
			return fmt.Errorf("unsupported kdf %.40q", j.KDF.Alg)
		}
		if j.KDF.Threads > MaxKDFThreads {
			return fmt.Errorf("argon2id threads %d outside %d..%d", j.KDF.Threads, MinKDFThreads, MaxKDFThreads)
		}
		s.KDF = KDFParams{Time: j.KDF.Time, MemoryKiB: j.KDF.MemoryKiB, Threads: uint8(j.KDF.Threads)}
		salt, err := decodeB64(j.KDF.Salt)
		if err != nil {
			return fmt.Errorf("kdf salt: %w", err)
		}
		if len(salt) != kdfSaltSize {
			return fmt.Errorf("kdf salt is %d bytes, want %d", len(salt), kdfSaltSize)
		}
		copy(s.salt[:], salt)
	case SlotRecovery, SlotEscrow:
		if j.KDF != nil {
			return fmt.Errorf("%s slot must not have a kdf", s.Kind)
		}
	}
	if (s.Kind == SlotEscrow) != (j.Recipient != nil) {
		return errors.New("a recipient is required in escrow slots and allowed in no others")
	}
	if j.Recipient != nil {
		s.Recipient = *j.Recipient
	}
	return nil
}

// decodeStrict decodes one JSON object into v: unknown fields, duplicate
// keys, keys not spelled exactly as documented and trailing data are errors.
func decodeStrict(data []byte, v any) error {
	if err := checkKeys(data); err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

// checkKeys rejects JSON in which any object repeats a key or has a key
// that is not lowercase ASCII. encoding/json would silently keep the last
// of two duplicates, and matches field names case-insensitively (with
// Unicode folding: "\u212aey" is "key"), so without this check one slot
// could be spelled many ways.
func checkKeys(data []byte) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	type frame struct {
		keys     map[string]bool
		isObject bool
		wantKey  bool
	}
	var stack []frame
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.isObject {
				if top.wantKey {
					if k, ok := tok.(string); ok {
						if top.keys[k] {
							return fmt.Errorf("duplicate key %.40q", k)
						}
						if !lowerASCII(k) {
							return fmt.Errorf("key %.40q is not lowercase ASCII", k)
						}
						top.keys[k] = true
						top.wantKey = false
						continue
					}
				} else {
					top.wantKey = true
				}
			}
		}
		switch tok {
		case json.Delim('{'):
			if len(stack) >= 8 {
				return errors.New("JSON nested too deeply")
			}
			stack = append(stack, frame{keys: map[string]bool{}, isObject: true, wantKey: true})
		case json.Delim('['):
			if len(stack) >= 8 {
				return errors.New("JSON nested too deeply")
			}
			stack = append(stack, frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if len(stack) > 0 && stack[len(stack)-1].isObject {
				stack[len(stack)-1].wantKey = true
			}
		}
	}
}

func lowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c == '_') {
			return false
		}
	}
	return len(s) > 0
}

// decodeB64 accepts only canonical padded standard base64 (encoding/base64
// would otherwise skip newlines).
func decodeB64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not canonical base64")
	}
	return b, nil
}

// decodeHex accepts only lowercase hex.
func decodeHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if hex.EncodeToString(b) != s {
		return nil, errors.New("not lowercase hex")
	}
	return b, nil
}

// SlotFile is a slot as listed from storage: its name and raw bytes.
type SlotFile struct {
	ID   string
	Data []byte
}

// ParseSlots parses every file. Bad files do not stop the others: each one
// is returned as an error (wrapping ErrInvalidSlot) for the caller to show.
func ParseSlots(files []SlotFile) ([]*Slot, []error) {
	var slots []*Slot
	var problems []error
	for _, f := range files {
		s, err := ParseSlot(f.ID, f.Data)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		slots = append(slots, s)
	}
	return slots, problems
}

// Unlock tries the slots with secret and returns the master secret of the
// first that opens, and that slot, as UnlockWithOptions does with only
// repoID set. If repoID is not nil, slots of other repositories are skipped;
// callers that know the repository ID (from a local cache) should pass it.
func Unlock(slots []*Slot, secret []byte, repoID []byte) (*Master, *Slot, error) {
	return UnlockWithOptions(slots, secret, UnlockOptions{RepoID: repoID})
}

// UnlockWith is Unlock, calling before (if not nil) ahead of each Argon2id
// derivation.
func UnlockWith(slots []*Slot, secret []byte, repoID []byte, before KDFHook) (*Master, *Slot, error) {
	return UnlockWithOptions(slots, secret, UnlockOptions{RepoID: repoID, BeforeKDF: before})
}

// Limits on the Argon2id work one unlock does, so that slots planted by a
// hostile storage cannot make every unlock slow (docs/security.md §3).
const (
	// DefaultUnlockMaxMemoryKiB is the most memory a slot may ask for
	// unless UnlockOptions.MaxMemoryKiB allows more: 2 GiB, the larger of
	// RFC 9106's two recommended settings.
	DefaultUnlockMaxMemoryKiB = 2 << 20
	// UnlockMaxPasses bounds time × memory of a slot that is run, in units
	// of the memory limit: 4 passes over the most memory allowed.
	UnlockMaxPasses = 4
	// DefaultUnlockMaxSlots is how many passphrase slots one unlock runs
	// Argon2id for at most.
	DefaultUnlockMaxSlots = 8
)

// ErrKDFLimit marks a passphrase slot that was not tried because its
// Argon2id settings exceed the unlock limits.
var ErrKDFLimit = errors.New("argon2id settings above the unlock limit")

// UnlockOptions are UnlockWithOptions' settings; the zero value is valid.
type UnlockOptions struct {
	// RepoID, if not nil, skips slots of other repositories.
	RepoID []byte
	// BeforeKDF, if not nil, runs ahead of each Argon2id derivation.
	BeforeKDF KDFHook
	// Prefer is the ID of the slot to try first: the one that opened the
	// repository last time, which the caller remembers.
	Prefer string
	// MaxMemoryKiB is the most Argon2id memory a slot may ask for
	// (0: DefaultUnlockMaxMemoryKiB); slots above it, or above
	// UnlockMaxPasses passes over it, are not tried.
	MaxMemoryKiB uint32
	// MaxSlots bounds the passphrase slots tried (0: DefaultUnlockMaxSlots).
	MaxSlots int
	// Escrow, if not nil, is the escrow identity to unlock with: the
	// secret is then ignored and only escrow slots are tried.
	Escrow *EscrowIdentity
	// Verify, if not nil, checks a master secret a slot opened to (the
	// repository layer opens its config with it). A slot whose master
	// fails it is reported and the next slot is tried, so a slot copied
	// from another repository cannot stop the real one from opening.
	Verify func(*Master) error
}

// UnlockWithOptions tries the slots with secret and returns the master
// secret of the first that opens, and that slot. If secret parses as a
// recovery key only recovery slots are tried: a recovery key never runs
// Argon2id. Otherwise passphrase slots are tried: o.Prefer first, then the
// others from the cheapest Argon2id settings up, at most o.MaxSlots of
// them, skipping any whose settings exceed the limits (reported, wrapping
// ErrKDFLimit). A slot opens only if its AEAD tag verifies: nothing else is
// compared. The result is ErrWrongPassword when no slot opens, ErrNoSlots
// when there is none to try.
func UnlockWithOptions(slots []*Slot, secret []byte, o UnlockOptions) (*Master, *Slot, error) {
	var candidates []*Slot
	for _, s := range slots {
		if s == nil || (o.RepoID != nil && !bytes.Equal(s.RepoID, o.RepoID)) {
			continue
		}
		candidates = append(candidates, s)
	}
	if len(candidates) == 0 {
		return nil, nil, ErrNoSlots
	}
	u := unlocker{opts: o}
	if o.Escrow != nil {
		return u.unlockEscrow(candidates, o.Escrow)
	}
	if rk, err := parseRecoveryKey(secret); err == nil {
		k := recoveryWrapKey(rk)
		clear(rk[:])
		for _, s := range candidates {
			if s.Kind == SlotRecovery && s.check() == nil {
				if m := u.try(s, k); m != nil {
					return m, s, nil
				}
			}
		}
		return nil, nil, u.failure(len(candidates))
	}
	maxSlots := o.MaxSlots
	if maxSlots <= 0 {
		maxSlots = DefaultUnlockMaxSlots
	}
	for _, s := range passphraseOrder(candidates, o.Prefer) {
		if err := u.withinLimits(s); err != nil {
			u.problems = append(u.problems, err)
			continue
		}
		if u.tried >= maxSlots {
			u.problems = append(u.problems, fmt.Errorf("gave up after %d passphrase slots; %s and any others were not tried", maxSlots, s.ID))
			break
		}
		if m := u.try(s, passphraseKey(secret, s.salt[:], s.KDF, o.BeforeKDF)); m != nil {
			return m, s, nil
		}
	}
	return nil, nil, u.failure(len(candidates))
}

// unlocker counts the slots one unlock tries and collects its problems.
type unlocker struct {
	opts      UnlockOptions
	tried     int
	problems  []error
	verifyErr error // the first slot that opened but failed opts.Verify
}

func (u *unlocker) try(s *Slot, k crypto.Key) *Master {
	u.tried++
	m, err := s.unwrap(k)
	if err != nil && !errors.Is(err, crypto.ErrAuthFailed) {
		u.problems = append(u.problems, err)
	}
	if m != nil && !u.verified(s, m) {
		return nil
	}
	return m
}

// verified runs opts.Verify on the master slot s opened to; a failure is
// kept (and m wiped) so that the unlock reports it if no slot succeeds.
func (u *unlocker) verified(s *Slot, m *Master) bool {
	if u.opts.Verify == nil {
		return true
	}
	err := u.opts.Verify(m)
	if err == nil {
		return true
	}
	m.Wipe()
	err = fmt.Errorf("key slot %s opens, but it belongs to another repository (repo_id %.8x…) or the repository is damaged: %w", s.ID, s.RepoID, err)
	if u.verifyErr == nil {
		u.verifyErr = err
	} else {
		u.problems = append(u.problems, err)
	}
	return false
}

func (u *unlocker) failure(candidates int) error {
	if u.verifyErr != nil {
		return errors.Join(append([]error{u.verifyErr}, u.problems...)...)
	}
	err := fmt.Errorf("%w (tried %d of %d key slots)", ErrWrongPassword, u.tried, candidates)
	return errors.Join(append([]error{err}, u.problems...)...)
}

// withinLimits checks a passphrase slot's Argon2id settings against the
// unlock limits.
func (u *unlocker) withinLimits(s *Slot) error {
	limit := u.opts.MaxMemoryKiB
	if limit == 0 {
		limit = DefaultUnlockMaxMemoryKiB
	}
	if s.KDF.MemoryKiB > limit || uint64(s.KDF.Time)*uint64(s.KDF.MemoryKiB) > UnlockMaxPasses*uint64(limit) {
		return fmt.Errorf("key slot %s not tried: %w: it asks for %d passes over %d MiB, the limit is %d MiB and %d passes over it (raise the limit to try it)",
			s.ID, ErrKDFLimit, s.KDF.Time, s.KDF.MemoryKiB>>10, limit>>10, UnlockMaxPasses)
	}
	return nil
}

// passphraseOrder returns the well-formed passphrase slots in the order
// they are tried: prefer first, then by Argon2id cost (time × memory),
// cheapest first, ties in their listed order.
func passphraseOrder(candidates []*Slot, prefer string) []*Slot {
	var out []*Slot
	for _, s := range candidates {
		if s.Kind == SlotPassphrase && s.check() == nil {
			out = append(out, s)
		}
	}
	rank := func(s *Slot) (bool, uint64) {
		return s.ID != prefer || prefer == "", uint64(s.KDF.Time) * uint64(s.KDF.MemoryKiB)
	}
	slices.SortStableFunc(out, func(a, b *Slot) int {
		pa, ca := rank(a)
		pb, cb := rank(b)
		if pa != pb {
			if !pa {
				return -1
			}
			return 1
		}
		return cmp.Compare(ca, cb)
	})
	return out
}

// CheckRemovable reports whether slot id may be removed from slots: it must
// exist and must not be the last one.
func CheckRemovable(slots []*Slot, id string) error {
	found := false
	for _, s := range slots {
		if s.ID == id {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("no key slot %q", id)
	}
	if len(slots) < 2 {
		return ErrLastSlot
	}
	return nil
}
