package server

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var testKey = &[atRestKeyLen]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}

var testID = objectID{Client: "alice", Repo: "main", Kind: "data", Name: "ab12"}

func sealToFile(t testing.TB, dir string, id objectID, data []byte) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "obj-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum := sha256.Sum256(data)
	if _, err := sealObject(f, testKey, id, int64(len(data)), bytes.NewReader(data), sum[:], time.Unix(1700000000, 5)); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func openFile(t testing.TB, path string, id objectID) (*objectReader, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return openObject(f, testKey, id)
}

func readRange(o *objectReader, off, n int64) ([]byte, error) {
	var buf bytes.Buffer
	err := o.writeRange(&buf, off, n)
	return buf.Bytes(), err
}

func TestSizes(t *testing.T) {
	for _, size := range []int64{0, 1, segmentSize - 1, segmentSize, segmentSize + 1, 3*segmentSize + 5, 64 << 20} {
		got, ok := contentSize(storedSize(size))
		if !ok || got != size {
			t.Errorf("contentSize(storedSize(%d)) = %d, %v", size, got, ok)
		}
	}
	// No stored size maps to two content sizes, and impossible sizes are refused.
	seen := map[int64]int64{}
	for stored := int64(0); stored < headerSize+3*(segmentSize+perSegment); stored += 1 + int64(mrand.IntN(5000)) {
		if size, ok := contentSize(stored); ok {
			if storedSize(size) != stored {
				t.Fatalf("contentSize(%d) = %d, whose stored size is %d", stored, size, storedSize(size))
			}
			if prev, dup := seen[size]; dup {
				t.Fatalf("stored sizes %d and %d both map to %d", prev, stored, size)
			}
			seen[size] = stored
		}
	}
	for _, bad := range []int64{0, headerSize, headerSize + perSegment - 1, headerSize + segmentSize + perSegment + 1} {
		if size, ok := contentSize(bad); ok {
			t.Errorf("contentSize(%d) = %d, want refusal", bad, size)
		}
	}
}

func TestRoundTripAndRanges(t *testing.T) {
	dir := t.TempDir()
	rng := mrand.New(mrand.NewPCG(3, 4))
	for _, size := range []int{0, 1, 1000, segmentSize - 1, segmentSize, segmentSize + 1, 2*segmentSize + 17} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		path := sealToFile(t, dir, testID, data)
		fi, _ := os.Stat(path)
		if fi.Size() != storedSize(int64(size)) {
			t.Fatalf("size %d: file of %d bytes, want %d", size, fi.Size(), storedSize(int64(size)))
		}
		o, err := openFile(t, path, testID)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if o.hdr.Size != int64(size) || !o.hdr.Received.Equal(time.Unix(1700000000, 5)) {
			t.Fatalf("header %+v", o.hdr)
		}
		got, err := readRange(o, 0, int64(size))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: full read: %v", size, err)
		}
		if err := o.verify(); err != nil {
			t.Fatalf("verify: %v", err)
		}
		// Random ranges, including every segment boundary.
		cases := [][2]int64{{0, 0}, {int64(size), 0}}
		for b := int64(segmentSize); b < int64(size); b += segmentSize {
			cases = append(cases, [2]int64{b - 1, 2}, [2]int64{b, int64(size) - b}, [2]int64{b - 3, 3})
		}
		for i := 0; i < 30 && size > 0; i++ {
			off := rng.Int64N(int64(size))
			cases = append(cases, [2]int64{off, rng.Int64N(int64(size)-off) + 1})
		}
		for _, c := range cases {
			got, err := readRange(o, c[0], c[1])
			if err != nil || !bytes.Equal(got, data[c[0]:c[0]+c[1]]) {
				t.Fatalf("size %d: range [%d,+%d]: %v", size, c[0], c[1], err)
			}
		}
	}
}

