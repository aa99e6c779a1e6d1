// Package chunker splits a byte stream into content-defined chunks whose cut
// points depend on a 32-byte repository secret (keyed FastCDC, hash-then-PRF).
package chunker

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"github.com/zeebo/blake3"
)

// Algorithm.
//
// The rolling hash is FastCDC's gear hash, fp = fp<<1 + G[b], over a table G
// of 256 secret 64-bit words; after 64 bytes a byte has shifted out, so fp is
// a function of the last 64 bytes only. Plain keyed gear hashing is what the
// 2025 attacks break (IACR ePrint 2025/532, 2025/558): every cut reveals an
// equation on the secret table, and once the table is known chunk sizes
// fingerprint known files again. So the cut decision here follows the
// "hash-then-PRF" fix of 2025/558: a position is a cut only if a keyed PRF
// (AES-256, key derived from the secret) of the window's hash passes the
// mask. An attacker who sees chunk sizes learns nothing usable about the PRF
// key, and even recovering the gear table would not predict cuts: it only
// narrows them to the positions that pass the prefilter.
//
// Encrypting the hash at every byte would cost ~10 ns/byte, so a cheap
// prefilter runs first: the PRF is evaluated only where the top
// prefilterBits (8) bits of the keyed gear hash are zero (1 position in 256).
// A cut therefore leaks at most those 8 bits about the keyed gear hash at
// that position, and nothing about the PRF.
//
// Normalized chunking (FastCDC level 2) uses two masks on the PRF output:
// for chunk lengths in [Min, Avg) a cut needs log2(Avg)+2 zero bits in total
// (prefilter plus PRF), for lengths in [Avg, Max) log2(Avg)-2, and a chunk is
// cut at Max regardless. Hashing starts 64 bytes before Min, so every
// decision depends only on the 64 bytes ending at the candidate position;
// this is what lets chunk boundaries resynchronise after an insertion.
//
// Key derivation.
//
// With the 32-byte secret K (ChunkerKey in docs/format.md):
//
//	G  = BLAKE3-derive-key("coffer/v1 chunker gear table", K), 2048 bytes,
//	     read as 256 little-endian uint64
//	Kp = BLAKE3-derive-key("coffer/v1 chunker cut prf", K), 32 bytes
//	PRF(fp) = first 8 bytes, little-endian, of AES-256_Kp(LE64(fp) ‖ 0^8)
//
// Changing any of this changes every cut point and so breaks deduplication
// against existing repositories: it is part of the on-disk format.

// Params are the chunk size bounds. They are stored in the repository config:
// changing them changes every cut point.
type Params struct {
	Min int `json:"min"` // smallest chunk, except the last one of a stream
	Avg int `json:"avg"` // target size; a power of two
	Max int `json:"max"` // largest chunk
}

// DefaultParams gives chunks of about 1 MiB: on random data the mean is
// about 1.14×Avg, as FastCDC's normalization predicts for Min = Avg/4.
var DefaultParams = Params{Min: 256 << 10, Avg: 1 << 20, Max: 8 << 20}

// Size bounds accepted by Validate.
const (
	MinSize = 64 << 10 // smallest allowed Min
	MaxSize = 64 << 20 // largest allowed Max
)

// ErrInvalidParams is returned (wrapped) by Validate and by Next when the
// chunker was built with invalid Params.
var ErrInvalidParams = errors.New("invalid chunker parameters")

// prefilterBits is how many top bits of the gear hash must be zero before
// the PRF is evaluated. Part of the format.
const prefilterBits = 8

// windowSize is the gear hash's effective window: bytes older than 64
// positions have been shifted out of the 64-bit state.
const windowSize = 64

// normLevel is FastCDC's normalization level: the masks have log2(Avg)±2 bits.
const normLevel = 2

// Context strings for BLAKE3 key derivation. Part of the format.
const (
	gearContext = "coffer/v1 chunker gear table"
	prfContext  = "coffer/v1 chunker cut prf"
)

// Validate reports whether p can be used: Avg a power of two,
// MinSize <= Min < Avg < Max <= MaxSize.
func (p Params) Validate() error {
	switch {
	case p.Min < MinSize:
		return fmt.Errorf("%w: min %d below %d", ErrInvalidParams, p.Min, MinSize)
	case p.Max > MaxSize:
		return fmt.Errorf("%w: max %d above %d", ErrInvalidParams, p.Max, MaxSize)
	case p.Avg <= 0 || p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("%w: avg %d is not a power of two", ErrInvalidParams, p.Avg)
	case p.Min >= p.Avg:
		return fmt.Errorf("%w: min %d not below avg %d", ErrInvalidParams, p.Min, p.Avg)
	case p.Avg >= p.Max:
		return fmt.Errorf("%w: avg %d not below max %d", ErrInvalidParams, p.Avg, p.Max)
	}
	return nil
}

