package archiver

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestOnFileReportsStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := newRepo(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "same"), "s")
	write(t, filepath.Join(src, "edit"), "e1")
	write(t, filepath.Join(src, "sub", "deep"), "d")
	var mu sync.Mutex
	got := map[string]FileStatus{}
	onFile := func(p string, s FileStatus) {
		mu.Lock()
		got[p] = s
		mu.Unlock()
	}
	first, err := New(r, Options{OnFile: onFile}).Snapshot(ctx, []string{src})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"same", "edit", "sub/deep"} {
		if s, ok := got[filepath.Join(src, n)]; !ok || s != FileNew {
			t.Errorf("first backup, %s: %v %v", n, s, ok)
		}
	}
	if len(got) != 3 {
		t.Errorf("first backup reported %v", got)
	}
	write(t, filepath.Join(src, "edit"), "e2 longer")
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(filepath.Join(src, "edit"), later, later); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(src, "added"), "a")
	clear(got)
	if _, err := New(r, Options{OnFile: onFile, Parent: first}).Snapshot(ctx, []string{src}); err != nil {
		t.Fatal(err)
	}
	want := map[string]FileStatus{"same": FileUnchanged, "edit": FileChanged, "sub/deep": FileUnchanged, "added": FileNew}
	for n, w := range want {
		if s := got[filepath.Join(src, n)]; s != w {
			t.Errorf("second backup, %s: %s, want %s", n, s, w)
		}
	}
	if FileStatus(9).String() != "unknown" || FileChanged.String() != "modified" {
		t.Error("FileStatus strings")
	}
}
