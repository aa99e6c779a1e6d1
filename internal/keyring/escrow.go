package keyring

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/coffer-backup/coffer/internal/crypto"
)

// SlotEscrow is the kind of a slot that seals the master secret to an
// X25519 public key with age (docs/format.md §3): only the holder of the
// offline private key (an escrow identity) opens it.
const SlotEscrow SlotKind = "escrow"

// Limits and constants of escrow slots and key files.
const (
	// MaxEscrowWrapped bounds the age file inside an escrow slot. The
	// largest slot coffer writes (host and user of 255 bytes each) seals
	// about 1 KiB.
	MaxEscrowWrapped = 2048
	// MaxEscrowKeyFile bounds an escrow identity or public-key file.
	MaxEscrowKeyFile = 64 << 10
	// EscrowCipher is what an escrow slot's "cipher" field must say: the
	// AEAD age wraps its file key and its payload with.
	EscrowCipher = crypto.ChaCha20Poly1305

	ageHeaderMagic   = "age-encryption.org/v1\n"
	ageStanzaX25519  = "X25519"
	ageStanzaBody    = 32 // wrapped 16-byte file key and its tag
	ageNonceSize     = 16 // the payload's nonce
	ageTagSize       = 16 // one payload chunk's tag
	escrowKeyComment = "# coffer escrow key: the private half opens every repository that has an escrow slot for it; keep it offline\n"
)

// Errors of escrow keys and slots.
var (
	// ErrWrongEscrowKey: no escrow slot opens with the given identity. It
	// matches ErrWrongPassword too, so callers (and exit codes) treat a
	// wrong escrow key as a wrong passphrase.
	ErrWrongEscrowKey error = wrongKeyError("wrong escrow key: no escrow key slot opens with it")
	// ErrEscrowBinding: an escrow slot opened, but the repository ID or
	// slot fields sealed inside it differ from the slot's own: it was
	// moved from another repository or edited.
	ErrEscrowBinding = errors.New("escrow slot was sealed for another repository or has been edited")
	// ErrBadEscrowKey: a file is not a well-formed escrow identity or
	// public key.
	ErrBadEscrowKey = errors.New("invalid escrow key")
)

type wrongKeyError string

func (e wrongKeyError) Error() string        { return string(e) }
func (e wrongKeyError) Is(target error) bool { return target == ErrWrongPassword }

// EscrowRecipient is the public half of an escrow key pair: an age X25519
// recipient ("age1…"). The zero value is not usable.
type EscrowRecipient struct {
	r *age.X25519Recipient
}

// ParseEscrowRecipient parses an "age1…" public key. Its errors never
// quote s, which may be a private key given by mistake.
func ParseEscrowRecipient(s string) (EscrowRecipient, error) {
	if strings.Contains(strings.ToUpper(s), "SECRET-KEY") {
		return EscrowRecipient{}, fmt.Errorf("%w: this is a private key; give the public key (the .pub file)", ErrBadEscrowKey)
	}
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return EscrowRecipient{}, fmt.Errorf("%w: not an age X25519 public key (age1…)", ErrBadEscrowKey)
	}
	return EscrowRecipient{r: r}, nil
}

// ParseEscrowRecipientFile parses a public-key file as `coffer escrow
// keygen` (or age-keygen -y) writes it: one "age1…" line; empty lines and
// lines starting with "#" are ignored.
func ParseEscrowRecipientFile(data []byte) (EscrowRecipient, error) {
	if len(data) > MaxEscrowKeyFile {
		return EscrowRecipient{}, fmt.Errorf("%w: public-key file is %d bytes, at most %d", ErrBadEscrowKey, len(data), MaxEscrowKeyFile)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return EscrowRecipient{}, fmt.Errorf("%w: %v", ErrBadEscrowKey, err)
	}
	if len(lines) != 1 {
		return EscrowRecipient{}, fmt.Errorf("%w: a public-key file holds exactly one age1… key, found %d lines", ErrBadEscrowKey, len(lines))
	}
	return ParseEscrowRecipient(lines[0])
}

// String returns the "age1…" encoding ("" for the zero value).
func (r EscrowRecipient) String() string {
	if r.r == nil {
		return ""
	}
	return r.r.String()
}

