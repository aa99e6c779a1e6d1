package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/servertest"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/coffer-backup/coffer/internal/storage/storagetest"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
	"github.com/coffer-backup/coffer/internal/wire"
)

type client struct {
	t    *testing.T
	env  *servertest.Env
	id   *servertest.Identity
	http *http.Client
}

func newClient(t *testing.T, env *servertest.Env, id *servertest.Identity) *client {
	protos := new(http.Protocols)
	protos.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: id.TLS.Clone(), ForceAttemptHTTP2: true, Protocols: protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, env: env, id: id, http: &http.Client{Transport: tr}}
}

type response struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (c *client) req(ctx context.Context, method, path string, body []byte, hdr map[string]string) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequestWithContext(ctx, method, "https://"+c.env.Addr+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	resp, err := c.http.Do(r)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

func (c *client) do(method, path string, body []byte, hdr map[string]string) response {
	c.t.Helper()
	return c.req(context.Background(), method, path, body, hdr)
}

func (c *client) mustStatus(method, path string, body []byte, want int) response {
	c.t.Helper()
	r := c.do(method, path, body, nil)
	if r.err != nil || r.status != want {
		c.t.Fatalf("%s %s: %d %q %v; want %d", method, path, r.status, r.body, r.err, want)
	}
	return r
}

func start(t *testing.T, cfg server.Config) *servertest.Env {
	return servertest.Start(t, servertest.Options{Config: cfg})
}

func TestBasicObjectLifecycle(t *testing.T) {
	env := start(t, server.Config{})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("HEAD", "/v1/repos/main", nil, 404)
	c.mustStatus("PUT", "/v1/repos/main/data/ab", []byte("x"), 404)
	c.mustStatus("POST", "/v1/repos/main", nil, 201)
	c.mustStatus("POST", "/v1/repos/main", nil, 409)
	c.mustStatus("HEAD", "/v1/repos/main", nil, 204)

	data := bytes.Repeat([]byte("0123456789"), 300000) // 3 MB: several segments
	r := c.mustStatus("PUT", "/v1/repos/main/data/ab", data, 201)
	if _, err := time.Parse(time.RFC3339Nano, r.header.Get(wire.HeaderReceived)); err != nil {
		t.Errorf("no received stamp: %v", err)
	}
	r = c.mustStatus("GET", "/v1/repos/main/data/ab", nil, 200)
	if !bytes.Equal(r.body, data) {
		t.Fatal("GET returned other content")
	}
	sum := sha256.Sum256(data)
	if r.header.Get(wire.HeaderContentSHA256) != hex.EncodeToString(sum[:]) {
		t.Errorf("digest header %q", r.header.Get(wire.HeaderContentSHA256))
	}
	r = c.mustStatus("HEAD", "/v1/repos/main/data/ab", nil, 200)
	if r.header.Get("Content-Length") != fmt.Sprint(len(data)) {
		t.Errorf("HEAD Content-Length %q", r.header.Get("Content-Length"))
	}
	r = c.do("GET", "/v1/repos/main/data/ab", nil, map[string]string{"Range": "bytes=1048570-1048580"})
	if r.status != 206 || !bytes.Equal(r.body, data[1048570:1048581]) || r.header.Get("Content-Range") != fmt.Sprintf("bytes 1048570-1048580/%d", len(data)) {
		t.Errorf("range read: %d %q %q", r.status, r.body, r.header.Get("Content-Range"))
	}
	r = c.do("GET", "/v1/repos/main/data/ab", nil, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(data))})
	if r.status != 206 || len(r.body) != 0 {
		t.Errorf("empty tail: %d %d bytes", r.status, len(r.body))
	}
	for _, bad := range []string{fmt.Sprintf("bytes=0-%d", len(data)), "bytes=-5", "bytes=0-1,3-4", "bytes=5-1"} {
		if r := c.do("GET", "/v1/repos/main/data/ab", nil, map[string]string{"Range": bad}); r.status != 416 {
			t.Errorf("Range %q: %d", bad, r.status)
		}
	}
	c.mustStatus("GET", "/v1/repos/main/data/cd", nil, 404)
	c.mustStatus("HEAD", "/v1/repos/main/data/cd", nil, 404)

	r = c.mustStatus("GET", "/v1/repos/main/data/", nil, 200)
	var names []string
	if err := wire.DecodeList(bytes.NewReader(r.body), "data", func(e wire.Entry) error {
		names = append(names, fmt.Sprintf("%s=%d", e.Name, e.Size))
		return nil
	}); err != nil || len(names) != 1 || names[0] != fmt.Sprintf("ab=%d", len(data)) {
		t.Errorf("listing %v, %v", names, err)
	}
	r = c.do("GET", "/v1/repos/nope/data/", nil, nil)
	if r.status != 404 || r.header.Get(wire.HeaderError) != string(wire.CodeNoRepository) {
		t.Errorf("listing of a missing repository: %d %s", r.status, r.header.Get(wire.HeaderError))
	}
	// The request was recorded as the client's last contact.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cl, err := env.DB.Client(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !cl.LastContact.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("last contact never recorded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Snapshot objects carry the server's arrival time, which the client cannot set.
