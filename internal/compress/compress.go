// Package compress compresses blobs with zstd and decompresses them within a
// caller-given size bound, so a hostile frame cannot exhaust memory.
//
// A compressed blob is exactly one zstd frame (RFC 8878) as written by
// github.com/klauspost/compress/zstd's EncodeAll: no dictionary, no content
// checksum (the AEAD tag and the keyed blob ID already cover every byte, as
// in restic), frame content size present whenever the frame holds 256 bytes
// or more. Decompress accepts any single frame without a dictionary, and
// checks a content checksum when the frame has one (blobs written before
// coffer dropped it).
//
// Encoders and the decoder are shared package-level values; every function
// here is safe for concurrent use.
package compress

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Mode selects how hard Compress tries.
type Mode uint8

// The modes. Their numeric values are not stored anywhere: persist a mode by
// its String and read it back with ParseMode.
const (
	Auto Mode = iota // zstd's default level, skipping data that looks incompressible
	Off              // store as is
	Max              // zstd's best compression level
)

// String returns the name ParseMode accepts.
func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Off:
		return "off"
	case Max:
		return "max"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ErrInvalidMode is returned (wrapped) by ParseMode for an unknown name.
var ErrInvalidMode = errors.New("invalid compression mode")

// ParseMode parses "auto", "off" or "max".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto":
		return Auto, nil
	case "off":
		return Off, nil
	case "max":
		return Max, nil
	}
	return 0, fmt.Errorf("%w %q: want auto, off or max", ErrInvalidMode, s)
}

// Errors of Decompress, for callers to branch on with errors.Is.
var (
	// ErrCorrupt: the input is not a single valid zstd frame.
	ErrCorrupt = errors.New("corrupt compressed data")
	// ErrTooLarge: the frame decompresses to more than the allowed size.
	ErrTooLarge = errors.New("decompressed data exceeds limit")
)

// MaxDecodedSize is the largest maxSize Decompress accepts, and so the
// largest blob this package will ever decompress.
const MaxDecodedSize = 1 << 30

// Parameters of Auto's incompressibility probe.
const (
	probeMinInput = 256 << 10 // below this, just compress
	probePieces   = 4         // samples spread over the input
	probePiece    = 16 << 10  // bytes per sample
	probeMaxRatio = 0.97      // skip compression if the sample shrinks less
)

// encoderWindow bounds how far back zstd looks for matches. Chunks average
// 1 MiB, so a larger window finds almost nothing more, while each encoder's
// history buffers grow with it and dominated a backup's heap (32 MiB of ~90
// with the 8 MiB default window). Frames stay standard zstd.
const encoderWindow = 1 << 20

func newEncoder(level zstd.EncoderLevel) *zstd.Encoder {
	// EncodeAll on one Encoder is safe for concurrent use; its concurrency
	// option bounds how many block encoders (and their memory) exist.
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderCRC(false),
		zstd.WithZeroFrames(false),
		zstd.WithWindowSize(encoderWindow),
	)
	if err != nil {
		// Only invalid options make NewWriter fail; ours are constant.
		panic("compress: zstd.NewWriter: " + err.Error())
	}
	return enc
}

var (
	encFastest = sync.OnceValue(func() *zstd.Encoder { return newEncoder(zstd.SpeedFastest) })
	encDefault = sync.OnceValue(func() *zstd.Encoder { return newEncoder(zstd.SpeedDefault) })
	encBest    = sync.OnceValue(func() *zstd.Encoder { return newEncoder(zstd.SpeedBestCompression) })

	decoder = sync.OnceValue(func() *zstd.Decoder {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0), // one per GOMAXPROCS for DecodeAll
			zstd.WithDecoderMaxMemory(MaxDecodedSize),
			zstd.WithDecoderMaxWindow(MaxDecodedSize),
			// Output is bounded by cap(dst): we hand in exactly the budget.
			zstd.WithDecodeAllCapLimit(true),
		)
		if err != nil {
			panic("compress: zstd.NewReader: " + err.Error())
		}
		return dec
	})

	probeBufs = sync.Pool{New: func() any {
		b := make([]byte, 0, 2*probePieces*probePiece)
		return &b
	}}
)

