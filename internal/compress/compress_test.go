package compress

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7}).Read(b)
	return b
}

// textLike returns compressible data: words drawn from a small vocabulary.
func textLike(seed uint64, n int) []byte {
	words := strings.Fields("the quick brown fox jumps over lazy dog backup chunk pack index snapshot coffer zstd")
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	for _, m := range []Mode{Auto, Off, Max} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	for _, s := range []string{"", "Auto", "fast", "on", " max"} {
		if _, err := ParseMode(s); !errors.Is(err, ErrInvalidMode) {
			t.Errorf("ParseMode(%q) error = %v, want ErrInvalidMode", s, err)
		}
	}
	if Mode(9).String() != "Mode(9)" {
		t.Errorf("unknown mode String = %q", Mode(9).String())
	}
}

// Property: for every mode and many inputs, decompressing what Compress
// returned (when it compressed) gives back the input, and compressed output
// is always strictly smaller.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	var inputs [][]byte
	inputs = append(inputs, nil, []byte{}, []byte("a"), bytes.Repeat([]byte("ab"), 100))
	for seed := range uint64(6) {
		n := []int{1, 255, 256, 4096, 300 << 10, 2 << 20}[seed]
		inputs = append(inputs, textLike(seed, n), randomBytes(seed, n))
		mixed := append(randomBytes(seed+10, n/2), textLike(seed+10, n/2)...)
		inputs = append(inputs, mixed)
	}
	inputs = append(inputs, make([]byte, 3<<20)) // zeros
	var dst, back []byte
	for _, m := range []Mode{Auto, Off, Max} {
		for i, in := range inputs {
			out, compressed := Compress(dst, in, m)
			if !compressed {
				if !bytes.Equal(out, in) {
					t.Fatalf("%v input %d: uncompressed output differs from input", m, i)
				}
				continue
			}
			if m == Off {
				t.Fatalf("Off compressed input %d", i)
			}
			if len(out) >= len(in) {
				t.Fatalf("%v input %d: compressed %d -> %d bytes, not smaller", m, i, len(in), len(out))
			}
			var err error
			back, err = Decompress(back, out, len(in))
			if err != nil {
				t.Fatalf("%v input %d: Decompress: %v", m, i, err)
			}
			if !bytes.Equal(back, in) {
				t.Fatalf("%v input %d: round trip differs", m, i)
			}
			// One byte less of budget must be refused. Frames under 256
			// bytes do not declare their size, and then the decoder may
			// see the overflow as corruption.
			_, err = Decompress(nil, out, len(in)-1)
			if !errors.Is(err, ErrTooLarge) && (len(in) >= 256 || !errors.Is(err, ErrCorrupt)) {
				t.Fatalf("%v input %d: limit len-1 gave %v, want ErrTooLarge", m, i, err)
			}
			dst = out
		}
	}
}

func TestCompressibleDataCompresses(t *testing.T) {
	t.Parallel()
	in := textLike(1, 1<<20)
	for _, m := range []Mode{Auto, Max} {
		out, ok := Compress(nil, in, m)
		if !ok || len(out) > len(in)/2 {
			t.Errorf("%v: text of %d bytes -> %d bytes, compressed=%v", m, len(in), len(out), ok)
		}
	}
	auto, _ := Compress(nil, in, Auto)
	best, _ := Compress(nil, in, Max)
	if len(best) > len(auto) {
		t.Errorf("Max (%d bytes) worse than Auto (%d bytes)", len(best), len(auto))
	}
}

func TestIncompressibleNotExpanded(t *testing.T) {
	t.Parallel()
	for _, n := range []int{10, 1000, 100 << 10, probeMinInput, 1 << 20} {
		in := randomBytes(uint64(n), n)
		for _, m := range []Mode{Auto, Max} {
			out, ok := Compress(make([]byte, 0, 16), in, m)
			if ok || &out[0] != &in[0] || len(out) != len(in) {
				t.Errorf("%v on %d random bytes: compressed=%v len %d; want src back", m, n, ok, len(out))
			}
		}
	}
}

func TestOffReturnsSrc(t *testing.T) {
	t.Parallel()
	in := textLike(2, 10000)
	out, ok := Compress(nil, in, Off)
	if ok || &out[0] != &in[0] || len(out) != len(in) {
		t.Fatal("Off did not return src unchanged")
	}
}