func TestReceivedStamp(t *testing.T) {
	env := start(t, server.Config{})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	env.Clock.Advance(-time.Minute) // the server's clock, not the client's claim, is what counts
	before := env.Clock.Now()
	r := c.do("PUT", "/v1/repos/r/snapshots/s1", []byte("snap"), map[string]string{wire.HeaderReceived: "1999-01-01T00:00:00Z"})
	if r.status != 201 {
		t.Fatalf("PUT: %d", r.status)
	}
	got, err := time.Parse(time.RFC3339Nano, c.mustStatus("HEAD", "/v1/repos/r/snapshots/s1", nil, 200).header.Get(wire.HeaderReceived))
	if err != nil || got.Before(before.Add(-time.Second)) || got.After(before.Add(time.Minute)) {
		t.Fatalf("received %v, %v; want about %v", got, err, before)
	}
	r = c.mustStatus("GET", "/v1/repos/r/snapshots/", nil, 200)
	n := 0
	if err := wire.DecodeList(bytes.NewReader(r.body), "snapshots", func(e wire.Entry) error {
		n++
		if e.Received == nil || !e.Received.Equal(got) {
			t.Errorf("listed received %v, want %v", e.Received, got)
		}
		return nil
	}); err != nil || n != 1 {
		t.Fatalf("listing: %d, %v", n, err)
	}
}

// No client can reach another's objects: the namespace comes from the
// certificate, never from the request.
func TestIsolation(t *testing.T) {
	env := start(t, server.Config{})
	a := newClient(t, env, env.Enroll(t, "alice", func(c *serverdb.Client) { c.AllowDelete = true }))
	b := newClient(t, env, env.Enroll(t, "bob", func(c *serverdb.Client) { c.AllowDelete = true }))
	a.mustStatus("POST", "/v1/repos/main", nil, 201)
	a.mustStatus("PUT", "/v1/repos/main/data/secret", []byte("alice's data"), 201)
	a.mustStatus("PUT", "/v1/repos/main/config/config", []byte("alice's config"), 201)

	// Bob sees no repository "main" at all.
	b.mustStatus("HEAD", "/v1/repos/main", nil, 404)
	b.mustStatus("GET", "/v1/repos/main/data/secret", nil, 404)
	b.mustStatus("HEAD", "/v1/repos/main/data/secret", nil, 404)
	b.mustStatus("GET", "/v1/repos/main/data/", nil, 404)
	b.mustStatus("DELETE", "/v1/repos/main/data/secret", nil, 404)
	b.mustStatus("PUT", "/v1/repos/main/data/secret", []byte("bob's"), 404)
	// Bob's own "main" is a different namespace.
	b.mustStatus("POST", "/v1/repos/main", nil, 201)
	b.mustStatus("GET", "/v1/repos/main/data/secret", nil, 404)
	b.mustStatus("PUT", "/v1/repos/main/data/secret", []byte("bob's"), 201)
	b.mustStatus("DELETE", "/v1/repos/main/data/secret", nil, 204)
	r := b.mustStatus("GET", "/v1/repos/main/config/", nil, 200)
	if bytes.Contains(r.body, []byte("config")) && !bytes.Contains(r.body, []byte(`"count":0`)) {
		t.Errorf("bob lists alice's config: %s", r.body)
	}
	if r := a.mustStatus("GET", "/v1/repos/main/data/secret", nil, 200); string(r.body) != "alice's data" {
		t.Errorf("alice's object changed: %q", r.body)
	}
	// Traversal attempts that would name alice's files from bob's namespace.
	for _, p := range []string{
		"/v1/repos/main/data/..%2f..%2falice%2fmain%2fdata%2fsecret",
		"/v1/repos/%2e%2e/alice/main/data/secret",
		"/v1/repos/..%2falice%2fmain/data/secret",
	} {
		if r := b.do("GET", p, nil, nil); r.status != 400 {
			t.Errorf("GET %s: %d", p, r.status)
		}
	}
}

