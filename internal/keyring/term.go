package keyring

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
)

// KEKTerm is the term number written in the envelope header of objects
// sealed directly under the KEK: the config object and the keyring terms.
// Data terms are numbered from 1.
const KEKTerm uint32 = 0

// MaxTermObjectSize bounds a stored term object; larger ones are rejected
// before decryption.
const MaxTermObjectSize = 1024

const termVersion = 1

// Term is one immutable data key of the keyring. Objects name the term whose
// key sealed them in their envelope header, so old terms stay readable after
// rotation.
type Term struct {
	Number  uint32
	Created time.Time // UTC, whole seconds
	Key     crypto.Key
}

// NewTerm returns term number n (n ≥ 1) with a fresh random key.
func NewTerm(n uint32, now time.Time) (Term, error) {
	if n == KEKTerm {
		return Term{}, fmt.Errorf("%w: data terms are numbered from 1", ErrInvalidTerm)
	}
	k, err := crypto.NewRandomKey()
	if err != nil {
		return Term{}, fmt.Errorf("create term %d: %w", n, err)
	}
	return Term{Number: n, Created: now.UTC().Truncate(time.Second), Key: k}, nil
}

// TermName is the storage name of term n: 8 lowercase hex digits.
func TermName(n uint32) string { return fmt.Sprintf("%08x", n) }

// TermHandle is where term n is stored.
func TermHandle(n uint32) storage.Handle {
	return storage.Handle{Kind: storage.KindKeyring, Name: TermName(n)}
}

// ParseTermName is the inverse of TermName; it rejects term 0 and any name
// that is not exactly 8 lowercase hex digits.
func ParseTermName(name string) (uint32, error) {
	if len(name) != 8 {
		return 0, fmt.Errorf("%w: name %.40q is not 8 hex digits", ErrInvalidTerm, name)
	}
	b, err := decodeHex(name)
	if err != nil {
		return 0, fmt.Errorf("%w: name %q: %w", ErrInvalidTerm, name, err)
	}
	n := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if n == KEKTerm {
		return 0, fmt.Errorf("%w: name %q is term 0, which is the KEK", ErrInvalidTerm, name)
	}
	return n, nil
}

type termJSON struct {
	Version int    `json:"version"`
	Number  uint32 `json:"number"`
	Created string `json:"created"`
	Key     string `json:"key"`
}

// SealTerm encrypts t under m's KEK for storage at TermHandle(t.Number).
func SealTerm(m *Master, c crypto.Cipher, t Term) ([]byte, error) {
	if t.Number == KEKTerm {
		return nil, fmt.Errorf("%w: data terms are numbered from 1", ErrInvalidTerm)
	}
	if t.Key == (crypto.Key{}) {
		return nil, fmt.Errorf("%w %d: all-zero key", ErrInvalidTerm, t.Number)
	}
	pt, err := marshalTerm(t)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	out, err := crypto.SealObject(crypto.KindKeyring, c, KEKTerm, m.KEK(), m.repoID, TermHandle(t.Number).String(), pt)
	if err != nil {
		return nil, fmt.Errorf("seal term %d: %w", t.Number, err)
	}
	return out, nil
}

func marshalTerm(t Term) ([]byte, error) {
	if y := t.Created.Year(); y < 1 || y > 9999 {
		return nil, fmt.Errorf("%w %d: creation time out of range", ErrInvalidTerm, t.Number)
	}
	out, err := json.Marshal(termJSON{
		Version: termVersion,
		Number:  t.Number,
		Created: formatTime(t.Created),
		Key:     base64.StdEncoding.EncodeToString(t.Key[:]),
	})
	if err != nil {
		return nil, fmt.Errorf("encode term %d: %w", t.Number, err)
	}
	return out, nil
}

// OpenTerm decrypts and validates the term object stored under name (the
// name inside keyring/). It fails unless the object authenticates under m's
// KEK at exactly that name and the number inside matches the name.
func OpenTerm(m *Master, name string, data []byte) (Term, error) {
	n, err := ParseTermName(name)
	if err != nil {
		return Term{}, err
	}
	if len(data) > MaxTermObjectSize {
		return Term{}, fmt.Errorf("%w %s: %d bytes, limit %d", ErrInvalidTerm, name, len(data), MaxTermObjectSize)
	}
	pt, err := crypto.OpenObject(crypto.KindKeyring, m.KEKLookup(), m.repoID, TermHandle(n).String(), data)
	if err != nil {
		return Term{}, fmt.Errorf("open keyring term %s: %w", name, err)
	}
	defer clear(pt)
	t, err := parseTermPlaintext(pt)
	if err != nil {
		return Term{}, fmt.Errorf("%w %s: %w", ErrInvalidTerm, name, err)
	}
	if t.Number != n {
		return Term{}, fmt.Errorf("%w %s: object holds term %d", ErrInvalidTerm, name, t.Number)
	}
	return t, nil
}

