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
