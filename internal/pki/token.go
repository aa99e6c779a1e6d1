package pki

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"
)

// Token format (docs/pki.md): "cfr1." followed by unpadded base64url of
//
//	version (1 byte, 1) | name length n (1 byte) | client name (n bytes) |
//	CA SPKI SHA-256 (32 bytes) | secret (32 bytes)
//
// or, for a person (a fleet user), version 2 with a kind byte after it:
//
//	version (1 byte, 2) | kind (1 byte, 1: user) | name length n | name |
//	CA SPKI SHA-256 | secret
const (
	TokenPrefix      = "cfr1."
	tokenVersion     = 1
	tokenVersionKind = 2
	tokenKindUser    = 1
	// MaxTokenTTL bounds how long an unredeemed token stays valid.
	MaxTokenTTL = 30 * 24 * time.Hour
)

// maxTokenLen is the longest possible encoded token.
var maxTokenLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(3+MaxClientName+32+32)

// Sentinel errors of enrollment.
var (
	ErrTokenMalformed = errors.New("malformed enrollment token")
	ErrTokenUnknown   = errors.New("unknown enrollment token")
	ErrTokenUsed      = errors.New("enrollment token already used")
	ErrTokenExpired   = errors.New("enrollment token expired")
	ErrTokenWrongCA   = errors.New("enrollment token is for another server's CA")
	ErrTokenExists    = errors.New("enrollment token already stored")
)

// Token is a one-time enrollment token. Its Secret is a bearer credential:
// String and GoString redact it; only Encode reveals it.
type Token struct {
	ClientName string
	// User marks a person's token: redeeming it yields a user certificate
	// (urn:coffer:user:NAME) for the fleet API, with no storage namespace.
	User          bool
	CAFingerprint [32]byte // SHA-256 of the CA's SubjectPublicKeyInfo
	Secret        [32]byte
}

// NewToken returns a token for clientName with a fresh 256-bit secret.
func NewToken(clientName string, caFingerprint [32]byte) (*Token, error) {
	if err := ValidateClientName(clientName); err != nil {
		return nil, err
	}
	t := &Token{ClientName: clientName, CAFingerprint: caFingerprint}
	if _, err := rand.Read(t.Secret[:]); err != nil {
		return nil, fmt.Errorf("token secret: %w", err)
	}
	return t, nil
}

// Encode returns the token in its printable form, secret included. It
// fails only for an invalid ClientName.
func (t *Token) Encode() (string, error) {
	if err := ValidateClientName(t.ClientName); err != nil {
		return "", err
	}
	b := make([]byte, 0, 3+len(t.ClientName)+64)
	if t.User {
		b = append(b, tokenVersionKind, tokenKindUser)
	} else {
		b = append(b, tokenVersion)
	}
	b = append(b, uint8(len(t.ClientName))) // #nosec G115 -- at most MaxClientName (63), checked above
	b = append(b, t.ClientName...)
	b = append(b, t.CAFingerprint[:]...)
	b = append(b, t.Secret[:]...)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// String describes the token without its secret, so it is safe to log.
func (t *Token) String() string {
	if t.User {
		return fmt.Sprintf("enrollment token for user %q (secret redacted)", t.ClientName)
	}
	return fmt.Sprintf("enrollment token for %q (secret redacted)", t.ClientName)
}

// RecordName is the name the token's record keeps: the client name, or
// UserTokenPrefix and the user name, so a token edited from one kind to
// the other matches no record.
func (t *Token) RecordName() string {
	if t.User {
		return UserTokenPrefix + t.ClientName
	}
	return t.ClientName
}

// GoString is String, so %#v does not print the secret either.
func (t *Token) GoString() string { return t.String() }

// SecretHash is what the server stores: SHA-256 of the 256-bit secret.
func (t *Token) SecretHash() [32]byte { return sha256.Sum256(t.Secret[:]) }

// ParseToken decodes an encoded token strictly: exact prefix, canonical
// unpadded base64url, version 1, exact length, valid client name. Errors
// wrap ErrTokenMalformed.
func ParseToken(s string) (*Token, error) {
	if len(s) > maxTokenLen {
		return nil, fmt.Errorf("%w: too long", ErrTokenMalformed)
	}
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: does not start with %q", ErrTokenMalformed, TokenPrefix)
	}
	// The decoder skips CR and LF; a token holds neither.
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, fmt.Errorf("%w: character %q at %d", ErrTokenMalformed, c, len(TokenPrefix)+i)
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenMalformed, err)
	}
	t := &Token{}
	if t.User, b, err = tokenHeader(b); err != nil {
		return nil, err
	}
	n := int(b[0])
	if len(b) != 1+n+64 {
		return nil, fmt.Errorf("%w: length %d does not match name length %d", ErrTokenMalformed, len(b), n)
	}
	t.ClientName = string(b[1 : 1+n])
	if err := ValidateClientName(t.ClientName); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokenMalformed, err)
	}
	copy(t.CAFingerprint[:], b[1+n:1+n+32])
	copy(t.Secret[:], b[1+n+32:])
	return t, nil
}

