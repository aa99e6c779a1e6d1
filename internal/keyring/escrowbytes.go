package keyring

import (
	"errors"
	"fmt"
	"strings"
)

// EscrowPublicKeySize is the size of an escrow public key's raw form: an
// X25519 public key, as a fleet policy carries it (escrow_public_key).
const EscrowPublicKeySize = 32

// EscrowRecipientFromBytes returns the recipient of a raw X25519 public
// key, the form a fleet policy carries; its String is the same "age1…" key
// `coffer escrow keygen` prints.
func EscrowRecipientFromBytes(pub []byte) (EscrowRecipient, error) {
	if len(pub) != EscrowPublicKeySize {
		return EscrowRecipient{}, fmt.Errorf("%w: %d bytes, an X25519 public key has %d", ErrBadEscrowKey, len(pub), EscrowPublicKeySize)
	}
	return ParseEscrowRecipient(bech32Encode("age", pub))
}

// Bytes returns the raw X25519 public key (nil for the zero value).
func (r EscrowRecipient) Bytes() []byte {
	if r.r == nil {
		return nil
	}
	hrp, data, err := bech32Decode(r.r.String())
	if err != nil || hrp != "age" || len(data) != EscrowPublicKeySize {
		return nil
	}
	return data
}

// Bech32 (BIP 173) is the text encoding of age's keys: the X25519 bytes
// regrouped in 5-bit symbols, with a BCH checksum. It is an encoding, not
// a cipher; age keeps its own copy internal, so coffer carries this one.
const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := 0; i < 5; i++ {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func bech32HRPExpand(hrp string) []byte {
	out := make([]byte, 0, 2*len(hrp)+1)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]>>5)
	}
	out = append(out, 0)
	for i := 0; i < len(hrp); i++ {
		out = append(out, hrp[i]&31)
	}
	return out
}

// regroup converts between 8-bit bytes and 5-bit symbols.
func regroup(data []byte, from, to uint, pad bool) ([]byte, error) {
	var acc, bits uint
	var out []byte
	maxv := uint(1)<<to - 1
	for _, b := range data {
		acc = acc<<from | uint(b)
		bits += from
		for bits >= to {
			bits -= to
			out = append(out, byte(acc>>bits&maxv)) // #nosec G115 -- masked to at most 8 bits
		}
	}
	if pad && bits > 0 {
		out = append(out, byte(acc<<(to-bits)&maxv)) // #nosec G115 -- masked to at most 8 bits
	} else if !pad && (bits >= from || acc<<(to-bits)&maxv != 0) {
		return nil, errors.New("bech32: non-zero padding")
	}
	return out, nil
}

func bech32Encode(hrp string, data []byte) string {
	values, _ := regroup(data, 8, 5, true)
	check := append(bech32HRPExpand(hrp), values...)
	mod := bech32Polymod(append(check, 0, 0, 0, 0, 0, 0)) ^ 1
	var b strings.Builder
	b.WriteString(hrp)
	b.WriteByte('1')
	for _, v := range values {
		b.WriteByte(bech32Charset[v])
	}
	for i := 0; i < 6; i++ {
		b.WriteByte(bech32Charset[mod>>(5*(5-i))&31])
	}
	return b.String()
}

func bech32Decode(s string) (string, []byte, error) {
	s = strings.ToLower(s)
	pos := strings.LastIndexByte(s, '1')
	if pos < 1 || pos+7 > len(s) {
		return "", nil, errors.New("bech32: no separator")
	}
	hrp := s[:pos]
	values := make([]byte, 0, len(s)-pos-1)
	for i := pos + 1; i < len(s); i++ {
		v := strings.IndexByte(bech32Charset, s[i])
		if v < 0 {
			return "", nil, errors.New("bech32: invalid character")
		}
		values = append(values, byte(v)) // #nosec G115 -- an index into a 32-byte charset
	}
	if bech32Polymod(append(bech32HRPExpand(hrp), values...)) != 1 {
		return "", nil, errors.New("bech32: bad checksum")
	}
	data, err := regroup(values[:len(values)-6], 5, 8, false)
	return hrp, data, err
}
