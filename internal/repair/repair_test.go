package repair

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/maintenance/repotest"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/mem"
)

// fixture is a repository with two snapshots of a tree of small files.
type fixture struct {
	st    *mem.Mem
	snaps []*repository.Snapshot
	src   string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st := mem.New()
	repotest.Init(t, st)
	rng := rand.New(rand.NewPCG(3, 4))
	src := t.TempDir()
	repotest.RandomTree(t, src, 24, 240<<10, rng) // about 3 MiB: several 1 MiB packs
	s1 := repotest.Backup(t, st, []string{src})
	repotest.WriteFile(t, filepath.Join(src, "late", "file"), 20<<10, rng)
	s2 := repotest.Backup(t, st, []string{src})
	return &fixture{st: st, snaps: []*repository.Snapshot{s1, s2}, src: src}
}

func noLog(string, ...any) {}

// indexed returns every blob location of r's loaded index.
func indexed(r *repository.Repository) map[repository.BlobHandle]repository.BlobLocation {
	out := map[repository.BlobHandle]repository.BlobLocation{}
	r.Index().Each(func(l repository.BlobLocation, id repository.ID) bool {
		out[repository.BlobHandle{Type: l.Type, ID: id}] = l
		return true
	})
	return out
}

// contents maps every object's handle to its bytes.
func contents(t testing.TB, st *mem.Mem) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, k := range storage.Kinds {
		for _, n := range repotest.Names(t, st, k) {
			h := storage.Handle{Kind: k, Name: n}
			b, err := st.Load(context.Background(), h, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			out[h.String()] = b
		}
	}
	return out
}