// readStep is how much Next reads at a time once a chunk has reached Min
// bytes. Reads go straight into the chunk; what a read brings past the cut
// (readStep/2 on average) is kept for the next chunk, the only bytes copied.
const readStep = 128 << 10

// Chunker cuts the bytes of one reader into chunks. It is not safe for
// concurrent use; use one Chunker per stream (Reset reuses one).
type Chunker struct {
	r   io.Reader
	p   Params
	err error // sticky: invalid params or a read error

	gear  [256]uint64
	gear2 [256]uint64 // gear[b] << 1, for the two-bytes-per-step loop
	prf   cipher.Block
	maskS uint64 // PRF bits that must be zero for lengths in [Min, Avg)
	maskL uint64 // PRF bits that must be zero for lengths in [Avg, Max)

	ahead []byte // read past the last cut, not yet chunked
	eof   bool

	in, out [aes.BlockSize]byte
}

// New returns a Chunker reading r, with cut points keyed by secret. If p is
// invalid, the first call to Next returns the error of p.Validate().
func New(r io.Reader, secret [32]byte, p Params) *Chunker {
	c := &Chunker{r: r, p: p}
	if err := p.Validate(); err != nil {
		c.err = err
		return c
	}
	var table [256 * 8]byte
	blake3.DeriveKey(gearContext, secret[:], table[:])
	for i := range c.gear {
		c.gear[i] = binary.LittleEndian.Uint64(table[i*8:])
		c.gear2[i] = c.gear[i] << 1
	}
	var key [32]byte
	blake3.DeriveKey(prfContext, secret[:], key[:])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		// A 32-byte key is always accepted; this is unreachable.
		panic("chunker: " + err.Error())
	}
	c.prf = block
	clear(key[:])
	clear(table[:])

	avgBits := bits.TrailingZeros(uint(p.Avg))
	c.maskS = 1<<(avgBits+normLevel-prefilterBits) - 1
	c.maskL = 1<<(avgBits-normLevel-prefilterBits) - 1
	return c
}

// Reset makes c chunk r from its start, keeping the secret, the parameters
// and the buffers. A sticky read error is cleared; invalid Params stay invalid.
func (c *Chunker) Reset(r io.Reader) {
	c.r = r
	c.ahead, c.eof = c.ahead[:0], false
	if c.prf != nil {
		c.err = nil
	}
}

// Next returns the next chunk, stored in buf's backing array when it is big
// enough (else in a new one); pass the previous chunk back as buf to reuse
// its memory. The chunk is valid until buf is reused. After the last chunk,
// and at once for an empty stream, Next returns nil, io.EOF. A read error is
// returned as is (wrapped) and is sticky; bytes read before it are not
// returned.
//
// The reader's bytes are read into the chunk itself: at first exactly up to
// Min (no chunk ends earlier), then readStep bytes at a time.
func (c *Chunker) Next(buf []byte) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	out := buf[:0]
	var fp uint64
	if len(c.ahead) > 0 {
		n, cut, nfp := c.scan(c.ahead, 0, fp)
		fp = nfp
		out = append(out, c.ahead[:n]...)
		c.ahead = c.ahead[:copy(c.ahead, c.ahead[n:])]
		if cut {
			return out, nil
		}
	}
	for !c.eof {
		want := readStep
		if len(out) < c.p.Min {
			want = c.p.Min - len(out)
		}
		want = min(want, c.p.Max-len(out))
		out = reserve(out, want, 2*c.p.Avg, c.p.Max)
		n, err := c.read(out[len(out) : len(out)+want])
		if err != nil {
			c.err = err
			return nil, err
		}
		data := out[len(out) : len(out)+n]
		k, cut, nfp := c.scan(data, len(out), fp)
		fp = nfp
		out = out[:len(out)+k]
		if cut {
			c.ahead = append(c.ahead[:0], data[k:]...)
			return out, nil
		}
	}
	if len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

// reserve returns b with room for n more bytes. When it must grow, the new
// capacity is at least twice the old and at least floor (most chunks fit
// 2×Avg, so a fresh buffer is not regrown chunk after chunk), but not past
// limit unless n needs it.
func reserve(b []byte, n, floor, limit int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	c := max(len(b)+n, min(max(2*cap(b), floor), limit))
	nb := make([]byte, len(b), c)
	copy(nb, b)
	return nb
}

