package repository

import (
	"bytes"
	"errors"
	"strings"
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

// TestTreeDecodingIsStrict: a tree is spelled one way only (docs/security.md
// §10): keys exactly as written, once each, nothing after the tree.
func TestTreeDecodingIsStrict(t *testing.T) {
	t.Parallel()
	const node = `"type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0`
	good := `{"nodes":[{"name":"YQ==",` + node + `,"xattrs":[{"name":"user.a","value":"dg=="}]}]}`
	if _, err := DecodeTree([]byte(good)); err != nil {
		t.Fatalf("well-formed tree refused: %v", err)
	}
	for what, b := range map[string]string{
		"Name for name":        `{"nodes":[{"Name":"YQ==",` + node + `}]}`,
		"NODES for nodes":      `{"NODES":[]}`,
		"folded s in size":     `{"nodes":[{"name":"YQ==",` + node + `,"ſize":1}]}`,
		"escaped key":          `{"nodes":[{"n\u0061me":"YQ==",` + node + `}]}`,
		"duplicate key":        `{"nodes":[{"name":"YQ==","name":"Yg==",` + node + `}]}`,
		"duplicate nodes":      `{"nodes":[],"nodes":[]}`,
		"trailing object":      good + `{"nodes":[]}`,
		"trailing garbage":     good + `x`,
		"unknown xattr field":  `{"nodes":[{"name":"YQ==",` + node + `,"xattrs":[{"name":"user.a","value":"dg==","extra":1}]}]}`,
		"Value in xattr":       `{"nodes":[{"name":"YQ==",` + node + `,"xattrs":[{"name":"user.a","Value":"dg=="}]}]}`,
		"ID for id in content": `{"nodes":[{"name":"YQ==",` + node + `,"content":[{"ID":"0000000000000000000000000000000000000000000000000000000000000000","size":1}]}]}`,
		"duplicate in content": `{"nodes":[{"name":"YQ==",` + node + `,"content":[{"hole":1,"hole":2}]}]}`,
		"name with spare bits": `{"nodes":[{"name":"YR==",` + node + `}]}`,
		"name with a newline":  `{"nodes":[{"name":"Y\nQ==",` + node + `}]}`,
		"name unpadded":        `{"nodes":[{"name":"YQ",` + node + `}]}`,
		"name escaped":         `{"nodes":[{"name":"\u0059Q==",` + node + `}]}`,
		"link target bits":     `{"nodes":[{"name":"YQ==",` + strings.Replace(node, "file", "symlink", 1) + `,"link_target":"YR=="}]}`,
		"xattr value bits":     `{"nodes":[{"name":"YQ==",` + node + `,"xattrs":[{"name":"user.a","value":"dh=="}]}]}`,
		"xattr name_raw bits":  `{"nodes":[{"name":"YQ==",` + node + `,"xattrs":[{"name_raw":"/x==","value":"dg=="}]}]}`,
	} {
		if _, err := DecodeTree([]byte(b)); !errors.Is(err, ErrBadTree) {
			t.Errorf("%s: accepted (%v)", what, err)
		}
	}
	// Structure inside a string value is not structure.
	tricky := `{"nodes":[{"name":"YQ==",` + node + `,"user":"x\\\",\"name\":{[,","group":"\\"}]}`
	if tr, err := DecodeTree([]byte(tricky)); err != nil || tr.Nodes[0].User != `x\","name":{[,` || tr.Nodes[0].Group != `\` {
		t.Errorf("tree with quotes and brackets in a value: %v", err)
	}
	// Whitespace after the tree is not data.
	if _, err := DecodeTree([]byte(good + " \n")); err != nil {
		t.Errorf("trailing whitespace refused: %v", err)
	}
}

func FuzzDecodeTree(f *testing.F) {
	f.Add([]byte(`{"nodes":[{"name":"YQ==","type":"file","mode":420,"uid":0,"gid":0,"mtime_ns":1,"atime_ns":1,"ctime_ns":1,"content":[{"id":"0000000000000000000000000000000000000000000000000000000000000000","size":3},{"hole":5}]}]}`))
	f.Add([]byte(`{"nodes":[]}`))
	f.Add([]byte(`{"nodes":[{"Name":"YQ==","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0}]}`))
	f.Add([]byte(`{"nodes":[]}{"nodes":[]}`))
	f.Add([]byte(`{"nodes":[{"name":"YQ==","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0,"xattrs":[{"name":"user.a","value":"dg=="}]}]}`))
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
		// What decodes is one tree, which encodes and decodes back to itself.
		enc, err := tr.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeTree(enc)
		if err != nil {
			t.Fatalf("re-encoded tree refused: %v\n%s", err, enc)
		}
		if enc2, _ := again.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("tree changed on a round trip:\n%s\n%s", enc, enc2)
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