// Every single flipped bit, anywhere in the file, is caught: by the header
// MAC, the table hash, a segment hash or a GCM tag.
func TestEveryBitFlipDetected(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("coffer "), 300)
	path := sealToFile(t, dir, testID, data)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(orig); i++ {
		bad := bytes.Clone(orig)
		bad[i] ^= 1 << (i % 8)
		if err := os.WriteFile(path, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := openFile(t, path, testID)
		if err == nil {
			err = o.verify()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit flipped at byte %d not detected: %v", i, err)
		}
	}
}

func TestTamperingDetected(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 2*segmentSize+100)
	_, _ = rand.Read(data)
	path := sealToFile(t, dir, testID, data)
	orig, _ := os.ReadFile(path)

	check := func(name string, content []byte, id objectID) {
		t.Helper()
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := openFile(t, path, id)
		if err == nil {
			err = o.verify()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
	check("truncated by a segment", orig[:len(orig)-100-tagSize], testID)
	check("truncated by a byte", orig[:len(orig)-1], testID)
	check("extended", append(bytes.Clone(orig), 0), testID)
	check("empty file", nil, testID)
	check("header only", orig[:headerSize], testID)
	for _, other := range []objectID{
		{Client: "bob", Repo: "main", Kind: "data", Name: "ab12"},
		{Client: "alice", Repo: "other", Kind: "data", Name: "ab12"},
		{Client: "alice", Repo: "main", Kind: "index", Name: "ab12"},
		{Client: "alice", Repo: "main", Kind: "data", Name: "ab13"},
	} {
		check("moved to "+other.String(), orig, other)
	}
	// Two segments swapped, with the table swapped to match, still fail:
	// each segment's index is in its nonce and AAD.
	table := headerSize
	segs := headerSize + 3*hashSize
	sw := bytes.Clone(orig)
	seg := segmentSize + tagSize
	copy(sw[segs:], orig[segs+seg:segs+2*seg])
	copy(sw[segs+seg:], orig[segs:segs+seg])
	copy(sw[table:], orig[table+hashSize:table+2*hashSize])
	copy(sw[table+hashSize:], orig[table:table+hashSize])
	check("segments swapped", sw, testID)
	// The same object under another key does not open.
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if _, err := openObject(f, &[atRestKeyLen]byte{9}, testID); !errors.Is(err, ErrCorrupt) {
		t.Errorf("other key: %v", err)
	}
}

func TestSealChecksLengthAndDigest(t *testing.T) {
	dir := t.TempDir()
	f, err := os.CreateTemp(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := []byte("hello")
	if _, err := sealObject(f, testKey, testID, 10, bytes.NewReader(data), nil, time.Now()); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body: %v", err)
	}
	if _, err := sealObject(f, testKey, testID, 3, bytes.NewReader(data), nil, time.Now()); err == nil {
		t.Error("long body accepted")
	}
	wrong := sha256.Sum256([]byte("other"))
	if _, err := sealObject(f, testKey, testID, 5, bytes.NewReader(data), wrong[:], time.Now()); !errors.Is(err, errDigestMismatch) {
		t.Errorf("wrong digest: %v", err)
	}
}

func TestOnDiskHasNoPlaintext(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("PLAINTEXT-MARKER "), 10000)
	path := sealToFile(t, dir, testID, data)
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte("PLAINTEXT-MARKER")) {
		t.Fatal("plaintext visible in the stored file")
	}
	if bytes.Contains(raw, testKey[:]) {
		t.Fatal("key visible in the stored file")
	}
}

// FuzzOpenObject: whatever bytes are on disk, opening and reading them
// never panics, and anything that is not what was sealed fails with
// ErrCorrupt.
func FuzzOpenObject(f *testing.F) {
	dir := f.TempDir()
	for _, d := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("ab"), 500)} {
		raw, err := os.ReadFile(sealToFile(f, dir, testID, d))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(objMagic))
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), "o")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		o, err := openObject(fh, testKey, testID)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := o.writeRange(&buf, 0, o.hdr.Size); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if sum := sha256.Sum256(buf.Bytes()); sum != o.hdr.ContentHash {
			t.Fatal("accepted content that does not match its hash")
		}
	})
}
