// Package escrowkey converts an escrow public key between its two forms:
// the text coffer escrow keygen writes, an age X25519 recipient ("age1" and
// Bech32, BIP 173), and the 32 raw bytes a fleet policy carries. It holds no
// key material and imports nothing but the standard library, so the server,
// the agent and the key ring share it. Bech32 is an encoding, not a cipher;
// age keeps its own copy internal, so coffer carries this one.
package escrowkey

import (
	"errors"
	"fmt"
	"strings"
)

const (
	bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	escrowHRP     = "age"
)

// ErrInvalid wraps every refusal of an escrow public key.
var ErrInvalid = errors.New("invalid escrow public key")

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

func hrpExpand(hrp string) []byte {
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

// convertBits regroups bits from groups of from to groups of to; pad adds
// zero bits at the end, else leftover bits must be zero and fewer than from.
func convertBits(data []byte, from, to uint, pad bool) ([]byte, error) {
	var acc, bits uint
	maxv := uint(1)<<to - 1
	var out []byte
	for _, b := range data {
		if uint(b)>>from != 0 {
			return nil, errors.New("value out of range")
		}
		acc = acc<<from | uint(b)
		bits += from
		for bits >= to {
			bits -= to
			out = append(out, byte(acc>>bits&maxv)) // #nosec G115 -- masked to at most 8 bits
		}
	}
	if pad {
		if bits > 0 {
			out = append(out, byte(acc<<(to-bits)&maxv)) // #nosec G115 -- masked to at most 8 bits
		}
	} else if bits >= from || acc<<(to-bits)&maxv != 0 {
		return nil, errors.New("non-zero padding")
	}
	return out, nil
}

// Decode returns the 32 bytes of an "age1…" X25519 public key.
func Decode(s string) ([]byte, error) {
	if strings.Contains(strings.ToUpper(s), "SECRET-KEY") {
		return nil, fmt.Errorf("%w: this is a private key; give the public key (the .pub file)", ErrInvalid)
	}
	if len(s) > 128 || strings.ToLower(s) != s {
		return nil, fmt.Errorf("%w: want a lowercase age1… key", ErrInvalid)
	}
	hrp, rest, ok := strings.Cut(s, "1")
	if !ok || hrp != escrowHRP || len(rest) < 6 {
		return nil, fmt.Errorf("%w: want an age1… key", ErrInvalid)
	}
	data := make([]byte, len(rest))
	for i := 0; i < len(rest); i++ {
		j := strings.IndexByte(bech32Charset, rest[i])
		if j < 0 {
			return nil, fmt.Errorf("%w: character %q", ErrInvalid, rest[i])
		}
		data[i] = byte(j) // #nosec G115 -- an index into a 32-character alphabet
	}
	if bech32Polymod(append(hrpExpand(hrp), data...)) != 1 {
		return nil, fmt.Errorf("%w: checksum does not match", ErrInvalid)
	}
	key, err := convertBits(data[:len(data)-6], 5, 8, false)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: %d bytes, an X25519 key has 32", ErrInvalid, len(key))
	}
	return key, nil
}

// Encode returns the "age1…" form of a 32-byte X25519 public key.
func Encode(key []byte) (string, error) {
	if len(key) != 32 {
		return "", fmt.Errorf("%w: %d bytes, an X25519 key has 32", ErrInvalid, len(key))
	}
	data, _ := convertBits(key, 8, 5, true) // 8-bit input is always in range
	values := append(hrpExpand(escrowHRP), data...)
	mod := bech32Polymod(append(values, 0, 0, 0, 0, 0, 0)) ^ 1
	var b strings.Builder
	b.WriteString(escrowHRP + "1")
	for _, d := range data {
		b.WriteByte(bech32Charset[d])
	}
	for i := 0; i < 6; i++ {
		b.WriteByte(bech32Charset[(mod>>(5*(5-i)))&31])
	}
	return b.String(), nil
}
