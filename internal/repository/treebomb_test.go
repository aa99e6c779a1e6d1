package repository

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/internal/fsmeta"
)

// saveChain stores a chain of depth directories, each named name and
// holding the next, and returns the top tree.
func saveChain(t testing.TB, r *Repository, depth int, name []byte) ID {
	t.Helper()
	ctx := context.Background()
	id, err := r.SaveTree(ctx, &Tree{Nodes: []*Node{}})
	if err != nil {
		t.Fatal(err)
	}
	for range depth {
		sub := id
		id, err = r.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: name, Meta: fsmeta.Meta{Type: fsmeta.TypeDir, Mode: 0o755}, Subtree: &sub}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// saveBomb stores a tree of levels levels, each referencing the next twice
// (as directories "a" and "b"), and returns the top: 2^levels paths from
// levels+1 distinct trees.
func saveBomb(t testing.TB, r *Repository, levels int) ID {
	t.Helper()
	ctx := context.Background()
	id, err := r.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: []byte("f"), Meta: fsmeta.Meta{Type: fsmeta.TypeFile, Mode: 0o644}}}})
	if err != nil {
		t.Fatal(err)
	}
	for range levels {
		sub := id
		dir := fsmeta.Meta{Type: fsmeta.TypeDir, Mode: 0o755}
		id, err = r.SaveTree(ctx, &Tree{Nodes: []*Node{{Name: []byte("a"), Meta: dir, Subtree: &sub}, {Name: []byte("b"), Meta: dir, Subtree: &sub}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// TestWalkRefusesOverlongPaths: a 1,500-deep chain of 4 KiB names (issue
// 10, item 8) stops the walk at the first path over MaxPathLength, before
// the walk holds gigabytes of path prefixes.
func TestWalkRefusesOverlongPaths(t *testing.T) {
	t.Parallel()
	r := testRepo(t)
	r.StartWriting(context.Background())
	top := saveChain(t, r, 1500, bytes.Repeat([]byte("n"), 4096))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	longest := 0
	err := r.Walk(context.Background(), top, func(p string, _ *Node) error {
		longest = max(longest, len(p))
		if len(p) > 64<<10 {
			return errors.New("the walk went on past 64 KiB paths")
		}
		return nil
	})
	if !errors.Is(err, ErrPathTooLong) || longest > MaxPathLength {
		t.Fatalf("walk of a 6 MB deep path: longest %d, err %v", longest, err)
	}
	// A chain within the limit walks fine: 2047 levels of one byte.
	r.StartWriting(context.Background())
	short := saveChain(t, r, MaxPathLength/2-1, []byte("d"))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := r.Walk(context.Background(), short, func(string, *Node) error { n++; return nil }); err != nil || n != MaxPathLength/2-1 {
		t.Fatalf("legitimate deep chain: %d nodes, %v", n, err)
	}
}

// TestWalkBoundsRepeatedSubtrees: a 40-level tree referencing the next
// level twice would expand to 2^40 paths; the walk stops with ErrTreeBomb
// after a bounded number of nodes. Repeats within the budget (identical
// directories sharing a tree) walk fine.
func TestWalkBoundsRepeatedSubtrees(t *testing.T) {
	t.Parallel()
	r := testRepo(t)
	r.StartWriting(context.Background())
	bomb := saveBomb(t, r, 40)
	small := saveBomb(t, r, 10) // 2^10 paths from 11 trees: 3k nodes, allowed
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := r.Walk(context.Background(), bomb, func(string, *Node) error {
		n++
		if n > 10*walkFloor {
			return errors.New("the walk went on past ten times the floor")
		}
		return nil
	})
	if !errors.Is(err, ErrTreeBomb) {
		t.Fatalf("40-level bomb: %d nodes, err %v", n, err)
	}
	n = 0
	if err := r.Walk(context.Background(), small, func(string, *Node) error { n++; return nil }); err != nil || n != 3*1024-2 {
		t.Fatalf("10-level sharing: %d nodes, err %v", n, err)
	}
}
