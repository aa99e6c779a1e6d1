package snapdiff

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

// memTrees is a TreeLoader over trees built in the test; it counts loads.
type memTrees struct {
	trees map[repository.ID]*repository.Tree
	loads map[repository.ID]int
}

func newMemTrees() *memTrees {
	return &memTrees{trees: map[repository.ID]*repository.Tree{}, loads: map[repository.ID]int{}}
}

func (m *memTrees) LoadTree(_ context.Context, id repository.ID) (*repository.Tree, error) {
	m.loads[id]++
	t, ok := m.trees[id]
	if !ok {
		return nil, repository.ErrBlobNotFound
	}
	return t, nil
}

// entry describes a test tree: a file has content, a dir has children.
type entry struct {
	content string
	mode    uint32
	dir     map[string]entry
	link    string
}

func (m *memTrees) build(dir map[string]entry) repository.ID {
	t := &repository.Tree{}
	for name, e := range dir {
		n := &repository.Node{Name: []byte(name)}
		n.Mode = 0o644
		if e.mode != 0 {
			n.Mode = e.mode
		}
		switch {
		case e.dir != nil:
			n.Type = fsmeta.TypeDir
			id := m.build(e.dir)
			n.Subtree = &id
		case e.link != "":
			n.Type = fsmeta.TypeSymlink
			n.LinkTarget = []byte(e.link)
		default:
			n.Type = fsmeta.TypeFile
			id := repository.ID(sha256.Sum256([]byte(e.content)))
			n.Size = int64(len(e.content))
			n.Content = []repository.ContentItem{{ID: &id, Size: uint64(len(e.content))}}
		}
		t.Nodes = append(t.Nodes, n)
	}
	t.Sort()
	b, err := t.Encode()
	if err != nil {
		panic(err)
	}
	id := repository.ID(sha256.Sum256(b))
	m.trees[id] = t
	return id
}