// tokenHeader reads a token's version (and kind) and returns whether it is
// a user's token and the rest, from the name length on.
func tokenHeader(b []byte) (bool, []byte, error) {
	switch {
	case len(b) >= 2 && b[0] == tokenVersion:
		return false, b[1:], nil
	case len(b) >= 3 && b[0] == tokenVersionKind && b[1] == tokenKindUser:
		return true, b[2:], nil
	case len(b) >= 2 && b[0] == tokenVersionKind:
		return false, nil, fmt.Errorf("%w: unknown kind %d", ErrTokenMalformed, b[1])
	}
	return false, nil, fmt.Errorf("%w: unsupported version", ErrTokenMalformed)
}

// TokenRecord is what the server keeps of a token: never the secret.
type TokenRecord struct {
	SecretHash [32]byte
	// ClientName is the token's Token.RecordName: a client name, or
	// "user:" and a user name.
	ClientName string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time // zero until redeemed
}

// TokenStore persists token records. The server backs it with its database.
//
// Put stores a new record; a record with the same SecretHash already stored
// is ErrTokenExists.
//
// Redeem atomically finds the record with secretHash issued for clientName
// and marks it used at now, returning it. Of any number of concurrent
// Redeem calls for one hash, at most one succeeds. It returns
// ErrTokenUnknown when no record matches or the record names another
// client (a token whose name was edited: the genuine token stays
// redeemable), ErrTokenUsed when it was redeemed before (whether or not it
// has expired since), and ErrTokenExpired when now is not before
// ExpiresAt; only the success case changes the record. A SQL store does
// this in one statement: UPDATE ... SET used_at = ? WHERE hash = ? AND
// client = ? AND used_at IS NULL AND expires_at > ?, then reads the row to
// tell the errors apart.
type TokenStore interface {
	Put(ctx context.Context, rec TokenRecord) error
	Redeem(ctx context.Context, secretHash [32]byte, clientName string, now time.Time) (TokenRecord, error)
}

// MemoryTokenStore is a TokenStore in memory, for tests and as the
// reference implementation. Its zero value is ready to use.
type MemoryTokenStore struct {
	mu   sync.Mutex
	recs []TokenRecord
}

// Put implements TokenStore.
func (m *MemoryTokenStore) Put(ctx context.Context, rec TokenRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.find(rec.SecretHash) >= 0 {
		return ErrTokenExists
	}
	m.recs = append(m.recs, rec)
	return nil
}

