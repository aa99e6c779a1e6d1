package repository

import (
	"errors"
	"testing"

	"github.com/coffer-backup/coffer/internal/fsmeta"
)

func TestTreeRejectsHostileNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "../x", "/etc", "a\x00b"} {
		tr := &Tree{Nodes: []*Node{{Name: []byte(name), Meta: fsmeta.Meta{Type: fsmeta.TypeFile}}}}
		b, err := tr.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeTree(b); !errors.Is(err, ErrBadTree) {
			t.Errorf("name %q accepted: %v", name, err)
		}
	}
}

func TestTreeRawNames(t *testing.T) {
	names := [][]byte{{0xff, 0xfe}, []byte("new\nline"), []byte("ünïcode")}
	tr := &Tree{}
	for _, n := range names {
		tr.Nodes = append(tr.Nodes, &Node{Name: n, Meta: fsmeta.Meta{Type: fsmeta.TypeFile}})
	}
	tr.Sort()
	b, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTree(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tr.Nodes {
		if string(got.Nodes[i].Name) != string(tr.Nodes[i].Name) {
			t.Fatalf("name %q came back as %q", tr.Nodes[i].Name, got.Nodes[i].Name)
		}
	}
}

func TestTreeRejectsDuplicatesAndBadTypes(t *testing.T) {
	dup := `{"nodes":[{"name":"YQ==","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0},{"name":"YQ==","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0}]}`
	if _, err := DecodeTree([]byte(dup)); err == nil {
		t.Error("duplicate names accepted")
	}
	dir := `{"nodes":[{"name":"YQ==","type":"dir","mode":0,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0}]}`
	if _, err := DecodeTree([]byte(dir)); err == nil {
		t.Error("directory without subtree accepted")
	}
	bad := `{"nodes":[{"name":"YQ==","type":"door","mode":0,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0}]}`
	if _, err := DecodeTree([]byte(bad)); err == nil {
		t.Error("unknown type accepted")
	}
}

func FuzzDecodeTree(f *testing.F) {
	f.Add([]byte(`{"nodes":[{"name":"YQ==","type":"file","mode":420,"uid":0,"gid":0,"mtime_ns":1,"atime_ns":1,"ctime_ns":1,"content":[{"id":"0000000000000000000000000000000000000000000000000000000000000000","size":3},{"hole":5}]}]}`))
	f.Add([]byte(`{"nodes":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTree(b)
		if err != nil {
			return
		}
		for _, n := range tr.Nodes {
			if !ValidName(n.Name) {
				t.Fatalf("invalid name %q accepted", n.Name)
			}
		}
	})
}

func FuzzDecodeSnapshot(f *testing.F) {
	f.Add([]byte(`{"time":"2026-01-01T00:00:00Z","tree":"0101010101010101010101010101010101010101010101010101010101010101","paths":["/a"],"hostname":"h","uid":0,"gid":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSnapshot(NewRandomID(), b)
		if err == nil && s.Tree.IsNull() {
			t.Fatal("snapshot without tree accepted")
		}
	})
}