// Compress compresses src with mode m into dst's backing array (its contents
// are overwritten; a new array is allocated if it is too small; dst must
// not overlap src). It returns the compressed frame and true, or src itself and false if m is Off or
// compression would not make src smaller. Unknown modes act like Auto.
func Compress(dst, src []byte, m Mode) (out []byte, compressed bool) {
	var enc *zstd.Encoder
	switch m {
	case Off:
		return src, false
	case Max:
		enc = encBest()
	default:
		if looksIncompressible(src) {
			return src, false
		}
		enc = encDefault()
	}
	if len(src) == 0 {
		return src, false
	}
	out = enc.EncodeAll(src, dst[:0])
	if len(out) >= len(src) {
		return src, false
	}
	return out, true
}

// looksIncompressible compresses a sample of a large src with the fastest
// level and reports whether it barely shrank. It only ever causes data to be
// stored raw, which is always correct.
func looksIncompressible(src []byte) bool {
	if len(src) < probeMinInput {
		return false
	}
	bp := probeBufs.Get().(*[]byte)
	defer probeBufs.Put(bp)
	buf := (*bp)[:0]
	step := (len(src) - probePiece) / (probePieces - 1)
	for i := range probePieces {
		buf = append(buf, src[i*step:i*step+probePiece]...)
	}
	sampleLen := len(buf)
	out := encFastest().EncodeAll(buf, buf[sampleLen:sampleLen])
	*bp = buf[:0]
	return float64(len(out)) > probeMaxRatio*float64(sampleLen)
}

// Decompress decodes one zstd frame from src into dst's backing array (its
// contents are overwritten; a new array is allocated if it is too small).
// It never decodes, nor allocates room for, more than maxSize bytes: a frame
// that declares more fails with ErrTooLarge before anything is allocated.
// Malformed input, a wrong declared size, trailing data, dictionaries and
// skippable frames fail with ErrCorrupt. A frame that does not declare its
// size (Compress writes such only below 256 bytes) and outgrows maxSize fails
// with ErrTooLarge or, when the decoder cannot tell, ErrCorrupt.
// maxSize must be in [0, MaxDecodedSize].
func Decompress(dst, src []byte, maxSize int) ([]byte, error) {
	if maxSize < 0 || maxSize > MaxDecodedSize {
		return nil, fmt.Errorf("decompress: limit %d outside [0, %d]: %w", maxSize, MaxDecodedSize, ErrTooLarge)
	}
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return nil, fmt.Errorf("decompress: frame header: %w: %w", ErrCorrupt, err)
	}
	if h.Skippable || h.DictionaryID != 0 {
		return nil, fmt.Errorf("decompress: %w: unsupported frame (skippable or dictionary)", ErrCorrupt)
	}
	if h.HasFCS {
		if h.FrameContentSize > uint64(maxSize) {
			return nil, fmt.Errorf("decompress: frame declares %d bytes, limit %d: %w", h.FrameContentSize, maxSize, ErrTooLarge)
		}
		n := int(h.FrameContentSize) // #nosec G115 -- checked above: FrameContentSize <= maxSize <= MaxDecodedSize
		out, err := decodeLimited(dst, src, n)
		if err != nil {
			return nil, err
		}
		if len(out) != n {
			return nil, fmt.Errorf("decompress: %w: got %d bytes, frame declares %d", ErrCorrupt, len(out), n)
		}
		return out, nil
	}
	// No declared size (EncodeAll omits it below 256 bytes): start small
	// and double, so a tiny frame does not cost a maxSize allocation and a
	// bomb costs at most about 2×maxSize.
	for limit := min(maxSize, 64<<10); ; limit = min(2*limit, maxSize) {
		out, err := decodeLimited(dst, src, limit)
		if !errors.Is(err, ErrTooLarge) || limit == maxSize {
			return out, err
		}
	}
}

// decodeLimited decodes src into at most limit bytes.
func decodeLimited(dst, src []byte, limit int) ([]byte, error) {
	buf := dst[:0]
	if cap(buf) < limit {
		buf = make([]byte, 0, limit)
	}
	out, err := decoder().DecodeAll(src, buf[:0:limit])
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, zstd.ErrDecoderSizeExceeded), errors.Is(err, zstd.ErrWindowSizeExceeded):
		return nil, fmt.Errorf("decompress: more than %d bytes: %w", limit, ErrTooLarge)
	default:
		return nil, fmt.Errorf("decompress: %w: %w", ErrCorrupt, err)
	}
}