func parseTermPlaintext(pt []byte) (Term, error) {
	var j termJSON
	if err := decodeStrict(pt, &j); err != nil {
		return Term{}, err
	}
	if j.Version != termVersion {
		return Term{}, fmt.Errorf("unsupported version %d", j.Version)
	}
	if j.Number == KEKTerm {
		return Term{}, errors.New("term number 0 is reserved for the KEK")
	}
	created, err := parseTime(j.Created)
	if err != nil {
		return Term{}, err
	}
	k, err := decodeB64(j.Key)
	if err != nil {
		return Term{}, fmt.Errorf("key: %w", err)
	}
	defer clear(k)
	if len(k) != crypto.KeySize {
		return Term{}, fmt.Errorf("key is %d bytes, want %d", len(k), crypto.KeySize)
	}
	t := Term{Number: j.Number, Created: created}
	copy(t.Key[:], k)
	if t.Key == (crypto.Key{}) {
		return Term{}, errors.New("all-zero key")
	}
	return t, nil
}

// TermFile is a term object as listed from storage: its name and raw bytes.
type TermFile struct {
	Name string
	Data []byte
}

// OpenRing opens every term object and builds the ring. It fails closed: one
// object that does not open is an error, because writing under a stale
// current term would undo a rotation.
func OpenRing(m *Master, files []TermFile) (*Ring, error) {
	terms := make([]Term, 0, len(files))
	for _, f := range files {
		t, err := OpenTerm(m, f.Name, f.Data)
		if err != nil {
			return nil, err
		}
		terms = append(terms, t)
	}
	return NewRing(m, terms)
}

// Ring is a repository's keyring: the KEK plus every data term. It is not
// safe for concurrent mutation; Lookup is safe once the ring is built.
type Ring struct {
	kek   crypto.Key
	terms map[uint32]Term
	max   uint32
}

// NewRing builds a ring from at least one term; numbers must be distinct
// and at least 1.
func NewRing(m *Master, terms []Term) (*Ring, error) {
	if len(terms) == 0 {
		return nil, fmt.Errorf("%w: the keyring has no terms", ErrUnknownTerm)
	}
	r := &Ring{kek: m.KEK(), terms: make(map[uint32]Term, len(terms))}
	for _, t := range terms {
		if err := r.Add(t); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Add puts a new term into the ring, typically after it was stored.
func (r *Ring) Add(t Term) error {
	if t.Number == KEKTerm {
		return fmt.Errorf("%w: data terms are numbered from 1", ErrInvalidTerm)
	}
	if _, dup := r.terms[t.Number]; dup {
		return fmt.Errorf("%w: term %d appears twice", ErrInvalidTerm, t.Number)
	}
	r.terms[t.Number] = t
	r.max = max(r.max, t.Number)
	return nil
}

// Current is the highest term: new objects are sealed under it.
func (r *Ring) Current() Term { return r.terms[r.max] }

// Terms returns every data term in ascending order.
func (r *Ring) Terms() []Term {
	out := make([]Term, 0, len(r.terms))
	for _, t := range r.terms {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Term) int { return cmp.Compare(a.Number, b.Number) })
	return out
}

// NextTerm returns a new term numbered Current()+1 without adding it. The
// caller seals it with SealTerm, saves it at TermHandle (a save that fails
// with storage.ErrExists means another client rotated first: reload), then
// calls Add. Rotation never rewrites old terms, so old data stays readable.
func (r *Ring) NextTerm(now time.Time) (Term, error) {
	if r.max == math.MaxUint32 {
		return Term{}, fmt.Errorf("%w: term numbers exhausted", ErrInvalidTerm)
	}
	return NewTerm(r.max+1, now)
}

// Lookup satisfies crypto.KeyLookup for every object kind: term 0 is the
// KEK (config and keyring objects), terms from 1 are data keys. Readers of
// data objects should prefer DataLookup.
func (r *Ring) Lookup(term uint32) (crypto.Key, error) {
	if term == KEKTerm {
		return r.kek, nil
	}
	return r.DataLookup(term)
}

// DataLookup is Lookup without the KEK: objects other than config and
// keyring terms must name a data term, so the KEK is never used for data.
func (r *Ring) DataLookup(term uint32) (crypto.Key, error) {
	t, ok := r.terms[term]
	if !ok {
		return crypto.Key{}, fmt.Errorf("%w %d (the highest term is %d)", ErrUnknownTerm, term, r.max)
	}
	return t.Key, nil
}