// rawRequest sends one HTTP/1.1 request line as given, bypassing every
// client-side URL normalisation, and returns the status.
func rawRequest(t *testing.T, env *servertest.Env, id *servertest.Identity, head string, body []byte) int {
	t.Helper()
	conf := id.TLS.Clone()
	conf.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", env.Addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, head+"\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%q: %v", head, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTraversalRefused(t *testing.T) {
	env := start(t, server.Config{})
	id := env.Enroll(t, "alice", nil)
	c := newClient(t, env, id)
	c.mustStatus("POST", "/v1/repos/main", nil, 201)
	c.mustStatus("PUT", "/v1/repos/main/config/config", []byte("cfg"), 201)
	for _, target := range []string{
		"/v1/repos/main/data/%2e%2e",
		"/v1/repos/main/data/%2E%2E%2Fconfig",
		"/v1/repos/main/data/../config/config",
		"/v1/repos/main/data/..%2fconfig%2fconfig",
		"/v1/repos/%2e%2e/main/config/config",
		"/v1/repos/main/config/config%00",
		"/v1/repos/main/data/a%2fb",
		"/v1/repos/main/data/a\\b",
		"/v1/repos/main/./config/config",
		"/v1/repos/main//config/config",
		"/v1/repos/main/data/" + strings.Repeat("a", 200),
		"/v1/repos/" + strings.Repeat("m", 65) + "/data/ab",
		"/v1/repos/main/DATA/ab",
		"//etc/passwd",
		"http://127.0.0.1/v1/repos/main/config/config",
		"/v1/repos/main/config/config?x=1",
	} {
		for _, method := range []string{"GET", "PUT", "DELETE"} {
			head := method + " " + target + " HTTP/1.1"
			body := []byte(nil)
			if method == "PUT" {
				head += "\r\nContent-Length: 4"
				body = []byte("evil")
			}
			status := rawRequest(t, env, id, head, body)
			if status < 400 || status >= 500 {
				t.Errorf("%s %q: %d, want a 4xx refusal", method, target, status)
			}
		}
	}
	if r := c.mustStatus("GET", "/v1/repos/main/config/config", nil, 200); string(r.body) != "cfg" {
		t.Errorf("config changed: %q", r.body)
	}
	// Nothing but the repository and its config exists on disk.
	var files []string
	_ = filepath.WalkDir(filepath.Join(env.Dir, state.ObjectsDir), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 1 || !strings.HasSuffix(files[0], filepath.Join("alice", "main", "config")) {
		t.Errorf("files on disk: %v", files)
	}
}

func TestAppendOnly(t *testing.T) {
	env := start(t, server.Config{})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	c.mustStatus("PUT", "/v1/repos/r/data/ab", []byte("original"), 201)
	c.mustStatus("PUT", "/v1/repos/r/locks/l1", []byte("lock"), 201)
	// No overwrite, whatever the headers say.
	c.mustStatus("PUT", "/v1/repos/r/data/ab", []byte("replaced"), 409)
	if r := c.do("PUT", "/v1/repos/r/data/ab", []byte("replaced"), map[string]string{"If-Match": "*", "Overwrite": "T"}); r.status != 409 {
		t.Errorf("PUT with overwrite headers: %d", r.status)
	}
	for _, m := range []string{"MOVE", "COPY", "PATCH", "POST"} {
		if r := c.do(m, "/v1/repos/r/data/ab", []byte("x"), map[string]string{"Destination": "/v1/repos/r/data/cd"}); r.status != 405 {
			t.Errorf("%s: %d", m, r.status)
		}
	}
	c.mustStatus("DELETE", "/v1/repos/r/data/ab", nil, 403)
	c.mustStatus("DELETE", "/v1/repos/r/snapshots/x", nil, 403)
	c.mustStatus("DELETE", "/v1/repos/r/config/config", nil, 403)
	if r := c.mustStatus("GET", "/v1/repos/r/data/ab", nil, 200); string(r.body) != "original" {
		t.Fatalf("object changed: %q", r.body)
	}
	// Locks may go: every backup removes its own.
	c.mustStatus("DELETE", "/v1/repos/r/locks/l1", nil, 204)
	c.mustStatus("DELETE", "/v1/repos/r/locks/l1", nil, 404)

	events, err := env.DB.Events(context.Background(), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events {
		if strings.HasPrefix(e.Client, "user:") {
			continue // server init's first administrator
		}
		got = append(got, e.Action+" "+e.Object)
	}
	want := []string{"create-repo ", "delete-refused data/ab", "delete-refused snapshots/x", "delete-refused config", "delete locks/l1"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("audit log %q, want %q", got, want)
	}

	// The admin allows deletion: it takes effect within the refresh interval.
	if err := env.DB.SetAllowDelete(context.Background(), "alice", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.do("DELETE", "/v1/repos/r/data/ab", nil, nil).status != 204 {
		if time.Now().After(deadline) {
			t.Fatal("allow-delete did not take effect")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.mustStatus("GET", "/v1/repos/r/data/ab", nil, 404)
	events, _ = env.DB.Events(context.Background(), time.Time{}, 0)
	if last := events[len(events)-1]; last.Action != serverdb.ActionDelete || last.Object != "data/ab" || last.Client != "alice" || last.Repo != "r" {
		t.Errorf("last event %+v", last)
	}
}

func TestUploadLimits(t *testing.T) {
	env := start(t, server.Config{MaxObjectSize: 1 << 20})
	id := env.Enroll(t, "alice", func(c *serverdb.Client) { c.QuotaBytes = 3 << 20 })
	c := newClient(t, env, id)
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	c.mustStatus("PUT", "/v1/repos/r/data/big", make([]byte, 1<<20+1), 413)
	// A body without a length is refused; so is a digest that does not match.
	if s := rawRequest(t, env, id, "PUT /v1/repos/r/data/chunked HTTP/1.1\r\nTransfer-Encoding: chunked", []byte("3\r\nabc\r\n0\r\n\r\n")); s != 411 {
		t.Errorf("chunked upload: %d", s)
	}
	sum := sha256.Sum256([]byte("other"))
	if r := c.do("PUT", "/v1/repos/r/data/dg", []byte("data"), map[string]string{wire.HeaderContentSHA256: hex.EncodeToString(sum[:])}); r.status != 400 || r.header.Get(wire.HeaderError) != string(wire.CodeDigest) {
		t.Errorf("wrong digest: %d %s", r.status, r.header.Get(wire.HeaderError))
	}
	if r := c.do("PUT", "/v1/repos/r/data/dg", []byte("data"), map[string]string{wire.HeaderContentSHA256: "zz"}); r.status != 400 {
		t.Errorf("malformed digest: %d", r.status)
	}
	c.mustStatus("HEAD", "/v1/repos/r/data/dg", nil, 404)
	assertNoTemp(t, env)
	c.mustStatus("PUT", "/v1/repos/r/data/a1", make([]byte, 1<<20), 201)
	c.mustStatus("PUT", "/v1/repos/r/data/a2", make([]byte, 1<<20), 201)
	// Removing frees quota (locks are removable without allow-delete).
	c.mustStatus("PUT", "/v1/repos/r/locks/l", nil, 201)
	c.mustStatus("DELETE", "/v1/repos/r/locks/l", nil, 204)
	// Left: the quota less two objects and the repository's charge; fill
	// it but for one minimum charge, which an empty object then takes.
	left := 3<<20 - 2<<20 - server.RepoCharge
	c.mustStatus("PUT", "/v1/repos/r/data/a3", make([]byte, left-server.MinObjectCharge), 201)
	c.mustStatus("PUT", "/v1/repos/r/data/a4", nil, 201)
	r := c.mustStatus("PUT", "/v1/repos/r/data/a5", nil, 507)
	if r.header.Get(wire.HeaderError) != string(wire.CodeQuota) {
		t.Errorf("quota code %q", r.header.Get(wire.HeaderError))
	}

	// A quota for another client is unaffected.
	other := newClient(t, env, env.Enroll(t, "bob", nil))
	other.mustStatus("POST", "/v1/repos/r", nil, 201)
	other.mustStatus("PUT", "/v1/repos/r/data/a4", make([]byte, 1<<20), 201)
}

// tempFiles lists the scratch directory and the unpublished uploads in the
// object tree.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, state.TempDir))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	_ = filepath.WalkDir(filepath.Join(dir, state.ObjectsDir), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), local.TempPrefix) {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func assertNoTemp(t *testing.T, env *servertest.Env) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries := tempFiles(t, env.Dir)
		if len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporary files left: %v", entries)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A client that sends less than it declared leaves nothing behind.
func TestTruncatedUpload(t *testing.T) {
	env := start(t, server.Config{})
	id := env.Enroll(t, "alice", nil)
	c := newClient(t, env, id)
	c.mustStatus("POST", "/v1/repos/r", nil, 201)

	conf := id.TLS.Clone()
	conf.NextProtos = []string{"http/1.1"}
	conn, err := tls.Dial("tcp", env.Addr, conf)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PUT /v1/repos/r/data/cut HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 3<<20)
	if _, err := conn.Write(make([]byte, (3<<20)/2)); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	// HTTP/2: a stream reset mid-body.
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "PUT", "https://"+env.Addr+"/v1/repos/r/data/cut2", pr)
	req.ContentLength = 3 << 20
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := c.http.Do(req)
		if err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := pw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	cancel()
	_ = pw.CloseWithError(errors.New("client gave up"))
	<-done

	assertNoTemp(t, env)
	c.mustStatus("HEAD", "/v1/repos/r/data/cut", nil, 404)
	c.mustStatus("HEAD", "/v1/repos/r/data/cut2", nil, 404)
	if r := c.mustStatus("GET", "/v1/repos/r/data/", nil, 200); !bytes.Contains(r.body, []byte(`"count":0`)) && !bytes.Equal(bytes.TrimSpace(r.body), []byte(`{"end":true}`)) {
		t.Errorf("listing after cut uploads: %s", r.body)
	}
}

// A server killed mid-upload leaves a temporary file, never an object; the
// next start removes it.
func TestRestartCleansInterruptedUploads(t *testing.T) {
	dir := t.TempDir()
	env := servertest.Start(t, servertest.Options{Dir: dir})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	c.mustStatus("PUT", "/v1/repos/r/data/kept", []byte("kept"), 201)
	env.Stop(t)
	for _, leftover := range []string{
		filepath.Join(dir, state.TempDir, "up-123456"),
		filepath.Join(dir, state.ObjectsDir, "alice", "r", "data", "ke", local.TempPrefix+"123456"),
	} {
		if err := os.WriteFile(leftover, []byte("half an upload"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env2 := servertest.Start(t, servertest.Options{Dir: dir})
	if left := tempFiles(t, dir); len(left) != 0 {
		t.Errorf("leftover uploads survived a restart: %v", left)
	}
	c2 := newClient(t, env2, env2.Enroll(t, "alice", nil))
	if r := c2.mustStatus("GET", "/v1/repos/r/data/kept", nil, 200); string(r.body) != "kept" {
		t.Errorf("object after restart: %q", r.body)
	}
}

func TestAtRestEncryptionAndScrub(t *testing.T) {
	env := start(t, server.Config{})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	plain := bytes.Repeat([]byte("VISIBLE-PLAINTEXT "), 200000)
	c.mustStatus("PUT", "/v1/repos/r/data/ab", plain, 201)
	c.mustStatus("PUT", "/v1/repos/r/index/ix", []byte("small VISIBLE-PLAINTEXT"), 201)

	var files []string
	_ = filepath.WalkDir(env.Dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("VISIBLE-PLAINTEXT")) {
			t.Errorf("%s holds the plaintext", f)
		}
	}
	rep, err := env.Server.Scrub(context.Background())
	if err != nil || rep.Objects != 2 || len(rep.Damaged) != 0 || rep.Bytes != int64(len(plain)+23) {
		t.Fatalf("clean scrub: %+v, %v", rep, err)
	}

	// One flipped bit in the middle of the pack.
	path := filepath.Join(env.Dir, state.ObjectsDir, "alice", "r", "data", "ab", "ab")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	off := int64(2 << 20)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// The damaged segment is refused; an undamaged range still reads.
	r := c.do("GET", "/v1/repos/r/data/ab", nil, map[string]string{"Range": "bytes=2000000-2000010"})
	if r.err != nil || r.status != 500 || r.header.Get(wire.HeaderError) != string(wire.CodeCorrupt) {
		t.Errorf("range over damage: %d %v", r.status, r.err)
	}
	if r := c.do("GET", "/v1/repos/r/data/ab", nil, map[string]string{"Range": "bytes=0-99"}); r.status != 206 || !bytes.Equal(r.body, plain[:100]) {
		t.Errorf("undamaged range: %d", r.status)
	}
	// A whole read is cut, never delivered complete.
	r = c.do("GET", "/v1/repos/r/data/ab", nil, nil)
	if r.err == nil && r.status == 200 && bytes.Equal(r.body, plain) {
		t.Error("damaged object delivered whole")
	}
	if r.err == nil && r.status == 200 {
		t.Errorf("damaged object: status 200 with %d bytes and no error", len(r.body))
	}

	// A stray file, and scrub again, offline this time.
	if err := os.WriteFile(filepath.Join(env.Dir, state.ObjectsDir, "alice", "r", "data", "junk"), []byte("?"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = server.ScrubDir(context.Background(), env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Objects != 1 || len(rep.Damaged) != 1 || rep.Damaged[0].Object != "data/ab" || rep.Damaged[0].Client != "alice" ||
		rep.Damaged[0].Path != filepath.Join(state.ObjectsDir, "alice", "r", "data", "ab", "ab") {
		t.Errorf("scrub after damage: %+v", rep)
	}
	if len(rep.Stray) != 1 || !strings.HasSuffix(rep.Stray[0], "junk") {
		t.Errorf("stray files: %v", rep.Stray)
	}
}

// Revoking a client ends its access on a connection that is already open.
func TestRevocationOnOpenConnection(t *testing.T) {
	env := start(t, server.Config{})
	c := newClient(t, env, env.Enroll(t, "mallory", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	if r := c.req(ctx, "HEAD", "/v1/repos/r", nil, nil); r.status != 204 {
		t.Fatalf("before revocation: %d", r.status)
	}
	if err := env.DB.RevokeClient(context.Background(), "mallory", time.Now(), "test"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		r := c.req(ctx, "HEAD", "/v1/repos/r", nil, nil)
		if r.status == 401 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("revocation not effective after 5s: %d %v", r.status, r.err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, ru := range reused[1:] {
		if !ru {
			t.Fatalf("request %d used a new connection; the test must prove an open one is cut", i+1)
		}
	}
	// New connections are refused in the handshake.
	tr := &http.Transport{TLSClientConfig: c.id.TLS.Clone(), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("HEAD", "https://"+env.Addr+"/v1/repos/r", nil)
	if resp, err := tr.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Errorf("new connection of a revoked client: %d", resp.StatusCode)
	}
	// Both refusals are on record.
	time.Sleep(50 * time.Millisecond)
	refs, err := env.DB.Refusals(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range refs {
		kinds[r.Kind] = true
	}
	if !kinds[tlspolicy.KindRejected] {
		t.Errorf("refusals %+v lack a rejected request", refs)
	}
}

func TestCertificateChecks(t *testing.T) {
	env := start(t, server.Config{})
	ctx := context.Background()

	// A certificate from another CA fails the handshake.
	other, err := pki.NewCA("rogue", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rogue := env.Issue(t, other, "alice", time.Hour)
	if r := newClient(t, env, rogue).do("HEAD", "/v1/repos/r", nil, nil); r.err == nil {
		t.Errorf("certificate of another CA: %d", r.status)
	}
	// A valid certificate for a client that was never enrolled.
	stranger := env.Issue(t, env.CA, "stranger", time.Hour)
	if r := newClient(t, env, stranger).do("HEAD", "/v1/repos/r", nil, nil); r.err == nil && r.status != 401 {
		t.Errorf("unenrolled client: %d", r.status)
	}
	// An enrolled client whose certificate has expired by the server's clock.
	alice := newClient(t, env, env.Enroll(t, "alice", nil))
	alice.mustStatus("POST", "/v1/repos/r", nil, 201)
	env.Clock.Advance(2 * time.Hour)
	if r := alice.do("HEAD", "/v1/repos/r", nil, nil); r.err == nil && r.status != 401 {
		t.Errorf("expired certificate: %d", r.status)
	}
	env.Clock.Advance(-2 * time.Hour)

	// Straight into the handler without TLS: 401 and a refusal record.
	rec := httptest.NewRecorder()
	env.Server.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/repos/r/data/", nil))
	if rec.Code != 401 {
		t.Errorf("request without TLS: %d", rec.Code)
	}
	refs, err := env.DB.Refusals(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range refs {
		found = found || r.Kind == tlspolicy.KindNoCertificate && strings.Contains(r.Reason, "request")
	}
	if !found {
		t.Errorf("no refusal recorded for a request without certificate: %+v", refs)
	}
}

func TestPerClientConcurrency(t *testing.T) {
	env := start(t, server.Config{MaxClientRequests: 2})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	// Two uploads that stall hold both slots.
	var writers []*io.PipeWriter
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, _ := http.NewRequest("PUT", fmt.Sprintf("https://%s/v1/repos/r/data/slow%d", env.Addr, i), pr)
		req.ContentLength = 10
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := c.http.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		if _, err := pw.Write([]byte("12345")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	r := c.mustStatus("HEAD", "/v1/repos/r", nil, 429)
	if r.header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	// Another client is not affected.
	newClient(t, env, env.Enroll(t, "bob", nil)).mustStatus("POST", "/v1/repos/r", nil, 201)
	for _, w := range writers {
		_, _ = w.Write([]byte("67890"))
		w.Close()
	}
	wg.Wait()
	c.mustStatus("HEAD", "/v1/repos/r", nil, 204)
	c.mustStatus("HEAD", "/v1/repos/r/data/slow0", nil, 200)
}

func TestEnrollmentRoute(t *testing.T) {
	var calls int
	var mu sync.Mutex
	enroll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(200)
		fmt.Fprintf(w, "enrolled %s", b)
	})
	env := start(t, server.Config{Enroll: enroll})
	// An enrolling client has no certificate: it reaches only /v1/enroll,
	// over the enrollment ALPN protocol, after checking the CA fingerprint.
	conf := env.Policy.EnrollmentConfig("127.0.0.1", pki.FingerprintVerifier("127.0.0.1", env.CA.Fingerprint(), time.Now))
	post := func(head, body string) (int, string) {
		conn, err := tls.Dial("tcp", env.Addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", head, len(body), body)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := post("POST /v1/enroll", "token"); status != 200 || body != "enrolled token" {
		t.Errorf("enrollment: %d %q", status, body)
	}
	for _, head := range []string{"GET /v1/repos/r", "POST /v1/repos/r", "PUT /v1/repos/r/data/ab", "GET /v1/enroll"} {
		if status, _ := post(head, ""); status != 404 {
			t.Errorf("%s on an enrollment connection: %d", head, status)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 1 {
		t.Errorf("enroll handler called %d times", calls)
	}

	// Without a handler the route answers 501.
	env2 := start(t, server.Config{})
	c := newClient(t, env2, env2.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/enroll", []byte("x"), 501)
}

func TestStartRefusals(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := serverdb.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := server.New(server.Config{Dir: dir, DB: db}); !errors.Is(err, state.ErrNotInitialised) {
		t.Errorf("uninitialised: %v", err)
	}
	if _, err := state.Init(ctx, dir, state.InitOptions{}); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, state.KeyFile)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := server.New(server.Config{Dir: dir, DB: db}); !errors.Is(err, state.ErrInsecureFile) {
			t.Errorf("key mode %v: %v", mode, err)
		}
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Config{Dir: dir, DB: db})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.New(server.Config{Dir: dir, DB: db}); !errors.Is(err, state.ErrLocked) {
		t.Errorf("second server on one directory: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = server.New(server.Config{Dir: dir, DB: db})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	s.Close()

	for _, conf := range []*tls.Config{nil, {ClientAuth: tls.RequireAnyClientCert}, {ClientAuth: tls.RequireAndVerifyClientCert}} {
		if err := server.CheckTLSConfig(conf); !errors.Is(err, server.ErrInsecureTLS) {
			t.Errorf("CheckTLSConfig(%+v) = %v", conf, err)
		}
	}
}

// Resumed TLS sessions are checked too: they work, and revocation ends them.
func TestResumedSessions(t *testing.T) {
	env := start(t, server.Config{})
	id := env.Enroll(t, "alice", nil)
	conf := id.TLS.Clone() // one session cache for every transport below
	get := func() (*http.Response, error) {
		tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("POST", "https://"+env.Addr+"/v1/repos/r", nil)
		resp, err := tr.RoundTrip(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	if resp, err := get(); err != nil || resp.StatusCode != 201 || resp.TLS.DidResume {
		t.Fatalf("first connection: %v %v", resp, err)
	}
	resp, err := get()
	if err != nil || resp.StatusCode != 409 {
		t.Fatalf("second connection: %v %v", resp, err)
	}
	if !resp.TLS.DidResume {
		t.Fatal("second connection did not resume; the test would prove nothing")
	}
	if err := env.DB.RevokeClient(context.Background(), "alice", time.Now(), "test"); err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if resp, err := get(); err == nil && resp.StatusCode != 401 {
		t.Fatalf("resumed session of a revoked client: %d (resumed %v)", resp.StatusCode, resp.TLS.DidResume)
	}
}

// Slow clients are cut off by the timeouts and leave nothing behind.
func TestSlowClients(t *testing.T) {
	env := start(t, server.Config{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond})
	id := env.Enroll(t, "alice", nil)
	newClient(t, env, id).mustStatus("POST", "/v1/repos/r", nil, 201)
	conf := id.TLS.Clone()
	conf.NextProtos = []string{"http/1.1"}
	for _, partial := range []string{
		"GET /v1/repos/r/data/ HTTP/1.1\r\nHost: x\r\n",                                          // headers never finished
		"PUT /v1/repos/r/data/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", // body stalls
	} {
		conn, err := tls.Dial("tcp", env.Addr, conf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(conn, partial); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadAll(conn)
		if time.Since(start) > 3*time.Second {
			t.Errorf("%q: connection held for %v (%v)", partial, time.Since(start), err)
		}
		conn.Close()
	}
	assertNoTemp(t, env)
	newClient(t, env, id).mustStatus("HEAD", "/v1/repos/r/data/slow", nil, 404)
}

// When the database cannot be read, the server stops serving rather than
// trust a revocation list that may be out of date.
func TestFailsClosedOnStaleState(t *testing.T) {
	env := start(t, server.Config{})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	if err := env.DB.Close(); err != nil {
		t.Fatal(err)
	}
	// Stale after ten intervals, and at least 10 s, without a good read.
	env.Clock.Advance(11 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := c.do("HEAD", "/v1/repos/r", nil, nil)
		if r.status == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving with an unreadable database: %d %v", r.status, r.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A state directory written before the server kept its objects in local
// storage (testdata of internal/atrest) still serves every object, its
// received time and digest, after the layout moves on start.
func TestFrozenStateDirectory(t *testing.T) {
	t.Parallel()
	src := filepath.Join("..", "atrest", "testdata", "state-v1")
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, state.KeyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	env := servertest.Start(t, servertest.Options{Dir: dir})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	received := time.Date(2026, 12, 1, 10, 0, 0, 123456789, time.UTC)
	for _, o := range []struct {
		path string
		n    int
	}{{"config/config", 300}, {"keys/k1", 500}, {"data/ab12", 1<<20 + 100}, {"snapshots/s1", 0}, {"index/i1", 4000}} {
		want := storagetest.Content(o.path, o.n)
		r := c.mustStatus("GET", "/v1/repos/main/"+o.path, nil, 200)
		if !bytes.Equal(r.body, want) {
			t.Errorf("%s: %d bytes differ from the frozen content", o.path, len(r.body))
		}
		sum := sha256.Sum256(want)
		if got := r.header.Get(wire.HeaderContentSHA256); got != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: digest header %s", o.path, got)
		}
		if got, err := time.Parse(time.RFC3339Nano, r.header.Get(wire.HeaderReceived)); err != nil || !got.Equal(received) {
			t.Errorf("%s: received %v, %v", o.path, got, err)
		}
	}
	rep, err := env.Server.Scrub(context.Background())
	if err != nil || rep.Objects != 5 || len(rep.Damaged) != 0 || len(rep.Stray) != 0 {
		t.Errorf("scrub of the frozen directory: %+v, %v", rep, err)
	}
}