// The probe flags random data and never flags data that compresses well
// throughout; it only runs on inputs large enough to be worth sampling.
func TestProbe(t *testing.T) {
	t.Parallel()
	if !looksIncompressible(randomBytes(3, 1<<20)) {
		t.Error("probe did not flag random data")
	}
	if looksIncompressible(textLike(3, 1<<20)) {
		t.Error("probe flagged text")
	}
	if looksIncompressible(randomBytes(3, probeMinInput-1)) {
		t.Error("probe ran below its minimum input")
	}
	// Exactly at the minimum, pieces must stay in bounds.
	_ = looksIncompressible(textLike(4, probeMinInput))
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				in := textLike(uint64(g*100+i), 50<<10+i)
				out, ok := Compress(nil, in, Mode(i%3))
				if !ok {
					if !bytes.Equal(out, in) {
						errs <- errors.New("uncompressed output differs")
					}
					continue
				}
				back, err := Decompress(nil, out, len(in))
				if err != nil || !bytes.Equal(back, in) {
					errs <- errors.New("concurrent round trip failed")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// frameWithoutFCS encodes src as a zstd frame that does not declare its
// size: it rewrites EncodeAll's header to drop the content size field and
// give an explicit window descriptor instead. Blocks and checksum are kept.
func frameWithoutFCS(t testing.TB, src []byte) []byte {
	t.Helper()
	frame := encDefault().EncodeAll(src, nil)
	fhd := frame[4]
	if fhd&3 != 0 {
		t.Fatal("frame has a dictionary ID")
	}
	single := fhd&(1<<5) != 0
	hdr := 5
	if !single {
		hdr++ // window descriptor
	}
	hdr += [4]int{0, 2, 4, 8}[fhd>>6]
	if single && fhd>>6 == 0 {
		hdr++
	}
	exp := max(0, bits.Len(uint(len(src)-1))-10)
	out := append([]byte{}, frame[:4]...)
	out = append(out, fhd&^0xE0, byte(exp<<3))
	out = append(out, frame[hdr:]...)
	var h zstd.Header
	if err := h.Decode(out); err != nil || h.HasFCS {
		t.Fatalf("rewritten frame: FCS %v, err %v", h.HasFCS, err)
	}
	return out
}

func TestBombRefused(t *testing.T) {
	zeros := make([]byte, 64<<20)
	bomb, ok := Compress(nil, zeros, Max)
	if !ok || len(bomb) > 64<<10 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	// Declared size above the limit: refused before any allocation.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, err := Decompress(nil, bomb, 1<<20); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("got %v, want ErrTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
		t.Errorf("refusing a declared bomb 10 times allocated %d bytes", d)
	}
	// A frame that does not declare its size is cut off at the limit; the
	// decoder cannot always tell that from corruption, but it must fail.
	streamed := frameWithoutFCS(t, make([]byte, 8<<20))
	if _, err := Decompress(nil, streamed, 1<<20); !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("undeclared bomb: got %v, want ErrTooLarge or ErrCorrupt", err)
	}
	back, err := Decompress(nil, streamed, 8<<20)
	if err != nil || len(back) != 8<<20 {
		t.Fatalf("undeclared frame within limit: %d bytes, %v", len(back), err)
	}
	// A frame whose header lies (declares less than it holds) is corrupt.
	lie := bytes.Clone(bomb)
	var h zstd.Header
	if err := h.Decode(lie); err != nil {
		t.Fatal(err)
	}
	// Frame header: magic(4) FHD(1) [window(1)] FCS(n); rewrite FCS to 1 MiB.
	fhd := lie[4]
	off := 5
	if fhd&(1<<5) == 0 {
		off++
	}
	if fhd>>6 != 2 {
		t.Fatalf("unexpected FCS field size code %d", fhd>>6)
	}
	binary.LittleEndian.PutUint32(lie[off:], 1<<20)
	if _, err := Decompress(nil, lie, 2<<20); err == nil {
		t.Fatal("lying frame header accepted")
	}
}

