package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// item is one line of a log as the tamper tests see it.
type item struct {
	seg  int
	line []byte
}

func readItems(t *testing.T, dir string) ([]item, int) {
	t.Helper()
	ns, err := segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var items []item
	for _, n := range ns {
		data, err := os.ReadFile(filepath.Join(dir, segmentName(n)))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range bytes.SplitAfter(data, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			items = append(items, item{n, append([]byte(nil), l...)})
		}
	}
	return items, len(ns)
}

// writeItems rewrites segments 1..nsegs from items; a segment left without
// lines is removed.
func writeItems(t *testing.T, dir string, items []item, nsegs int) {
	t.Helper()
	for s := 1; s <= nsegs; s++ {
		var buf bytes.Buffer
		for _, it := range items {
			if it.seg == s {
				buf.Write(it.line)
			}
		}
		path := filepath.Join(dir, segmentName(s))
		if buf.Len() == 0 {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// locate returns the file and line of items[i].
func locate(items []item, i int) (string, int) {
	line := 0
	for j := 0; j <= i; j++ {
		if items[j].seg == items[i].seg {
			line++
		}
	}
	return segmentName(items[i].seg), line
}

func decode(t *testing.T, it item) Entry {
	t.Helper()
	e, err := DecodeLine(it.line)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func encode(t *testing.T, e Entry) []byte {
	t.Helper()
	b, err := EncodeLine(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectation is where Verify must report the first bad entry.
type expectation struct {
	idx  int    // index into the tampered items
	file string // set instead of idx: the file and line named
	line int
	seq  uint64 // 0: not checked
	err  error
}

type tamper func(t *testing.T, r *rand.Rand, items []item, nsegs int, dir string) ([]item, Head, expectation)

// tampers are every kind of change Verify must catch. Each returns the
// changed items, the head to verify against (zero: the real one), and where
// the first bad entry is.
var tampers = map[string]tamper{
	"flip a byte": func(t *testing.T, r *rand.Rand, items []item, _ int, _ string) ([]item, Head, expectation) {
		k := r.IntN(len(items))
		line := items[k].line
		pos := r.IntN(len(line) - 1)
		line[pos] ^= byte(1 + r.IntN(255))
		return items, Head{}, expectation{idx: k, err: ErrTampered}
	},
	"edit a field": func(t *testing.T, r *rand.Rand, items []item, _ int, _ string) ([]item, Head, expectation) {
		k := r.IntN(len(items))
		e := decode(t, items[k])
		e.Target += "x"
		items[k].line = encode(t, e)
		return items, Head{}, expectation{idx: k, seq: e.Seq, err: ErrTampered}
	},
	"edit and rehash the rest": func(t *testing.T, r *rand.Rand, items []item, _ int, _ string) ([]item, Head, expectation) {
		k := r.IntN(len(items))
		want := len(items) - 1 // the head, unless a checkpoint comes first
		var prev Hash
		for i := k; i < len(items); i++ {
			e := decode(t, items[i])
			if i == k {
				e.Target += "x"
			} else {
				e.Prev = prev
				if e.Action == ActionCheckpoint && want == len(items)-1 {
					want = i
				}
			}
			e.Hash = ComputeHash(e)
			prev = e.Hash
			items[i].line = encode(t, e)
		}
		return items, Head{}, expectation{idx: want, seq: uint64(want + 1), err: ErrTampered}
	},
	"delete an entry": func(t *testing.T, r *rand.Rand, items []item, _ int, _ string) ([]item, Head, expectation) {
		k := r.IntN(len(items) - 1)
		if k+1 < len(items) && items[k+1].seg != items[k].seg && (k == 0 || items[k-1].seg != items[k].seg) {
			// The entry is alone in its segment: the segment goes too,
			// and the next segment's first line names the gap.
			items = append(items[:k], items[k+1:]...)
			return items, Head{}, expectation{file: segmentName(items[k].seg - 1), line: 1, seq: uint64(k + 1), err: ErrTampered}
		}
		items = append(items[:k], items[k+1:]...)
		return items, Head{}, expectation{idx: k, seq: uint64(k + 2), err: ErrTampered}
	},
	"swap two entries": func(t *testing.T, r *rand.Rand, items []item, _ int, _ string) ([]item, Head, expectation) {
		k := r.IntN(len(items) - 1)
		items[k].line, items[k+1].line = items[k+1].line, items[k].line
		return items, Head{}, expectation{idx: k, seq: uint64(k + 2), err: ErrTampered}
	},
	"insert a copy": func(t *testing.T, r *rand.Rand, items []item, _ int, _ string) ([]item, Head, expectation) {
		j, p := r.IntN(len(items)), r.IntN(len(items)+1)
		seg := items[len(items)-1].seg
		if p < len(items) {
			seg = items[p].seg
		}
		cp := item{seg, append([]byte(nil), items[j].line...)}
		items = append(items[:p], append([]item{cp}, items[p:]...)...)
		if j == p {
			return items, Head{}, expectation{idx: p + 1, seq: uint64(p + 1), err: ErrTampered}
		}
		return items, Head{}, expectation{idx: p, seq: uint64(j + 1), err: ErrTampered}
	},
	"cut entries off the end": func(t *testing.T, r *rand.Rand, items []item, _ int, _ string) ([]item, Head, expectation) {
		keep := 1 + r.IntN(len(items)-1)
		items = items[:keep]
		file, line := locate(items, keep-1)
		return items, Head{}, expectation{file: file, line: line + 1, seq: uint64(keep + 1), err: ErrTruncated}
	},
	"remove a segment": func(t *testing.T, r *rand.Rand, items []item, nsegs int, dir string) ([]item, Head, expectation) {
		s := 1 + r.IntN(nsegs)
		first := -1
		var rest []item
		for i, it := range items {
			if it.seg == s {
				if first < 0 {
					first = i
				}
				continue
			}
			rest = append(rest, it)
		}
		switch {
		case len(rest) == 0:
			return rest, Head{}, expectation{file: segmentName(1), line: 1, seq: 1, err: ErrTruncated}
		case s == nsegs:
			file, line := locate(rest, len(rest)-1)
			return rest, Head{}, expectation{file: file, line: line + 1, seq: uint64(first + 1), err: ErrTruncated}
		}
		return rest, Head{}, expectation{file: segmentName(s), line: 1, seq: uint64(first + 1), err: ErrTampered}
	},
	"stale head": func(t *testing.T, r *rand.Rand, items []item, _ int, _ string) ([]item, Head, expectation) {
		k := r.IntN(len(items) - 1)
		return items, decode(t, items[k]).Head(), expectation{idx: k + 1, seq: uint64(k + 2), err: ErrAheadOfHead}
	},
	"forged head hash": func(t *testing.T, r *rand.Rand, items []item, _ int, _ string) ([]item, Head, expectation) {
		h := decode(t, items[len(items)-1]).Head()
		h.Hash[r.IntN(len(h.Hash))] ^= 0x80
		return items, h, expectation{idx: len(items) - 1, seq: h.Seq, err: ErrTampered}
	},
}

// sample is a random log kept in memory, copied for each tamper.
type sample struct {
	pub   ed25519.PublicKey
	head  Head
	items []item
	nsegs int
}

func (s sample) copyItems() []item {
	out := make([]item, len(s.items))
	for i, it := range s.items {
		out[i] = item{it.seg, append([]byte(nil), it.line...)}
	}
	return out
}

// TestVerifyFindsTamper builds random logs, applies random changes of each
// kind to copies of them, and checks that Verify names the first bad entry.
func TestVerifyFindsTamper(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	var samples []sample
	for range 8 {
		dir := t.TempDir()
		pub, key := newKey(t)
		l := mustOpen(t, dir, Options{Key: key, MaxSegmentBytes: int64(400 + r.IntN(2000)), CheckpointEvery: 2 + r.IntN(8)})
		for i := range 4 + r.IntN(40) {
			if _, err := l.Append(entry(r.IntN(1000) + i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		mustVerify(t, dir, pub, l.Head())
		items, nsegs := readItems(t, dir)
		samples = append(samples, sample{pub, l.Head(), items, nsegs})
	}
	for name, tf := range tampers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, uint64(len(name))))
			for round := range 40 {
				s := samples[r.IntN(len(samples))]
				dir := t.TempDir()
				items, head, want := tf(t, r, s.copyItems(), s.nsegs, dir)
				if head == (Head{}) {
					head = s.head
				}
				writeItems(t, dir, items, s.nsegs)
				checkVerifyError(t, round, dir, s.pub, head, items, want)
			}
		})
	}
}

func checkVerifyError(t *testing.T, round int, dir string, pub ed25519.PublicKey, head Head, items []item, want expectation) {
	t.Helper()
	_, err := Verify(dir, pub, head)
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, want.err) {
		t.Fatalf("round %d: Verify = %v, want %v", round, err, want.err)
	}
	file, line := want.file, want.line
	if file == "" {
		file, line = locate(items, want.idx)
	}
	if ve.File != file || ve.Line != line || (want.seq != 0 && ve.Seq != want.seq) {
		t.Fatalf("round %d: Verify names %s line %d seq %d, want %s line %d seq %d: %v", round, ve.File, ve.Line, ve.Seq, file, line, want.seq, err)
	}
	for _, other := range []error{ErrTampered, ErrTruncated, ErrPartialLine, ErrAheadOfHead} {
		if other != want.err && errors.Is(err, other) {
			t.Fatalf("round %d: %v also matches %v", round, err, other)
		}
	}
}

func TestVerifyWrongKeyAndEmpty(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, key := newKey(t)
	other, _ := newKey(t)
	l := mustOpen(t, dir, Options{Key: key})
	if _, err := l.Append(entry(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Verify(dir, other, l.Head())
	var ve *VerifyError
	if !errors.As(err, &ve) || !errors.Is(err, ErrTampered) || ve.Seq != 2 {
		t.Fatalf("Verify with another key = %v", err)
	}
	if _, err := Verify(dir, nil, l.Head()); err == nil {
		t.Fatal("Verify without a key succeeded")
	}
	empty := t.TempDir()
	pub, _ := newKey(t)
	if rep, err := Verify(empty, pub, Head{}); err != nil || rep.Entries != 0 {
		t.Fatalf("empty log: %+v %v", rep, err)
	}
	if _, err := Verify(empty, pub, l.Head()); !errors.Is(err, ErrTruncated) {
		t.Fatalf("emptied log = %v, want ErrTruncated", err)
	}
	if err := os.WriteFile(filepath.Join(empty, segmentName(1)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(empty, pub, Head{}); !errors.Is(err, ErrTampered) {
		t.Fatalf("empty segment = %v, want ErrTampered", err)
	}
}

func TestVerifyPartialFirstLineIsTamper(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pub, _ := newKey(t)
	if err := os.WriteFile(filepath.Join(dir, segmentName(1)), []byte(`{"seq":1,`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir, pub, Head{}); !errors.Is(err, ErrTampered) || errors.Is(err, ErrPartialLine) {
		t.Fatalf("a segment of one partial line = %v, want ErrTampered", err)
	}
}
