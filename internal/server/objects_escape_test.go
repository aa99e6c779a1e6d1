package server_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/storage/local"
)

// TestObjectTreeSymlinksRefused replaces directories of the object tree by
// symbolic links to a directory outside the state directory while the
// server runs: a kind directory, a data shard, a repository and a client
// directory. Every request through one fails, the log names the link, and
// nothing is ever written outside.
func TestObjectTreeSymlinksRefused(t *testing.T) {
	var logs syncBuffer
	env := start(t, server.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	alice := newClient(t, env, env.Enroll(t, "alice", nil))
	bob := newClient(t, env, env.Enroll(t, "bob", nil))
	alice.mustStatus("POST", "/v1/repos/r", nil, 201)
	alice.mustStatus("POST", "/v1/repos/r2", nil, 201)
	alice.mustStatus("POST", "/v1/repos/r3", nil, 201)
	// r3 is in use, so the server holds it open, before it is replaced.
	alice.mustStatus("PUT", "/v1/repos/r3/data/ab01", []byte("pack"), 201)
	alice.mustStatus("GET", "/v1/repos/r3/data/ab01", nil, 200)
	alice.mustStatus("PUT", "/v1/repos/r/index/i1", []byte("index"), 201)
	alice.mustStatus("PUT", "/v1/repos/r/data/ab01", []byte("pack"), 201)
	objects := filepath.Join(env.Dir, state.ObjectsDir)

	plant := func(rel string) string {
		t.Helper()
		outside := t.TempDir()
		p := filepath.Join(objects, rel)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, p); err != nil {
			t.Fatal(err)
		}
		return outside
	}
	cases := []struct {
		link string // below objects/
		c    *client
		put  string // a request that would write through the link
		get  string // one that would read through it
	}{
		{"alice/r/index", alice, "/v1/repos/r/index/i2", "/v1/repos/r/index/i1"},
		{"alice/r/data/ab", alice, "/v1/repos/r/data/ab02", "/v1/repos/r/data/ab01"},
		{"alice/r2", alice, "/v1/repos/r2/snapshots/s1", "/v1/repos/r2/snapshots/"},
		{"bob", bob, "/v1/repos/b", "/v1/repos/b/index/"},
		{"alice/r3", alice, "/v1/repos/r3/index/i2", "/v1/repos/r3/data/ab01"},
	}
	for _, c := range cases {
		outside := plant(c.link)
		// Plant content where a followed link would find it.
		if err := os.WriteFile(filepath.Join(outside, "i1"), []byte("planted"), 0o600); err != nil {
			t.Fatal(err)
		}
		method := "PUT"
		if !strings.Contains(strings.TrimPrefix(c.put, "/v1/repos/"), "/") {
			method = "POST"
		}
		if r := c.c.do(method, c.put, []byte("x"), nil); r.err != nil || r.status < 400 {
			t.Errorf("%s %s through linked %s: %d %v, want a refusal", method, c.put, c.link, r.status, r.err)
		}
		if r := c.c.do("GET", c.get, nil, nil); r.err != nil || r.status < 400 || bytes.Contains(r.body, []byte("planted")) {
			t.Errorf("GET %s through linked %s: %d %q %v, want a refusal", c.get, c.link, r.status, r.body, r.err)
		}
		ents, err := os.ReadDir(outside)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 {
			t.Errorf("linked %s: the server wrote outside its state directory: %v", c.link, ents)
		}
		if !strings.Contains(logs.String(), filepath.Join(objects, c.link)) || !strings.Contains(logs.String(), local.ErrSymlink.Error()) {
			t.Errorf("linked %s: the log does not name the link:\n%s", c.link, logs.String())
		}
	}
	// A listing over a linked shard fails rather than skip it; the
	// untouched parts of the tree still work.
	if r := alice.do("GET", "/v1/repos/r/data/", nil, nil); r.status != 500 {
		t.Errorf("listing data with a linked shard: %d", r.status)
	}
	alice.mustStatus("GET", "/v1/repos/r/snapshots/", nil, 200)
}