// Redeem implements TokenStore. It compares the hash against every record
// in constant time.
func (m *MemoryTokenStore) Redeem(ctx context.Context, secretHash [32]byte, clientName string, now time.Time) (TokenRecord, error) {
	if err := ctx.Err(); err != nil {
		return TokenRecord{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(secretHash)
	if i < 0 || m.recs[i].ClientName != clientName {
		return TokenRecord{}, ErrTokenUnknown
	}
	rec := &m.recs[i]
	if !rec.UsedAt.IsZero() {
		return TokenRecord{}, ErrTokenUsed
	}
	if !now.Before(rec.ExpiresAt) {
		return TokenRecord{}, ErrTokenExpired
	}
	rec.UsedAt = now
	return *rec, nil
}

func (m *MemoryTokenStore) find(h [32]byte) int {
	found := -1
	for i := range m.recs {
		if subtle.ConstantTimeCompare(m.recs[i].SecretHash[:], h[:]) == 1 {
			found = i
		}
	}
	return found
}

// IssueToken makes a token for clientName valid for ttl (at most
// MaxTokenTTL) and stores its record. The caller prints its Encode() once.
func (ca *CA) IssueToken(ctx context.Context, store TokenStore, clientName string, ttl time.Duration, now time.Time) (*Token, error) {
	return ca.issueToken(ctx, store, clientName, false, ttl, now)
}

// IssueUserToken is IssueToken for a person: redeemed, it yields a user
// certificate (SignUser).
func (ca *CA) IssueUserToken(ctx context.Context, store TokenStore, userName string, ttl time.Duration, now time.Time) (*Token, error) {
	return ca.issueToken(ctx, store, userName, true, ttl, now)
}

func (ca *CA) issueToken(ctx context.Context, store TokenStore, name string, user bool, ttl time.Duration, now time.Time) (*Token, error) {
	if ttl <= 0 || ttl > MaxTokenTTL {
		return nil, fmt.Errorf("token ttl %v: must be positive and at most %v", ttl, MaxTokenTTL)
	}
	tok, err := NewToken(name, ca.Fingerprint())
	if err != nil {
		return nil, err
	}
	tok.User = user
	rec := TokenRecord{SecretHash: tok.SecretHash(), ClientName: tok.RecordName(), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := store.Put(ctx, rec); err != nil {
		return nil, fmt.Errorf("store token: %w", err)
	}
	return tok, nil
}

// Enrollment is the result of a successful enrollment.
type Enrollment struct {
	ClientName string
	User       bool // a person's certificate (SignUser)
	CertDER    []byte
	Serial     *big.Int
}

// Enroll redeems tok and signs csrDER for the client the token was issued
// to. The CSR and the token's client name are checked before the token is
// spent (the store compares the name in the same step that marks the token
// used), so neither a broken client nor an edited token burns the genuine
// token; the token must carry this CA's fingerprint (ErrTokenWrongCA).
// Errors wrap ErrBadCSR or the token sentinels.
func (ca *CA) Enroll(ctx context.Context, store TokenStore, tok *Token, csrDER []byte, ttl time.Duration, now time.Time) (*Enrollment, error) {
	fp := ca.Fingerprint()
	if subtle.ConstantTimeCompare(fp[:], tok.CAFingerprint[:]) != 1 {
		return nil, ErrTokenWrongCA
	}
	if _, err := ParseCSR(csrDER); err != nil {
		return nil, err
	}
	rec, err := store.Redeem(ctx, tok.SecretHash(), tok.RecordName(), now)
	if errors.Is(err, ErrTokenUnknown) {
		return nil, fmt.Errorf("redeem token: %w (no unredeemed token for %q has this secret)", err, tok.RecordName())
	}
	if err != nil {
		return nil, fmt.Errorf("redeem token: %w", err)
	}
	if rec.ClientName != tok.RecordName() { // the store's contract; kept as a guard
		return nil, fmt.Errorf("%w: token names %q but was issued for another client", ErrTokenUnknown, tok.ClientName)
	}
	sign := ca.SignClient
	if tok.User {
		sign = ca.SignUser
	}
	der, serial, err := sign(csrDER, tok.ClientName, ttl, now)
	if err != nil {
		return nil, err
	}
	return &Enrollment{ClientName: tok.ClientName, User: tok.User, CertDER: der, Serial: serial}, nil
}