// Fingerprint identifies the key in listings; see EscrowFingerprint.
func (r EscrowRecipient) Fingerprint() string { return EscrowFingerprint(r.String()) }

// EscrowFingerprint is "SHA256:" and the unpadded base64 of SHA-256 of a
// public key's "age1…" text, in the style of ssh-keygen -l.
func EscrowFingerprint(recipient string) string {
	h := sha256.Sum256([]byte(recipient))
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(h[:])
}

// EscrowIdentity is the private half of an escrow key pair: an age X25519
// identity ("AGE-SECRET-KEY-1…"), kept offline.
type EscrowIdentity struct {
	id *age.X25519Identity
}

// GenerateEscrowIdentity makes a new key pair from the CSPRNG.
func GenerateEscrowIdentity() (*EscrowIdentity, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, fmt.Errorf("generate escrow key: %w", err)
	}
	return &EscrowIdentity{id: id}, nil
}

// ParseEscrowIdentity parses an identity file in age's format (as `coffer
// escrow keygen` and age-keygen write it): exactly one X25519 secret key;
// empty lines and lines starting with "#" are ignored.
func ParseEscrowIdentity(data []byte) (*EscrowIdentity, error) {
	if len(data) > MaxEscrowKeyFile {
		return nil, fmt.Errorf("%w: identity file is %d bytes, at most %d", ErrBadEscrowKey, len(data), MaxEscrowKeyFile)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("age1")) {
		return nil, fmt.Errorf("%w: this is a public key; give the private key file", ErrBadEscrowKey)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEscrowKey, err)
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("%w: an identity file holds exactly one key, found %d", ErrBadEscrowKey, len(ids))
	}
	id, ok := ids[0].(*age.X25519Identity)
	if !ok {
		return nil, fmt.Errorf("%w: only X25519 keys (AGE-SECRET-KEY-1…) are escrow keys", ErrBadEscrowKey)
	}
	return &EscrowIdentity{id: id}, nil
}

// Recipient returns the public half.
func (i *EscrowIdentity) Recipient() EscrowRecipient { return EscrowRecipient{r: i.id.Recipient()} }

// MarshalFile returns the identity file: comments with the creation time
// and the public key, then the secret key, as age-keygen writes it.
func (i *EscrowIdentity) MarshalFile(created time.Time) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# created: %s\n# public key: %s\n%s%s\n",
		formatTime(created), i.id.Recipient(), escrowKeyComment, i.id)
	return b.Bytes()
}

// NewEscrowSlot seals m's master secret to recipient r. The age plaintext
// is the slot's binding (every field, as in the AAD of other slots) and
// then the master secret, so that the slot opens only as itself.
func NewEscrowSlot(m *Master, r EscrowRecipient, info SlotInfo) (*Slot, error) {
	if r.r == nil {
		return nil, fmt.Errorf("create escrow slot: %w: no public key", ErrBadEscrowKey)
	}
	s, err := newSlot(m, SlotEscrow, EscrowCipher, info)
	if err != nil {
		return nil, err
	}
	s.Recipient = r.String()
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("create escrow slot: %w", err)
	}
	pt := append(s.aad(), m.secret[:]...)
	defer clear(pt)
	var out bytes.Buffer
	w, err := age.Encrypt(&out, r.r)
	if err != nil {
		return nil, fmt.Errorf("create escrow slot: %w", err)
	}
	if _, err := w.Write(pt); err != nil {
		return nil, fmt.Errorf("create escrow slot: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("create escrow slot: %w", err)
	}
	s.wrapped = out.Bytes()
	if err := s.checkEscrowWrapped(); err != nil {
		return nil, fmt.Errorf("create escrow slot: %w", err)
	}
	return s, nil
}

// checkEscrowRecipient accepts only the canonical "age1…" form.
func checkEscrowRecipient(s string) error {
	r, err := age.ParseX25519Recipient(s)
	if err != nil {
		return errors.New("recipient is not an age X25519 public key (age1…)")
	}
	if r.String() != s {
		return errors.New("recipient is not in canonical (lowercase) form")
	}
	return nil
}

