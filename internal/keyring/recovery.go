package keyring

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/coffer-backup/coffer/internal/crypto"
)

// RecoveryKeySize is the size of a recovery key's secret.
const RecoveryKeySize = 32

// A recovery key is written for humans as "CFRK-" followed by the Crockford
// base32 form of key || checksum (34 bytes, 55 characters) in groups of 5.
const (
	recoveryPrefix    = "CFRK"
	recoveryChecksum  = 2
	recoveryChars     = 55 // ceil((32+2)*8/5)
	recoveryGroupSize = 5
	maxRecoveryInput  = 256 // longest input worth looking at
)

var crockford = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// RecoveryKey is a random 256-bit secret that opens a recovery slot. It is
// shown once, at creation, for the user to store offline.
type RecoveryKey [RecoveryKeySize]byte

// NewRecoveryKey returns a fresh recovery key from the CSPRNG.
func NewRecoveryKey() (RecoveryKey, error) {
	var rk RecoveryKey
	b, err := crypto.RandomBytes(RecoveryKeySize)
	if err != nil {
		return RecoveryKey{}, fmt.Errorf("generate recovery key: %w", err)
	}
	copy(rk[:], b)
	clear(b)
	return rk, nil
}

func recoverySum(rk *RecoveryKey) [recoveryChecksum]byte {
	h := sha256.Sum256(rk[:])
	return [recoveryChecksum]byte{h[0], h[1]}
}

// String renders the key for humans, e.g.
// "CFRK-ABCDE-FGHJK-…" (11 groups of 5 after the prefix). It is the secret:
// write it only where the user asked for it (a mode-0600 file, the terminal).
func (rk RecoveryKey) String() string {
	sum := recoverySum(&rk)
	raw := append(rk[:], sum[:]...)
	enc := crockford.EncodeToString(raw)
	clear(raw)
	var b strings.Builder
	b.WriteString(recoveryPrefix)
	for i := 0; i < len(enc); i += recoveryGroupSize {
		b.WriteByte('-')
		b.WriteString(enc[i:min(i+recoveryGroupSize, len(enc))])
	}
	return b.String()
}

// ParseRecoveryKey reads a recovery key as String writes it. It ignores case,
// spaces, tabs, newlines and hyphens, reads I and L as 1 and O as 0 (as
// Crockford base32 does), and accepts the key with or without its "CFRK"
// prefix. Errors wrap ErrBadRecoveryKey and never echo the key.
func ParseRecoveryKey(s string) (RecoveryKey, error) {
	return parseRecoveryKey([]byte(s))
}

func parseRecoveryKey(in []byte) (RecoveryKey, error) {
	if len(in) > maxRecoveryInput {
		return RecoveryKey{}, fmt.Errorf("%w: %d characters is far too long", ErrBadRecoveryKey, len(in))
	}
	norm := make([]byte, 0, len(in))
	defer clear(norm)
	for i, c := range in {
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '-':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		switch c {
		case 'I', 'L':
			c = '1'
		case 'O':
			c = '0'
		}
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z') || c == 'U' {
			return RecoveryKey{}, fmt.Errorf("%w: character %d is not a letter or digit of the key alphabet", ErrBadRecoveryKey, i+1)
		}
		norm = append(norm, c)
	}
	body := norm
	if len(body) == len(recoveryPrefix)+recoveryChars && string(body[:len(recoveryPrefix)]) == recoveryPrefix {
		body = body[len(recoveryPrefix):]
	}
	if len(body) != recoveryChars {
		return RecoveryKey{}, fmt.Errorf("%w: %d key characters, want %d (plus the CFRK- prefix)", ErrBadRecoveryKey, len(body), recoveryChars)
	}
	raw := make([]byte, crockford.DecodedLen(len(body)))
	defer clear(raw)
	n, err := crockford.Decode(raw, body)
	if err != nil || n != RecoveryKeySize+recoveryChecksum {
		return RecoveryKey{}, fmt.Errorf("%w: not valid base32", ErrBadRecoveryKey)
	}
	// The last character carries 3 padding bits; only the form String
	// writes (padding zero) is accepted, so each key has one spelling.
	if last := strings.IndexByte("0123456789ABCDEFGHJKMNPQRSTVWXYZ", body[len(body)-1]); last&0b111 != 0 {
		return RecoveryKey{}, fmt.Errorf("%w: last character is not one String writes; check it", ErrBadRecoveryKey)
	}
	var rk RecoveryKey
	copy(rk[:], raw[:RecoveryKeySize])
	sum := recoverySum(&rk)
	if subtle.ConstantTimeCompare(sum[:], raw[RecoveryKeySize:n]) != 1 {
		clear(rk[:])
		return RecoveryKey{}, fmt.Errorf("%w: checksum mismatch, a character is mistyped", ErrBadRecoveryKey)
	}
	return rk, nil
}
