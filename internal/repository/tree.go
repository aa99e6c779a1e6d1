package repository

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/coffer-backup/coffer/internal/fsmeta"
)

// ErrBadTree reports a tree blob that is malformed or hostile.
var ErrBadTree = errors.New("invalid tree")

// ContentItem is one piece of a file: a data blob or a hole of zeros.
type ContentItem struct {
	ID   *ID    `json:"id,omitempty"`
	Size uint64 `json:"size,omitempty"`
	Hole uint64 `json:"hole,omitempty"`
}

// Node is one entry of a directory tree.
type Node struct {
	Name []byte `json:"name"`
	fsmeta.Meta
	Content []ContentItem `json:"content,omitempty"`
	Subtree *ID           `json:"subtree,omitempty"`
}

// Tree is a directory listing, sorted by name bytes.
type Tree struct {
	Nodes []*Node `json:"nodes"`
}

// Sort orders nodes by name.
func (t *Tree) Sort() {
	slices.SortFunc(t.Nodes, func(a, b *Node) int { return bytes.Compare(a.Name, b.Name) })
}

// Encode serialises the tree.
func (t *Tree) Encode() ([]byte, error) { return json.Marshal(t) }

// ValidName reports whether name can be a single path component.
func ValidName(name []byte) bool {
	if len(name) == 0 || len(name) > 4096 || bytes.Equal(name, []byte(".")) || bytes.Equal(name, []byte("..")) {
		return false
	}
	return bytes.IndexByte(name, '/') < 0 && bytes.IndexByte(name, 0) < 0
}

// canonicalTreeBytes returns checkJSONKeys's value check for a tree: the
// members that encoding/json decodes as bytes (a node's name and
// link_target at depth 3, an xattr's name_raw and value at depth 5) must
// be canonical padded base64, which encoding/json alone does not demand
// (it skips newlines and ignores the unused bits of the last character).
func canonicalTreeBytes() func(depth int, key, raw []byte) error {
	var buf []byte
	strict := base64.StdEncoding.Strict()
	return func(depth int, key, raw []byte) error {
		switch {
		case depth == 3 && (string(key) == "name" || string(key) == "link_target"):
		case depth == 5 && (string(key) == "name_raw" || string(key) == "value"):
		default:
			return nil
		}
		if len(raw)%4 != 0 || bytes.IndexByte(raw, '\\') >= 0 {
			return fmt.Errorf("%s is not canonical base64", key)
		}
		if n := strict.DecodedLen(len(raw)); cap(buf) < n {
			buf = make([]byte, n)
		}
		if _, err := strict.Decode(buf[:cap(buf)], raw); err != nil {
			return fmt.Errorf("%s is not canonical base64: %v", key, err)
		}
		return nil
	}
}

// DecodeTree parses a tree blob strictly (docs/security.md §10: unknown
// fields, duplicate keys, keys not spelled exactly, non-canonical base64
// and trailing data are errors) and rejects hostile content: invalid or duplicate names, unknown
// types, directories without subtrees.
func DecodeTree(b []byte) (*Tree, error) {
	if err := checkJSONKeys(b, canonicalTreeBytes()); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTree, err)
	}
	var t Tree
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTree, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the tree", ErrBadTree)
	}
	for i, n := range t.Nodes {
		if n == nil {
			return nil, fmt.Errorf("%w: null node", ErrBadTree)
		}
		if !ValidName(n.Name) {
			return nil, fmt.Errorf("%w: unsafe name %q", ErrBadTree, n.Name)
		}
		if i > 0 && bytes.Compare(t.Nodes[i-1].Name, n.Name) >= 0 {
			return nil, fmt.Errorf("%w: names not sorted or duplicate at %q", ErrBadTree, n.Name)
		}
		switch n.Type {
		case fsmeta.TypeDir:
			if n.Subtree == nil {
				return nil, fmt.Errorf("%w: directory %q has no subtree", ErrBadTree, n.Name)
			}
		case fsmeta.TypeFile, fsmeta.TypeSymlink, fsmeta.TypeFIFO, fsmeta.TypeCharDev, fsmeta.TypeBlockDev, fsmeta.TypeSocket:
			if n.Subtree != nil {
				return nil, fmt.Errorf("%w: %q is not a directory but has a subtree", ErrBadTree, n.Name)
			}
		default:
			return nil, fmt.Errorf("%w: %q has unknown type %q", ErrBadTree, n.Name, n.Type)
		}
		for _, c := range n.Content {
			if (c.ID == nil) == (c.Hole == 0) {
				return nil, fmt.Errorf("%w: %q has a content item that is neither blob nor hole", ErrBadTree, n.Name)
			}
		}
	}
	return &t, nil
}
