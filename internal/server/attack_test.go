package server_test

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

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
