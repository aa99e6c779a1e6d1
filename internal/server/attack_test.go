package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/servertest"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/wire"
)

// Issue 10, item 12: one source flooding the enrollment endpoint is
// limited on its own; other sources still get through, and a global
// ceiling holds against many sources.
func TestEnrollmentRateLimitPerSource(t *testing.T) {
	t.Parallel()
	env := start(t, server.Config{}) // no Enroll handler: an allowed attempt gets 501
	h := env.Server.Handler()
	post := func(remote string) (int, string) {
		r := httptest.NewRequest("POST", "/v1/enroll", strings.NewReader("{}"))
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Header().Get("Retry-After")
	}
	limited := 0
	for i := range 200 {
		code, after := post(fmt.Sprintf("198.51.100.7:%d", 1000+i))
		if code == 429 {
			limited++
			if n, err := strconv.Atoi(after); err != nil || n < 1 || n > 60 {
				t.Fatalf("429 with Retry-After %q", after)
			}
		} else if code != 501 {
			t.Fatalf("attempt %d: status %d", i, code)
		}
	}
	if limited < 180 {
		t.Fatalf("a flooding source was limited %d times in 200 attempts", limited)
	}
	// Another source, and another IPv6 /64, are not affected by that flood.
	for _, other := range []string{"203.0.113.9:4000", "[2001:db8:1::1]:4000", "[2001:db8:2::1]:4000"} {
		if code, _ := post(other); code != 501 {
			t.Errorf("%s after another source's flood: %d, want 501 (allowed)", other, code)
		}
	}
	// Addresses of one IPv6 /64 are one source.
	same := 0
	for i := range 20 {
		if code, _ := post(fmt.Sprintf("[2001:db8:3::%x]:4000", i+1)); code == 429 {
			same++
		}
	}
	if same == 0 {
		t.Error("20 addresses of one IPv6 /64 were never limited")
	}
	// A spray of sources meets the global ceiling.
	sprayLimited := 0
	for i := range 300 {
		if code, _ := post(fmt.Sprintf("10.%d.%d.1:5000", i/250, i%250)); code == 429 {
			sprayLimited++
		}
	}
	if sprayLimited == 0 {
		t.Error("300 sources at once never met the global ceiling")
	}
}

