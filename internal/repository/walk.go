package repository

import (
	"context"
	"errors"
	"fmt"
)

// ErrSkipDir, returned by a WalkFunc for a directory, skips its contents.
var ErrSkipDir = errors.New("skip this directory")

// WalkFunc is called for every node; path is slash-separated from the
// snapshot root, starting with "/".
type WalkFunc func(path string, n *Node) error

// Walk visits the tree depth-first in name order, streaming: it holds only
// the trees on the path to the current node. A path longer than
// MaxPathLength stops it with ErrPathTooLong, and subtrees repeated beyond
// what WalkBudget allows with ErrTreeBomb.
func (r *Repository) Walk(ctx context.Context, tree ID, fn WalkFunc) error {
	return r.walk(ctx, "", tree, fn, &WalkBudget{})
}

func (r *Repository) walk(ctx context.Context, prefix string, id ID, fn WalkFunc, b *WalkBudget) error {
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return err
	}
	if err := b.Visit(id, len(t.Nodes)); err != nil {
		return err
	}
	for _, n := range t.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := prefix + "/" + string(n.Name)
		if err := CheckPath(p); err != nil {
			return fmt.Errorf("tree %s: %w", id.Short(), err)
		}
		err := fn(p, n)
		if errors.Is(err, ErrSkipDir) {
			continue
		}
		if err != nil {
			return err
		}
		if n.Subtree != nil {
			if err := r.walk(ctx, p, *n.Subtree, fn, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// FindNode returns the node at path ("/a/b") in a tree, or nil.
func (r *Repository) FindNode(ctx context.Context, tree ID, path string) (*Node, error) {
	var found *Node
	err := r.Walk(ctx, tree, func(p string, n *Node) error {
		if p == path {
			found = n
			return errStop
		}
		if len(path) > len(p) && path[:len(p)] == p && path[len(p)] == '/' {
			return nil
		}
		return ErrSkipDir
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return found, err
}

var errStop = errors.New("stop")