// checkEscrowWrapped checks the age file's form without the private key:
// a canonical header with exactly one X25519 stanza, then a payload of
// exactly the size the slot's binding and a master secret seal to.
func (s *Slot) checkEscrowWrapped() error {
	w := s.wrapped
	if len(w) > MaxEscrowWrapped {
		return fmt.Errorf("wrapped age file is %d bytes, at most %d", len(w), MaxEscrowWrapped)
	}
	if !bytes.HasPrefix(w, []byte(ageHeaderMagic)) {
		return errors.New("wrapped is not an age file")
	}
	hdr, err := age.ExtractHeader(bytes.NewReader(w))
	if err != nil {
		return fmt.Errorf("wrapped age file: %v", err)
	}
	if !bytes.HasPrefix(w, hdr) {
		return errors.New("wrapped age file header is not canonical")
	}
	var shape stanzaShape
	if _, err := age.DecryptHeader(hdr, &shape); err == nil || shape.err != nil || !shape.called {
		return fmt.Errorf("wrapped age file: %w", cmpOr(shape.err, errors.New("unexpected header")))
	}
	want := len(hdr) + ageNonceSize + len(s.aad()) + MasterSecretSize + ageTagSize
	if len(w) != want {
		return fmt.Errorf("wrapped age file is %d bytes, want %d", len(w), want)
	}
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// stanzaShape is an age identity that unwraps nothing: it only checks
// that the header holds exactly one well-formed X25519 stanza.
type stanzaShape struct {
	called bool
	err    error
}

func (c *stanzaShape) Unwrap(st []*age.Stanza) ([]byte, error) {
	c.called = true
	switch {
	case len(st) != 1:
		c.err = fmt.Errorf("%d recipient stanzas, want 1", len(st))
	case st[0].Type != ageStanzaX25519 || len(st[0].Args) != 1:
		c.err = fmt.Errorf("recipient stanza %.20q is not X25519", st[0].Type)
	case len(st[0].Body) != ageStanzaBody:
		c.err = fmt.Errorf("X25519 stanza body is %d bytes, want %d", len(st[0].Body), ageStanzaBody)
	}
	return nil, age.ErrIncorrectIdentity
}

// openEscrow opens an escrow slot with id. crypto.ErrAuthFailed: the slot
// is sealed to another key. ErrEscrowBinding: it opens, but what it seals
// does not match the slot's fields.
func (s *Slot) openEscrow(id *EscrowIdentity) (*Master, error) {
	r, err := age.Decrypt(bytes.NewReader(s.wrapped), id.id)
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return nil, crypto.ErrAuthFailed
	}
	if err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrEscrowBinding, s.ID, err)
	}
	pt, err := io.ReadAll(io.LimitReader(r, MaxEscrowWrapped))
	defer clear(pt)
	if err != nil {
		return nil, fmt.Errorf("%w %s: sealed data does not authenticate: %v", ErrEscrowBinding, s.ID, err)
	}
	binding := s.aad()
	if len(pt) != len(binding)+MasterSecretSize || subtle.ConstantTimeCompare(pt[:len(binding)], binding) != 1 {
		return nil, fmt.Errorf("key slot %s: %w", s.ID, ErrEscrowBinding)
	}
	var ms MasterSecret
	copy(ms[:], pt[len(binding):])
	defer clear(ms[:])
	return NewMaster(ms, s.RepoID)
}

// unlockEscrow tries the well-formed escrow slots with id, in their listed
// order; a slot that opens but fails its binding or o.Verify is reported.
func (u *unlocker) unlockEscrow(candidates []*Slot, id *EscrowIdentity) (*Master, *Slot, error) {
	escrow := 0
	for _, s := range candidates {
		if s.Kind != SlotEscrow || s.check() != nil {
			continue
		}
		escrow++
		u.tried++
		m, err := s.openEscrow(id)
		if err != nil {
			if !errors.Is(err, crypto.ErrAuthFailed) {
				u.problems = append(u.problems, err)
			}
			continue
		}
		if u.verified(s, m) {
			return m, s, nil
		}
	}
	if u.verifyErr != nil {
		return nil, nil, errors.Join(append([]error{u.verifyErr}, u.problems...)...)
	}
	err := fmt.Errorf("%w (escrow slots tried: %d of %d key slots)", ErrWrongEscrowKey, escrow, len(candidates))
	return nil, nil, errors.Join(append([]error{err}, u.problems...)...)
}
