package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

type fixture struct {
	st    *mem.Mem
	snaps []*repository.Snapshot
	src   string
}

// newFixture makes a repository with two snapshots of a small tree.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	st := mem.New()
	repotest.Init(t, st)
	rng := rand.New(rand.NewPCG(1, 2))
	src := t.TempDir()
	// Small files: what the tests prove depends on the objects' structure,
	// not their bulk, and TestCorruptionSweep checks the whole repository
	// a few hundred times (slow under -race when it held 2 MB).
	repotest.RandomTree(t, src, 12, 40<<10, rng)
	s1 := repotest.Backup(t, st, []string{src})
	repotest.WriteFile(t, filepath.Join(src, "d9", "late"), 30<<10, rng)
	s2 := repotest.Backup(t, st, []string{src})
	return &fixture{st: st, snaps: []*repository.Snapshot{s1, s2}, src: src}
}

func runCheck(t testing.TB, st storage.Storage, o Options) *Result {
	t.Helper()
	r, err := repository.Open(context.Background(), st, repotest.Secret(t, st))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	res, err := Check(context.Background(), r, o)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return res
}

func dump(st *mem.Mem, t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range storage.Kinds {
		err := st.List(context.Background(), k, func(fi storage.FileInfo) error {
			h := storage.Handle{Kind: k, Name: fi.Name}
			b, err := st.Load(context.Background(), h, 0, -1)
			out[h.String()] = b
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestHealthyRepositoryAndNoWrites(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	before := dump(f.st, t)
	res := runCheck(t, f.st, Options{ReadData: true})
	if res.Damaged() || res.Err() != nil {
		t.Fatalf("healthy repository reported damaged: %+v", res)
	}
	if res.Snapshots != 2 || res.PacksRead != res.Packs || res.Packs == 0 || res.DataBlobs == 0 || res.Trees == 0 {
		t.Fatalf("unexpected counts: %+v", res)
	}
	if len(res.UnindexedPacks) != 0 {
		t.Fatalf("unindexed packs in a clean repository: %v", res.UnindexedPacks)
	}
	after := dump(f.st, t)
	if len(before) != len(after) {
		t.Fatalf("check changed the object count: %d -> %d", len(before), len(after))
	}
	for k, v := range before {
		if !bytes.Equal(v, after[k]) {
			t.Fatalf("check modified %s", k)
		}
	}
	sub := runCheck(t, f.st, Options{ReadData: true, Subset: Subset{Percent: 50}})
	if sub.Damaged() || sub.PacksRead != (res.Packs+1)/2 {
		t.Fatalf("50%% subset read %d of %d packs (damaged %v)", sub.PacksRead, res.Packs, sub.Damaged())
	}
	total := 0
	for n := 1; n <= 3; n++ {
		total += runCheck(t, f.st, Options{ReadData: true, Subset: Subset{N: n, M: 3}}).PacksRead
	}
	if total != res.Packs {
		t.Fatalf("groups 1/3..3/3 read %d packs, want %d", total, res.Packs)
	}
}

func replace(t testing.TB, st *mem.Mem, h storage.Handle, data []byte) {
	t.Helper()
	if err := st.Remove(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(context.Background(), h, data); err != nil {
		t.Fatal(err)
	}
}

// positions picks the bytes to flip in an object of n bytes: every header
// field, both ends, and spread random offsets.
func positions(n int, rng *rand.Rand) []int {
	set := map[int]bool{}
	for _, p := range []int{0, 3, 4, 5, 6, 7, 8, 11, 12, 43, 44, 45, n / 2, n - 40, n - 20, n - 5, n - 4, n - 1} {
		if p >= 0 && p < n {
			set[p] = true
		}
	}
	for i := 0; i < 10; i++ {
		set[rng.IntN(n)] = true
	}
	out := make([]int, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

func reported(res *Result, h storage.Handle) bool {
	switch h.Kind {
	case storage.KindData:
		for _, l := range [][]PackProblem{res.DamagedPacks, res.SizeMismatches, res.MissingPacks} {
			for _, p := range l {
				if p.Pack.String() == h.Name {
					return true
				}
			}
		}
		return false
	default:
		for _, o := range res.ObjectErrors {
			if o.Kind == h.Kind && o.Name == h.Name {
				return true
			}
		}
		return false
	}
}

// TestCorruptionSweep flips one bit at many positions of every pack, index
// and snapshot object, and truncates each of them, asserting that check
// --read-data reports that object every time (and never panics).
func TestCorruptionSweep(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	rng := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	checks := 0
	for _, k := range []storage.Kind{storage.KindData, storage.KindIndex, storage.KindSnapshots} {
		names := repotest.Names(t, f.st, k)
		if len(names) == 0 {
			t.Fatalf("no %s objects", k)
		}
		for _, name := range names {
			h := storage.Handle{Kind: k, Name: name}
			orig, err := f.st.Load(ctx, h, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			for _, pos := range positions(len(orig), rng) {
				bad := bytes.Clone(orig)
				bad[pos] ^= 1 << rng.IntN(8)
				replace(t, f.st, h, bad)
				res := runCheck(t, f.st, Options{ReadData: true})
				checks++
				if !res.Damaged() || !errors.Is(res.Err(), ErrDamaged) || !reported(res, h) {
					t.Errorf("bit flip at %d of %s (%d bytes) not reported: %+v", pos, h, len(orig), res)
				}
			}
			for _, n := range []int{0, 1, crypto.HeaderSize, len(orig) / 2, len(orig) - 1} {
				replace(t, f.st, h, orig[:n])
				res := runCheck(t, f.st, Options{ReadData: k != storage.KindData || n%2 == 0})
				if !res.Damaged() || !reported(res, h) {
					t.Errorf("truncation of %s to %d bytes not reported: %+v", h, n, res)
				}
			}
			replace(t, f.st, h, orig)
		}
	}
	t.Logf("%d bit flips checked", checks)
	if res := runCheck(t, f.st, Options{ReadData: true}); res.Damaged() {
		t.Fatalf("repository still damaged after restoring every object: %+v", res)
	}
}

// expectedAffected walks every snapshot and returns the files that have a
// blob stored only in pack, and the directories whose tree is only there.
func expectedAffected(t *testing.T, st storage.Storage, snaps []*repository.Snapshot, pack repository.ID) []AffectedFile {
	t.Helper()
	r := repotest.Open(t, st)
	only := func(tp repository.BlobType, id repository.ID) bool {
		locs := r.Index().Lookup(repository.BlobHandle{Type: tp, ID: id})
		return len(locs) == 1 && locs[0].Pack == pack
	}
	var out []AffectedFile
	for _, s := range snaps {
		if only(repository.TreeBlob, s.Tree) {
			out = append(out, AffectedFile{Snapshot: s.ID, Path: "/"})
			continue
		}
		err := r.Walk(context.Background(), s.Tree, func(p string, n *repository.Node) error {
			if n.Subtree != nil && only(repository.TreeBlob, *n.Subtree) {
				out = append(out, AffectedFile{Snapshot: s.ID, Path: p})
				return repository.ErrSkipDir
			}
			for _, it := range n.Content {
				if it.ID != nil && only(repository.DataBlob, *it.ID) {
					out = append(out, AffectedFile{Snapshot: s.ID, Path: p})
					break
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestDeletedPackNamesAffectedFiles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := repotest.Open(t, f.st)
	for _, victim := range r.Index().Packs() {
		t.Run(victim.Short(), func(t *testing.T) {
			h := storage.Handle{Kind: storage.KindData, Name: victim.String()}
			orig, err := f.st.Load(context.Background(), h, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			want := expectedAffected(t, f.st, f.snaps, victim)
			if err := f.st.Remove(context.Background(), h); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := f.st.Save(context.Background(), h, orig); err != nil {
					t.Fatal(err)
				}
			}()
			res := runCheck(t, f.st, Options{})
			if len(res.MissingPacks) != 1 || res.MissingPacks[0].Pack != victim {
				t.Fatalf("missing packs = %+v, want %s", res.MissingPacks, victim.Short())
			}
			got := res.MissingPacks[0].Affected
			sortAff := func(a []AffectedFile) {
				slices.SortFunc(a, func(x, y AffectedFile) int {
					return bytes.Compare([]byte(x.Snapshot.String()+x.Path), []byte(y.Snapshot.String()+y.Path))
				})
			}
			sortAff(got)
			sortAff(want)
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Fatalf("affected = %v\nwant %v", got, want)
			}
			if len(res.LostBlobs) == 0 || len(res.LostBlobs[0].Affected) == 0 {
				t.Fatalf("lost blobs not reported with files: %+v", res.LostBlobs)
			}
			if !errors.Is(res.Err(), ErrDamaged) {
				t.Fatal("no ErrDamaged")
			}
		})
	}
}

func TestDeletedTreeNamesDirectory(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := repotest.Open(t, f.st)
	// Find the pack holding the tree of a subdirectory "d0" and delete it.
	node, err := r.FindNode(context.Background(), f.snaps[0].Tree, f.src+"/d0")
	if err != nil || node == nil || node.Subtree == nil {
		t.Fatalf("find d0: %v %v", node, err)
	}
	locs := r.Index().Lookup(repository.BlobHandle{Type: repository.TreeBlob, ID: *node.Subtree})
	if len(locs) != 1 {
		t.Fatalf("tree has %d copies", len(locs))
	}
	if err := f.st.Remove(context.Background(), storage.Handle{Kind: storage.KindData, Name: locs[0].Pack.String()}); err != nil {
		t.Fatal(err)
	}
	res := runCheck(t, f.st, Options{})
	ok := false
	for _, lb := range res.LostBlobs {
		if lb.ID == *node.Subtree {
			for _, a := range lb.Affected {
				if a.Path == f.src+"/d0" {
					ok = true
				}
			}
		}
	}
	if !ok {
		t.Fatalf("lost tree of %s/d0 not reported with its path: %+v", f.src, res.LostBlobs)
	}
}

func TestUnindexedPackIsWarning(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := repotest.Open(t, f.st)
	pw, err := r.NewPackWriter()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("orphan blob")
	if err := pw.Add(repository.DataBlob, r.Hasher().Sum(data), data); err != nil {
		t.Fatal(err)
	}
	ip, _, err := r.SavePack(context.Background(), pw)
	if err != nil {
		t.Fatal(err)
	}
	res := runCheck(t, f.st, Options{ReadData: true})
	if res.Damaged() {
		t.Fatalf("an unindexed pack made the repository damaged: %+v", res)
	}
	if !slices.Contains(res.UnindexedPacks, ip.ID) {
		t.Fatalf("unindexed pack not listed: %v", res.UnindexedPacks)
	}
}

func TestParseSubset(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want Subset
		ok   bool
	}{
		{"10%", Subset{Percent: 10}, true},
		{"0.5%", Subset{Percent: 0.5}, true},
		{"100%", Subset{Percent: 100}, true},
		{"1/5", Subset{N: 1, M: 5}, true},
		{"5/5", Subset{N: 5, M: 5}, true},
		{"0%", Subset{}, false},
		{"101%", Subset{}, false},
		{"NaN%", Subset{}, false},
		{"0/5", Subset{}, false},
		{"6/5", Subset{}, false},
		{"1/0", Subset{}, false},
		{"abc", Subset{}, false},
		{"500M", Subset{Bytes: 500 << 20}, true},
		{"2GiB", Subset{Bytes: 2 << 30}, true},
		{"0", Subset{}, false},
		{"-5M", Subset{}, false},
		{"", Subset{}, false},
	} {
		got, err := ParseSubset(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSubset(%q) = %+v, %v", c.in, got, err)
		}
		if err != nil && !errors.Is(err, ErrBadSubset) {
			t.Errorf("ParseSubset(%q) error %v is not ErrBadSubset", c.in, err)
		}
	}
}

// A size subset reads random packs until their sizes reach it.
func TestSubsetBytes(t *testing.T) {
	t.Parallel()
	ids := make([]repository.ID, 10)
	for i := range ids {
		ids[i][0] = byte(i)
	}
	size := func(id repository.ID) int64 { return int64(id[0]+1) << 20 }
	for _, budget := range []int64{1, 3 << 20, 20 << 20, 1 << 40} {
		got := Subset{Bytes: budget}.pick(ids, size)
		var total, largest int64
		for _, id := range got {
			total += size(id)
			largest = max(largest, size(id))
		}
		switch {
		case len(got) == 0:
			t.Fatalf("budget %d picked nothing", budget)
		case total < budget && len(got) != len(ids):
			t.Fatalf("budget %d: stopped at %d bytes with packs left", budget, total)
		case total-largest >= budget:
			// The pick order is gone after sorting, but whichever pack
			// came last, the others alone stayed below the budget.
			t.Fatalf("budget %d: read %d bytes, more than one pack past it", budget, total)
		}
	}
}

func FuzzParseSubset(f *testing.F) {
	for _, s := range []string{"10%", "1/3", "", "%", "/", "3/2", "1e400%", "500M", "1.5GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sub, err := ParseSubset(s)
		if err != nil {
			return
		}
		ids := make([]repository.ID, 20)
		for i := range ids {
			ids[i][0] = byte(i * 13)
		}
		got := sub.pick(ids, func(repository.ID) int64 { return 1 << 20 })
		if len(got) > len(ids) {
			t.Fatalf("picked %d of %d", len(got), len(ids))
		}
		if (sub.Percent > 0 || sub.Bytes > 0) && len(got) == 0 {
			t.Fatalf("%q picked nothing", s)
		}
		_ = fmt.Sprint(got)
	})
}

// FuzzCheckCorruptObject damages one object of a small repository as the
// fuzzer says (which object, where, how, or a truncation) and requires check
// to report it without panicking.
func FuzzCheckCorruptObject(f *testing.F) {
	st := mem.New()
	repotest.Init(f, st)
	src := f.TempDir()
	repotest.RandomTree(f, src, 4, 200<<10, rand.New(rand.NewPCG(5, 5)))
	repotest.Backup(f, st, []string{src})
	var handles []storage.Handle
	for _, k := range []storage.Kind{storage.KindData, storage.KindIndex, storage.KindSnapshots} {
		for _, n := range repotest.Names(f, st, k) {
			handles = append(handles, storage.Handle{Kind: k, Name: n})
		}
	}
	orig := map[storage.Handle][]byte{}
	for _, h := range handles {
		b, err := st.Load(context.Background(), h, 0, -1)
		if err != nil {
			f.Fatal(err)
		}
		orig[h] = b
	}
	f.Add(uint8(0), uint32(0), uint8(1), false)
	f.Add(uint8(0), uint32(100), uint8(0x80), false)
	f.Add(uint8(1), uint32(50), uint8(4), false)
	f.Add(uint8(2), uint32(9), uint8(2), true)
	f.Add(uint8(0), uint32(1<<31), uint8(0xff), true)
	f.Fuzz(func(t *testing.T, which uint8, pos uint32, xor uint8, truncate bool) {
		h := handles[int(which)%len(handles)]
		data := bytes.Clone(orig[h])
		p := int(pos % uint32(len(data)))
		switch {
		case truncate:
			data = data[:p]
		case xor == 0:
			return
		default:
			data[p] ^= xor
		}
		replace(t, st, h, data)
		defer replace(t, st, h, orig[h])
		res := runCheck(t, st, Options{ReadData: true})
		if !res.Damaged() || !reported(res, h) {
			t.Fatalf("damage to %s at %d not reported", h, p)
		}
	})
}