func diffList(t *testing.T, l TreeLoader, a, b repository.ID) ([]string, *Stats) {
	t.Helper()
	var out []string
	st, err := Diff(context.Background(), l, a, b, func(c Change) error {
		out = append(out, c.Kind.String()+" "+c.Path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, st
}

func TestDiffKinds(t *testing.T) {
	t.Parallel()
	m := newMemTrees()
	shared := map[string]entry{"big": {content: "unchanged"}, "deep": {dir: map[string]entry{"x": {content: "x"}}}}
	a := m.build(map[string]entry{
		"same":    {dir: shared},
		"gone":    {dir: map[string]entry{"f1": {content: "1"}, "f2": {content: "2"}}},
		"edit":    {content: "old"},
		"chmod":   {content: "c"},
		"link":    {link: "/a"},
		"becomes": {content: "file"},
	})
	b := m.build(map[string]entry{
		"same":    {dir: shared},
		"edit":    {content: "new!"},
		"chmod":   {content: "c", mode: 0o600},
		"link":    {link: "/b"},
		"becomes": {dir: map[string]entry{"inner": {content: "i"}}},
		"new":     {content: "fresh"},
	})
	m.loads = map[repository.ID]int{}
	got, st := diffList(t, m, a, b)
	want := []string{"T /becomes", "+ /becomes/inner", "U /chmod", "M /edit", "- /gone", "- /gone/f1", "- /gone/f2",
		"M /link", "+ /new"}
	if !slices.Equal(got, want) {
		t.Fatalf("diff:\n%v\nwant\n%v", got, want)
	}
	if st.Added.Files != 2 || st.Removed.Dirs != 1 || st.Removed.Files != 2 || st.Modified != 2 || st.MetadataChanged != 1 || st.TypeChanged != 1 {
		t.Fatalf("stats %+v", st)
	}
	// "same" has one ID on both sides: neither it nor its children were loaded.
	for id, n := range m.loads {
		for _, node := range m.trees[id].Nodes {
			if string(node.Name) == "big" {
				t.Fatalf("identical subtree loaded %d times", n)
			}
		}
	}
	// New content: "new!", "fresh", "i"; removed: "old", "1", "2", "file".
	if st.BlobsAdded != 3 || st.BlobsRemoved != 4 || st.BytesAdded != 4+5+1 || st.BytesRemoved != 3+1+1+4 {
		t.Fatalf("blob stats %+v", st)
	}
	if got, _ := diffList(t, m, a, a); len(got) != 0 {
		t.Fatalf("a tree differs from itself: %v", got)
	}
}

func TestDiffStopsOnCallbackError(t *testing.T) {
	t.Parallel()
	m := newMemTrees()
	a := m.build(map[string]entry{"x": {content: "1"}})
	b := m.build(map[string]entry{"y": {content: "2"}})
	stop := errors.New("stop")
	_, err := Diff(context.Background(), m, a, b, func(Change) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v", err)
	}
	_, err = Diff(context.Background(), m, a, repository.ID{1}, func(Change) error { return nil })
	if !errors.Is(err, repository.ErrBlobNotFound) {
		t.Fatalf("missing tree: %v", err)
	}
}

func randomDir(rng *rand.Rand, depth int) map[string]entry {
	d := map[string]entry{}
	for i := 0; i < 1+rng.IntN(5); i++ {
		name := fmt.Sprintf("n%d", rng.IntN(6))
		switch {
		case depth > 0 && rng.IntN(3) == 0:
			d[name] = entry{dir: randomDir(rng, depth-1)}
		case rng.IntN(6) == 0:
			d[name] = entry{link: fmt.Sprint(rng.IntN(2))}
		default:
			d[name] = entry{content: fmt.Sprint(rng.IntN(3)), mode: uint32(0o600 + rng.IntN(2))}
		}
	}
	return d
}

// flatten lists every path with a fingerprint of what it is.
func flatten(prefix string, d map[string]entry, out map[string]string) {
	for name, e := range d {
		p := prefix + "/" + name
		switch {
		case e.dir != nil:
			out[p] = "dir "
			flatten(p, e.dir, out)
		case e.link != "":
			out[p] = "link " + e.link
		default:
			out[p] = fmt.Sprintf("file %s %o", e.content, e.mode)
		}
	}
}

// TestDiffProperty compares Diff with a diff of flattened path lists on
// random trees, and checks that swapping the sides swaps + and -.
func TestDiffProperty(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	for iter := 0; iter < 500; iter++ {
		m := newMemTrees()
		da, db := randomDir(rng, 3), randomDir(rng, 3)
		if rng.IntN(3) == 0 {
			db["n0"] = entry{dir: da}
		}
		a, b := m.build(da), m.build(db)
		fa, fb := map[string]string{}, map[string]string{}
		flatten("", da, fa)
		flatten("", db, fb)
		var want []string
		for p, x := range fa {
			y, ok := fb[p]
			switch {
			case !ok:
				// Below a type change the old entries show as removed.
				want = append(want, "- "+p)
			case x == y || (x == "dir " && y == "dir "):
			case x[:4] != y[:4]:
				want = append(want, "T "+p)
			case x[:4] == "file" && x[:6] == y[:6]:
				want = append(want, "U "+p)
			default:
				want = append(want, "M "+p)
			}
		}
		for p := range fb {
			if _, ok := fa[p]; !ok {
				want = append(want, "+ "+p)
			}
		}
		got, st := diffList(t, m, a, b)
		sort.Strings(want)
		sorted := slices.Clone(got)
		sort.Strings(sorted)
		if !slices.Equal(sorted, want) {
			t.Fatalf("iteration %d:\ngot  %v\nwant %v", iter, sorted, want)
		}
		_, back := diffList(t, m, b, a)
		if back.Added != st.Removed || back.Removed != st.Added || back.Modified != st.Modified ||
			back.BlobsAdded != st.BlobsRemoved || back.BytesRemoved != st.BytesAdded {
			t.Fatalf("iteration %d: reversed stats %+v vs %+v", iter, back, st)
		}
	}
}

func TestDiffRealSnapshots(t *testing.T) {
	t.Parallel()
	st := mem.New()
	repotest.Init(t, st)
	rng := rand.New(rand.NewPCG(9, 10))
	src := t.TempDir()
	repotest.RandomTree(t, src, 8, 100<<10, rng)
	keep := filepath.Join(src, "untouched")
	repotest.WriteFile(t, filepath.Join(keep, "a"), 1000, rng)
	s1 := repotest.Backup(t, st, []string{src})

	repotest.WriteFile(t, filepath.Join(src, "added", "x"), 5000, rng)
	if err := os.RemoveAll(filepath.Join(src, "d0")); err != nil {
		t.Fatal(err)
	}
	files := repotest.Files(t, filepath.Join(src, "d1"))
	var names []string
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) < 2 {
		t.Skip("random tree too small")
	}
	modified := filepath.Join(src, "d1", names[0])
	repotest.WriteFile(t, modified, 7000, rng)
	chmodded := filepath.Join(src, "d1", names[1])
	if err := os.Chmod(chmodded, 0o640); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_600_000_000, 0)
	// Keep the directory times as they were, so only the entries differ.
	for _, d := range []string{filepath.Join(src, "d1")} {
		_ = os.Chtimes(d, old, old)
	}
	s2 := repotest.Backup(t, st, []string{src})

	r := repotest.Open(t, st)
	got := map[string]Kind{}
	stats, err := Diff(context.Background(), r, s1.Tree, s2.Tree, func(c Change) error {
		got[c.Path] = c.Kind
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, k := range map[string]Kind{src + "/added": Added, src + "/added/x": Added, src + "/d0": Removed,
		modified: Modified, chmodded: Metadata} {
		if got[p] != k {
			t.Errorf("%s: got %q, want %q (all: %v)", p, got[p], k, got)
		}
	}
	if _, ok := got[keep+"/a"]; ok {
		t.Errorf("unchanged file reported")
	}
	if stats.BlobsAdded == 0 || stats.BlobsRemoved == 0 {
		t.Errorf("stats %+v", stats)
	}
}