// read fills p from the reader as far as it can: it stops at the end of the
// stream (setting c.eof) or when a read returns no bytes after some were
// read. It returns how many bytes it read.
func (c *Chunker) read(p []byte) (int, error) {
	got := 0
	for empty := 0; got < len(p); {
		n, err := c.r.Read(p[got:])
		if n < 0 || n > len(p)-got {
			return 0, fmt.Errorf("chunker: reader returned invalid count %d", n)
		}
		got += n
		if errors.Is(err, io.EOF) {
			c.eof = true
			return got, nil
		}
		if err != nil {
			return 0, fmt.Errorf("chunker: read: %w", err)
		}
		if n == 0 {
			// Hand over what we have; do not spin forever on a reader
			// that keeps returning nothing.
			if got > 0 {
				return got, nil
			}
			if empty++; empty >= 100 {
				return 0, fmt.Errorf("chunker: read: %w", io.ErrNoProgress)
			}
		}
	}
	return got, nil
}

// scan hashes data, which continues a chunk already have bytes long, with
// rolling state fp. It returns how many bytes of data belong to the chunk,
// whether the chunk ends there, and the new state.
func (c *Chunker) scan(data []byte, have int, fp uint64) (int, bool, uint64) {
	p := c.p
	i := 0
	// Bytes before Min-64 cannot influence any decision: skip them.
	if skip := p.Min - windowSize - have; skip > 0 {
		if skip >= len(data) {
			return len(data), false, fp
		}
		i = skip
	}
	// Warm-up: fill the window; no cut allowed before length Min.
	if end := min(len(data), p.Min-1-have); i < end {
		for _, b := range data[i:end] {
			fp = fp<<1 + c.gear[b]
		}
		i = end
	}
	// Region S: lengths [Min, Avg) with the strict mask.
	if end := min(len(data), p.Avg-1-have); i < end {
		k, cut, nfp := c.search(data[i:end], fp, c.maskS)
		if cut {
			return i + k, true, nfp
		}
		fp = nfp
		i = end
	}
	// Region L: lengths [Avg, Max) with the loose mask.
	if end := min(len(data), p.Max-1-have); i < end {
		k, cut, nfp := c.search(data[i:end], fp, c.maskL)
		if cut {
			return i + k, true, nfp
		}
		fp = nfp
		i = end
	}
	if i < len(data) && have+i == p.Max-1 {
		return i + 1, true, fp // forced cut at Max
	}
	return i, false, fp
}

// prefilter is the bound below which the gear hash is a cut candidate.
const prefilter = uint64(1) << (64 - prefilterBits)

// search rolls fp over data and returns the length up to and including the
// first cut position, or len(data) and false.
func (c *Chunker) search(data []byte, fp uint64, mask uint64) (int, bool, uint64) {
	i := 0
	for i < len(data) {
		k, found, nfp := roll(&c.gear, &c.gear2, data[i:], fp)
		i += k
		fp = nfp
		if found && c.isCut(fp, mask) {
			return i, true, fp
		}
	}
	return len(data), false, fp
}

// roll rolls fp over data up to and including the first position whose hash
// passes the prefilter. It returns the bytes consumed, whether it stopped at
// a candidate, and the hash there. It takes four bytes per step using
// (fp<<1 + G[a])<<1 + G[b] = fp<<2 + (G2[a] + G[b]) with G2[a] = G[a]<<1,
// which shortens the loop-carried dependency chain; and it calls nothing, so
// the state stays in registers.
func roll(g, g2 *[256]uint64, data []byte, fp uint64) (int, bool, uint64) {
	i := 0
	for ; i+4 <= len(data); i += 4 {
		p := (*[4]byte)(data[i : i+4])
		f1 := fp<<1 + g[p[0]]
		f2 := fp<<2 + (g2[p[0]] + g[p[1]])
		f3 := f2<<1 + g[p[2]]
		fp = f2<<2 + (g2[p[2]] + g[p[3]])
		if f1 < prefilter {
			return i + 1, true, f1
		}
		if f2 < prefilter {
			return i + 2, true, f2
		}
		if f3 < prefilter {
			return i + 3, true, f3
		}
		if fp < prefilter {
			return i + 4, true, fp
		}
	}
	for ; i < len(data); i++ {
		fp = fp<<1 + g[data[i]]
		if fp < prefilter {
			return i + 1, true, fp
		}
	}
	return len(data), false, fp
}

// isCut evaluates the keyed PRF on a prefiltered hash.
func (c *Chunker) isCut(fp uint64, mask uint64) bool {
	binary.LittleEndian.PutUint64(c.in[:8], fp)
	c.prf.Encrypt(c.out[:], c.in[:])
	return binary.LittleEndian.Uint64(c.out[:8])&mask == 0
}