func replace(t testing.TB, st *mem.Mem, h storage.Handle, data []byte) {
	t.Helper()
	if err := st.Remove(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	if data != nil {
		if err := st.Save(context.Background(), h, data); err != nil {
			t.Fatal(err)
		}
	}
}

func load(t testing.TB, st *mem.Mem, h storage.Handle) []byte {
	t.Helper()
	b, err := st.Load(context.Background(), h, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func packHandle(id repository.ID) storage.Handle {
	return storage.Handle{Kind: storage.KindData, Name: id.String()}
}

// TestRebuildIndexFromPackHeaders: with the index files gone or garbage,
// one pack's header damaged and another pack missing, the rebuilt index
// holds exactly the blobs of the readable packs at the places the original
// index had them, names the damaged pack, and replaces every old index
// file. The dry run reports the same and writes nothing.
func TestRebuildIndexFromPackHeaders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	want := indexed(repotest.Open(t, f.st))
	packs := repotest.Names(t, f.st, storage.KindData)
	if len(packs) < 3 {
		t.Fatalf("fixture has %d packs, want at least 3", len(packs))
	}
	damaged, _ := repository.ParseID(packs[0])
	missing, _ := repository.ParseID(packs[1])
	b := bytes.Clone(load(t, f.st, packHandle(damaged)))
	b[5] ^= 0x40 // inside the pack header
	replace(t, f.st, packHandle(damaged), b)
	replace(t, f.st, packHandle(missing), nil)
	oldIndex := repotest.Names(t, f.st, storage.KindIndex)
	// One old index file is garbage: it is superseded and removed too.
	replace(t, f.st, storage.Handle{Kind: storage.KindIndex, Name: oldIndex[0]}, []byte("not an index"))
	for h, l := range want {
		if l.Pack == damaged || l.Pack == missing {
			delete(want, h)
		}
	}

	before := contents(t, f.st)
	dry, err := RebuildIndex(ctx, repotest.Open(t, f.st), true, noLog)
	if err != nil {
		t.Fatal(err)
	}
	if !maps(before, contents(t, f.st)) {
		t.Fatal("the dry run wrote to the repository")
	}
	if dry.Packs != len(packs)-2 || dry.Blobs != len(want) || len(dry.BadPacks) != 1 || dry.BadPacks[0].Pack != damaged || dry.Written != 0 || dry.Removed != 0 {
		t.Fatalf("dry run: %+v, want %d packs, %d blobs, bad %s", dry, len(packs)-2, len(want), damaged.Short())
	}

	res, err := RebuildIndex(ctx, repotest.Open(t, f.st), false, noLog)
	if err != nil {
		t.Fatal(err)
	}
	if res.Packs != dry.Packs || res.Blobs != dry.Blobs || res.FilesBefore != len(oldIndex) || res.Removed != len(oldIndex) || res.Written == 0 {
		t.Fatalf("rebuild: %+v (dry run %+v), %d old index files", res, dry, len(oldIndex))
	}
	now := repotest.Names(t, f.st, storage.KindIndex)
	for _, old := range oldIndex {
		if slices.Contains(now, old) {
			t.Errorf("old index file %s left", old[:8])
		}
	}
	got := indexed(repotest.Open(t, f.st))
	if len(got) != len(want) {
		t.Fatalf("rebuilt index has %d blobs, want %d", len(got), len(want))
	}
	for h, l := range want {
		if got[h] != l {
			t.Errorf("blob %s: rebuilt at %+v, was at %+v", h.ID.Short(), got[h], l)
		}
	}
	// The rebuilt index is a sound one: check finds the index and packs
	// consistent (only the data of the two lost packs is missing).
	r, err := repository.Open(ctx, f.st, repotest.Secret(t, f.st))
	if err != nil {
		t.Fatal(err)
	}
	cres, err := check.Check(ctx, r, check.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cres.ObjectErrors)+len(cres.MissingPacks)+len(cres.SizeMismatches) != 0 || len(cres.UnindexedPacks) != 1 || cres.UnindexedPacks[0] != damaged {
		t.Fatalf("check after rebuild: %+v", cres)
	}
}

// TestRebuildIndexOfHealthyRepository: rebuilding a healthy index changes
// no blob's location, and a second rebuild supersedes the first.
func TestRebuildIndexOfHealthyRepository(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	want := indexed(repotest.Open(t, f.st))
	for range 2 {
		res, err := RebuildIndex(ctx, repotest.Open(t, f.st), false, noLog)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.BadPacks) != 0 || res.Blobs != len(want) {
			t.Fatalf("rebuild of a healthy repository: %+v, want %d blobs", res, len(want))
		}
		got := indexed(repotest.Open(t, f.st))
		if len(got) != len(want) {
			t.Fatalf("%d blobs, want %d", len(got), len(want))
		}
		for h, l := range want {
			if got[h] != l {
				t.Fatalf("blob %s moved from %+v to %+v", h.ID.Short(), l, got[h])
			}
		}
	}
	for _, s := range f.snaps[1:] {
		repotest.AssertRestores(t, f.st, s, repotest.Files(t, f.src))
	}
}

// dataPack returns a pack that holds data blobs and none of the trees on
// the snapshots' path down to the backed-up directory (its loss leaves
// each snapshot with a root to restore).
func dataPack(t *testing.T, r *repository.Repository, f *fixture) repository.ID {
	t.Helper()
	spine := map[repository.ID]bool{}
	for _, s := range f.snaps {
		id := s.Tree
		spine[id] = true
		for dir := ""; dir != f.src; {
			tree, err := r.LoadTree(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if len(tree.Nodes) != 1 || tree.Nodes[0].Subtree == nil {
				t.Fatalf("snapshot tree at %q is not a path to %s", dir, f.src)
			}
			dir += "/" + string(tree.Nodes[0].Name)
			id = *tree.Nodes[0].Subtree
			spine[id] = true
		}
	}
	data, bad := map[repository.ID]int{}, map[repository.ID]bool{}
	r.Index().Each(func(l repository.BlobLocation, id repository.ID) bool {
		if l.Type == repository.DataBlob {
			data[l.Pack]++
		} else if spine[id] {
			bad[l.Pack] = true
		}
		return true
	})
	for _, id := range r.Index().Packs() {
		if data[id] > 0 && !bad[id] {
			return id
		}
	}
	t.Fatal("every pack of data holds the path to a snapshot")
	return repository.ID{}
}

// affected returns, per snapshot, the paths check names as lost.
func affected(t *testing.T, st *mem.Mem) map[repository.ID][]string {
	t.Helper()
	r, err := repository.Open(context.Background(), st, repotest.Secret(t, st))
	if err != nil {
		t.Fatal(err)
	}
	res, err := check.Check(context.Background(), r, check.Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[repository.ID][]string{}
	for _, b := range res.LostBlobs {
		for _, a := range b.Affected {
			if !slices.Contains(out[a.Snapshot], a.Path) {
				out[a.Snapshot] = append(out[a.Snapshot], a.Path)
			}
		}
	}
	for id := range out {
		slices.Sort(out[id])
	}
	return out
}

// TestRepairSnapshotsDropsOnlyLostFiles: after a pack of data is lost,
// repair writes, for each snapshot that needed it, a snapshot without
// exactly the files (and directories, when the pack held their trees)
// check names as lost (an independent walk), tagged and parented; every
// other file restores byte for byte. The dry run reports
// the same and writes nothing.
func TestRepairSnapshotsDropsOnlyLostFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	lost := dataPack(t, repotest.Open(t, f.st), f)
	replace(t, f.st, packHandle(lost), nil)
	if _, err := RebuildIndex(ctx, repotest.Open(t, f.st), false, noLog); err != nil {
		t.Fatal(err)
	}
	want := affected(t, f.st)
	if len(want) == 0 {
		t.Fatal("losing a data pack lost no file")
	}

	before := contents(t, f.st)
	dry, err := RepairSnapshots(ctx, repotest.Open(t, f.st), f.snaps, true)
	if err != nil {
		t.Fatal(err)
	}
	if !maps(before, contents(t, f.st)) {
		t.Fatal("the dry run wrote to the repository")
	}
	res, err := RepairSnapshots(ctx, repotest.Open(t, f.st), f.snaps, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(want) || len(dry) != len(res) {
		t.Fatalf("%d snapshots repaired (dry run %d), check names %d", len(res), len(dry), len(want))
	}
	r := repotest.Open(t, f.st)
	for i, x := range res {
		removed := slices.Sorted(slices.Values(x.Removed))
		if !slices.Equal(removed, want[x.Original]) {
			t.Errorf("snapshot %s: removed %q, check names %q", x.Original.Short(), removed, want[x.Original])
		}
		if dry[i].Original != x.Original || !slices.Equal(dry[i].Removed, x.Removed) || dry[i].New != nil || x.New == nil {
			t.Fatalf("dry run %+v, run %+v", dry[i], x)
		}
		n, err := r.LoadSnapshot(ctx, *x.New)
		if err != nil {
			t.Fatal(err)
		}
		if n.Parent == nil || *n.Parent != x.Original || !slices.Contains(n.Tags, RepairedTag) {
			t.Errorf("repaired snapshot: parent %v, tags %q", n.Parent, n.Tags)
		}
		var orig *repository.Snapshot
		for _, s := range f.snaps {
			if s.ID == x.Original {
				orig = s
			}
		}
		// Everything but the removed files restores as it was backed up.
		wantFiles := repotest.Files(t, f.src)
		root := orig.Paths[0]
		for _, p := range x.Removed {
			// A removed file, or a directory whose tree was in the pack.
			rel := strings.TrimPrefix(strings.TrimPrefix(p, "/"), strings.TrimPrefix(root, "/")+"/")
			for name := range wantFiles {
				if name == rel || strings.HasPrefix(name, rel+"/") {
					delete(wantFiles, name)
				}
			}
		}
		if orig == f.snaps[0] {
			delete(wantFiles, filepath.Join("late", "file"))
		}
		repotest.AssertRestores(t, f.st, n, wantFiles)
	}
	// Repaired snapshots lose nothing more: check finds them whole.
	after := affected(t, f.st)
	for _, x := range res {
		if len(after[*x.New]) != 0 {
			t.Errorf("repaired snapshot %s still loses %q", x.New.Short(), after[*x.New])
		}
	}
}

// TestRepairSnapshotsUnreadableTree: a directory whose tree is lost
// becomes an empty directory, reported by its path.
func TestRepairSnapshotsUnreadableTree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	r := repotest.Open(t, f.st)
	snap := f.snaps[1]
	root, err := r.LoadTree(ctx, snap.Tree)
	if err != nil {
		t.Fatal(err)
	}
	// Walk down the snapshot's path to the backed-up directory.
	tree := root
	var dir string
	for dir != f.src {
		if len(tree.Nodes) != 1 || tree.Nodes[0].Subtree == nil {
			t.Fatalf("snapshot tree at %q is not a path to %s", dir, f.src)
		}
		dir += "/" + string(tree.Nodes[0].Name)
		if tree, err = r.LoadTree(ctx, *tree.Nodes[0].Subtree); err != nil {
			t.Fatal(err)
		}
	}
	var victim *repository.Node
	for _, n := range tree.Nodes {
		if n.Subtree != nil && string(n.Name) == "late" {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("no directory late under %s", dir)
	}
	// Drop the tree blob from the index: it cannot be read any more.
	idx := repository.NewMasterIndex()
	var files []*repository.IndexFile
	for _, id := range repotest.Names(t, f.st, storage.KindIndex) {
		pid, _ := repository.ParseID(id)
		fl, err := r.LoadIndexFile(ctx, pid)
		if err != nil {
			t.Fatal(err)
		}
		for i := range fl.Packs {
			fl.Packs[i].Blobs = slices.DeleteFunc(slices.Clone(fl.Packs[i].Blobs), func(e repository.PackEntry) bool {
				return e.Type == repository.TreeBlob && e.ID == *victim.Subtree
			})
		}
		files = append(files, fl)
	}
	idx.AddFiles(files)
	r.UseIndex(idx)
	res, err := RepairSnapshots(ctx, r, []*repository.Snapshot{snap}, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := dir + "/late"; len(res) != 1 || !slices.Equal(res[0].Removed, []string{want}) {
		t.Fatalf("repair of a lost tree: %+v, want %s removed", res, want)
	}
}

func maps(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// FuzzRebuildIndexPack: whatever bytes a pack holds, a (dry-run) rebuild
// does not fail or panic: the pack is reported bad, or indexed with blobs
// that lie inside it, and every other pack is indexed as before.
func FuzzRebuildIndexPack(f *testing.F) {
	fx := newFixture(f)
	packs := repotest.Names(f, fx.st, storage.KindData)
	victim, _ := repository.ParseID(packs[0])
	orig := load(f, fx.st, packHandle(victim))
	base, err := RebuildIndex(context.Background(), repotest.Open(f, fx.st), true, noLog)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(orig)
	f.Add(orig[:len(orig)/2])
	f.Add(orig[len(orig)-64:])
	f.Add([]byte{})
	trunc := bytes.Clone(orig)
	trunc[len(trunc)-5] ^= 1
	f.Add(trunc)
	r := repotest.Open(f, fx.st)
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := fx.st.Remove(context.Background(), packHandle(victim)); err != nil {
			t.Fatal(err)
		}
		if err := fx.st.Save(context.Background(), packHandle(victim), data); err != nil {
			t.Fatal(err)
		}
		res, err := RebuildIndex(context.Background(), r, true, noLog)
		if err != nil {
			t.Fatalf("rebuild: %v", err)
		}
		bad := len(res.BadPacks) == 1 && res.BadPacks[0].Pack == victim
		switch {
		case bad && res.Packs == base.Packs-1:
		case len(res.BadPacks) == 0 && res.Packs == base.Packs:
			entries, err := r.ReadPackDirectory(context.Background(), victim, int64(len(data)))
			if err != nil {
				t.Fatalf("indexed, but its directory does not read: %v", err)
			}
			for _, e := range entries {
				if int64(e.Offset)+int64(e.Length) > int64(len(data)) {
					t.Fatalf("blob %s at %d+%d outside a pack of %d bytes", e.ID.Short(), e.Offset, e.Length, len(data))
				}
			}
		default:
			t.Fatalf("rebuild of one changed pack: %+v (before: %+v)", res, base)
		}
	})
}