func TestDecompressRejects(t *testing.T) {
	t.Parallel()
	good, ok := Compress(nil, textLike(5, 10000), Auto)
	if !ok {
		t.Fatal("text did not compress")
	}
	cases := map[string][]byte{
		"empty":     nil,
		"short":     good[:3],
		"garbage":   []byte("not a zstd frame at all"),
		"truncated": good[:len(good)-10],
		"trailing":  append(bytes.Clone(good), 1, 2, 3, 4, 5, 6, 7, 8),
		"twoframes": append(bytes.Clone(good), good...),
		"skippable": {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4},
	}
	// A flipped bit inside a frame without a checksum may decode to other
	// bytes: the AEAD tag and the blob ID catch that (TestChecksummedFrames
	// covers frames that carry a checksum).
	for name, in := range cases {
		out, err := Decompress(nil, in, 1<<20)
		if err == nil {
			t.Errorf("%s: accepted, %d bytes", name, len(out))
			continue
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: error %v is neither ErrCorrupt nor ErrTooLarge", name, err)
		}
	}
	for _, limit := range []int{-1, MaxDecodedSize + 1} {
		if _, err := Decompress(nil, good, limit); err == nil {
			t.Errorf("limit %d accepted", limit)
		}
	}
}

func TestDecompressReusesDst(t *testing.T) {
	t.Parallel()
	in := textLike(6, 100<<10)
	c, _ := Compress(nil, in, Auto)
	dst := make([]byte, 5, 200<<10)
	out, err := Decompress(dst, c, len(in))
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("round trip: %v", err)
	}
	if &out[0] != &dst[:1][0] {
		t.Error("Decompress did not reuse dst")
	}
}

func FuzzDecompress(f *testing.F) {
	for _, in := range [][]byte{nil, []byte("x"), textLike(1, 300), textLike(2, 70000), make([]byte, 1<<20)} {
		c, ok := Compress(nil, in, Auto)
		if ok {
			f.Add(c, uint32(len(in)))
		}
	}
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}, uint32(100))
	f.Add(frameWithoutFCS(f, textLike(3, 5000)), uint32(4000))
	f.Fuzz(func(t *testing.T, in []byte, limit uint32) {
		maxSize := int(limit % (4 << 20))
		out, err := Decompress(nil, in, maxSize)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is neither ErrCorrupt nor ErrTooLarge", err)
			}
			return
		}
		if len(out) > maxSize || cap(out) > maxSize {
			t.Fatalf("output len %d cap %d over limit %d", len(out), cap(out), maxSize)
		}
		// What decodes must re-encode and decode to the same bytes.
		c, ok := Compress(nil, out, Auto)
		if ok {
			back, err := Decompress(nil, c, len(out))
			if err != nil || !bytes.Equal(back, out) {
				t.Fatalf("re-encode round trip failed: %v", err)
			}
		}
	})
}

func benchCompress(b *testing.B, in []byte, m Mode) {
	b.SetBytes(int64(len(in)))
	dst := make([]byte, 0, len(in)+1024)
	for b.Loop() {
		dst, _ = Compress(dst, in, m)
	}
}

func BenchmarkCompressAutoText(b *testing.B)   { benchCompress(b, textLike(1, 1<<20), Auto) }
func BenchmarkCompressAutoRandom(b *testing.B) { benchCompress(b, randomBytes(1, 1<<20), Auto) }
func BenchmarkCompressMaxText(b *testing.B)    { benchCompress(b, textLike(1, 1<<20), Max) }

func BenchmarkDecompressText(b *testing.B) {
	in := textLike(1, 1<<20)
	c, _ := Compress(nil, in, Auto)
	b.SetBytes(int64(len(in)))
	dst := make([]byte, 0, len(in))
	for b.Loop() {
		var err error
		if dst, err = Decompress(dst, c, len(in)); err != nil {
			b.Fatal(err)
		}
	}
}

// Frames with a content checksum (written before coffer dropped it) still
// decode, and a checksum that does not match their content is refused.
func TestChecksummedFrames(t *testing.T) {
	t.Parallel()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	src := bytes.Repeat([]byte("coffer checksummed frame "), 4000)
	frame := enc.EncodeAll(src, nil)
	var h zstd.Header
	if err := h.Decode(frame); err != nil || !h.HasCheckSum {
		t.Fatalf("test frame: checksum %v, err %v", h.HasCheckSum, err)
	}
	got, err := Decompress(nil, frame, len(src))
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("checksummed frame: %v", err)
	}
	frame[len(frame)-1] ^= 1 // the checksum's last byte
	if _, err := Decompress(nil, frame, len(src)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad checksum: got %v, want ErrCorrupt", err)
	}
	// What Compress writes now carries none.
	out, ok := Compress(nil, src, Auto)
	if err := h.Decode(out); !ok || err != nil || h.HasCheckSum {
		t.Fatalf("Compress: compressed %v, checksum %v, err %v", ok, h.HasCheckSum, err)
	}
}