// Issue 10, item 14: revoking a client ends its uploads and downloads in
// flight within a second, and a cut upload stores nothing.
func TestRevocationEndsRunningRequests(t *testing.T) {
	t.Parallel()
	env := start(t, server.Config{})
	c := newClient(t, env, env.Enroll(t, "mallory", nil))
	c.mustStatus("POST", "/v1/repos/r", nil, 201)
	big := bytes.Repeat([]byte("0123456789abcdef"), 30<<20/16) // 30 MiB
	c.mustStatus("PUT", "/v1/repos/r/data/bb", big, 201)

	// A slow upload: 1 KiB of a declared 10 MiB, then nothing.
	pr, pw := io.Pipe()
	defer pw.Close()
	req, err := http.NewRequest("PUT", "https://"+env.Addr+"/v1/repos/r/data/aa", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 10 << 20
	upload := make(chan error, 1)
	go func() {
		resp, err := c.http.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 201 {
				err = errors.New("upload stored")
			} else {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		upload <- err
	}()
	if _, err := pw.Write(make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}

	// A large download, read slowly.
	resp, err := c.http.Get("https://" + env.Addr + "/v1/repos/r/data/bb")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("download: %d", resp.StatusCode)
	}
	if _, err := io.ReadFull(resp.Body, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)

	revoked := time.Now()
	if err := env.DB.RevokeClient(context.Background(), "mallory", revoked, "test"); err != nil {
		t.Fatal(err)
	}
	// The download, read as fast as possible now, ends short of its length.
	downloaded := make(chan error, 1)
	go func() {
		n, err := io.Copy(io.Discard, resp.Body)
		if err == nil {
			err = fmt.Errorf("the whole download arrived (%d more bytes)", n)
		} else {
			err = nil
		}
		downloaded <- err
	}()
	for name, ch := range map[string]chan error{"upload": upload, "download": downloaded} {
		select {
		case err := <-ch:
			if name == "download" && err != nil {
				t.Errorf("download after revocation: %v", err)
			}
			if name == "upload" && err != nil && strings.Contains(err.Error(), "stored") {
				t.Errorf("upload after revocation: %v", err)
			}
		case <-time.After(time.Until(revoked.Add(time.Second))):
			t.Errorf("%s still running a second after the revocation", name)
		}
	}
	if _, err := os.Stat(filepath.Join(env.Dir, "objects", "mallory", "r", "data", "aa", "aa")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cut upload was stored: %v", err)
	}
}

// Issue 10, item 13: empty objects and repositories are not free under a
// quota, and object and repository counts are capped per client.
func TestQuotaChargesOverheadAndCapsCounts(t *testing.T) {
	t.Parallel()
	const quota = 20 << 10
	env := start(t, server.Config{})
	ctx := context.Background()

	// 300 repositories under a 20 KiB quota: each counts 64 KiB, none fits.
	repos := newClient(t, env, env.Enroll(t, "repos", func(c *serverdb.Client) { c.QuotaBytes = quota }))
	for i := range 300 {
		r := repos.do("POST", fmt.Sprintf("/v1/repos/r%d", i), nil, nil)
		if r.status != 507 || r.header.Get(wire.HeaderError) != string(wire.CodeQuota) || !strings.Contains(string(r.body), "every repository 65536") {
			t.Fatalf("repository %d under a 20 KiB quota: %d %s", i, r.status, r.body)
		}
	}

	// 3,000 empty objects under a 20 KiB quota (beyond the repository's
	// charge): each counts 4 KiB, so five fit.
	objs := newClient(t, env, env.Enroll(t, "objects", nil))
	objs.mustStatus("POST", "/v1/repos/r", nil, 201)
	if err := env.DB.SetQuota(ctx, "objects", server.RepoCharge+quota, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := env.Server.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	stored := 0
	var refusal string
	for i := range 3000 {
		r := objs.do("PUT", fmt.Sprintf("/v1/repos/r/snapshots/%04d", i), nil, nil)
		switch r.status {
		case 201:
			stored++
		case 507:
			refusal = string(r.body)
		default:
			t.Fatalf("empty object %d: %d %s", i, r.status, r.body)
		}
	}
	if stored != quota/server.MinObjectCharge || !strings.Contains(refusal, "every object counts at least 4096 bytes") {
		t.Fatalf("%d empty objects stored under a 20 KiB quota (want %d); refusal %q", stored, quota/server.MinObjectCharge, refusal)
	}
	files, err := os.ReadDir(filepath.Join(env.Dir, "objects", "objects", "r", "snapshots"))
	if err != nil || len(files) != stored {
		t.Fatalf("%d files on disk (%v), %d stored", len(files), err, stored)
	}

	// Count caps, without a quota, also after a restart (counted from disk).
	capped := func(c *serverdb.Client) { c.MaxObjects, c.MaxRepos = 10, 3 }
	counts := newClient(t, env, env.Enroll(t, "counts", capped))
	for i := range 3 {
		counts.mustStatus("POST", fmt.Sprintf("/v1/repos/r%d", i), nil, 201)
	}
	if r := counts.mustStatus("POST", "/v1/repos/r3", nil, 507); !strings.Contains(string(r.body), "has 3 repositories, its limit is 3") {
		t.Errorf("fourth repository: %s", r.body)
	}
	for i := range 10 {
		counts.mustStatus("PUT", fmt.Sprintf("/v1/repos/r%d/index/%02d", i%3, i), nil, 201)
	}
	if r := counts.mustStatus("PUT", "/v1/repos/r0/index/xx", []byte("x"), 507); !strings.Contains(string(r.body), "has 10 objects, its limit is 10") {
		t.Errorf("eleventh object: %s", r.body)
	}
	env.Stop(t)
	env2 := servertest.Start(t, servertest.Options{Dir: env.Dir})
	id := env2.Enroll(t, "counts", capped)
	again := newClient(t, env2, id)
	again.mustStatus("PUT", "/v1/repos/r1/index/yy", nil, 507)
	again.mustStatus("POST", "/v1/repos/r9", nil, 507)
}

// Issue 11: the last contact in the database follows the client's requests
// within the refresh interval, not once a minute.
func TestLastContactIsCurrent(t *testing.T) {
	t.Parallel()
	env := start(t, server.Config{})
	c := newClient(t, env, env.Enroll(t, "alice", nil))
	ctx := context.Background()
	contactAfter := func(at time.Time) bool {
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			cl, err := env.DB.Client(ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			if !cl.LastContact.Before(at) {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	}
	for i := range 3 {
		before := env.Clock.Now()
		c.mustStatus("HEAD", "/v1/repos/r", nil, 404)
		if !contactAfter(before) {
			t.Fatalf("request %d at %s: last contact not recorded within 2s", i, before)
		}
		env.Clock.Advance(20 * time.Second)
		if err := env.Server.Refresh(ctx); err != nil { // not stale by the new clock
			t.Fatal(err)
		}
	}
}
