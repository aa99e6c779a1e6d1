package wire

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
)

func TestParseRequestValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, target string
		want           Route
	}{
		{"POST", "/v1/enroll", Route{Op: OpEnroll}},
		{"POST", "/v1/repos/main", Route{Op: OpCreateRepo, Repo: "main"}},
		{"HEAD", "/v1/repos/a_b-9", Route{Op: OpStatRepo, Repo: "a_b-9"}},
		{"GET", "/v1/repos/r/data/", Route{Op: OpList, Repo: "r", Kind: storage.KindData}},
		{"GET", "/v1/repos/r/config/", Route{Op: OpList, Repo: "r", Kind: storage.KindConfig}},
		{"HEAD", "/v1/repos/r/data/ab", Route{Op: OpStat, Repo: "r", Kind: storage.KindData, Name: "ab"}},
		{"GET", "/v1/repos/r/locks/ab", Route{Op: OpLoad, Repo: "r", Kind: storage.KindLocks, Name: "ab"}},
		{"PUT", "/v1/repos/r/config/config", Route{Op: OpSave, Repo: "r", Kind: storage.KindConfig, Name: "config"}},
		{"DELETE", "/v1/repos/r/snapshots/x-1", Route{Op: OpRemove, Repo: "r", Kind: storage.KindSnapshots, Name: "x-1"}},
		{"PUT", "/v1/repos/" + strings.Repeat("r", 64) + "/data/" + strings.Repeat("f", 128), Route{Op: OpSave, Repo: strings.Repeat("r", 64), Kind: storage.KindData, Name: strings.Repeat("f", 128)}},
	}
	for _, tc := range tests {
		got, err := ParseRequest(tc.method, tc.target)
		if err != nil || got != tc.want {
			t.Errorf("ParseRequest(%s %s) = %+v, %v; want %+v", tc.method, tc.target, got, err, tc.want)
		}
	}
}

func TestParseRequestInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		method, target string
		want           error
	}{
		{"GET", "/v1/repos/r/data/%2e%2e", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/%2E%2E", storage.ErrInvalidName},
		{"GET", "/v1/repos/%2e%2e/data/x", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/a%2fb", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data%2f..%2fkeys/x", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/../keys/x", storage.ErrInvalidName},
		{"GET", "/v1/repos/../other/data/x", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/./x", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/x\x00", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/x%00", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/x?y=1", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/x#f", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/a\\b", storage.ErrInvalidName},
		{"GET", "/v1/repos/R/data/x", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/Data/x", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/X", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/bogus/x", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/config/other", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/" + strings.Repeat("a", 129), storage.ErrInvalidName},
		{"GET", "/v1/repos/" + strings.Repeat("r", 65) + "/data/x", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data/" + strings.Repeat("a", 1<<16), storage.ErrInvalidName},
		{"GET", "/v1/repos//data/x", storage.ErrInvalidName},
		{"GET", "/v1/repos/", storage.ErrInvalidName},
		{"GET", "/v1/repos/r/data//x", ErrNoRoute},
		{"GET", "/v1/repos/r/data/x/", ErrNoRoute},
		{"GET", "/v1/repos/r/data", ErrNoRoute},
		{"GET", "//v1/repos/r/data/x", ErrNoRoute},
		{"GET", "/v2/repos/r/data/x", ErrNoRoute},
		{"GET", "/etc/passwd", ErrNoRoute},
		{"GET", "", ErrNoRoute},
		{"GET", "*", ErrNoRoute},
		{"GET", "http://host/v1/repos/r/data/x", ErrNoRoute},
		{"GET", "/v1/enroll", ErrMethod},
		{"POST", "/v1/repos/r/data/x", ErrMethod},
		{"PATCH", "/v1/repos/r/data/x", ErrMethod},
		{"MOVE", "/v1/repos/r/data/x", ErrMethod},
		{"PUT", "/v1/repos/r/data/", ErrMethod},
		{"DELETE", "/v1/repos/r", ErrMethod},
		{"GET", "/v1/repos/r", ErrMethod},
	}
	for _, tc := range tests {
		got, err := ParseRequest(tc.method, tc.target)
		if !errors.Is(err, tc.want) {
			t.Errorf("ParseRequest(%s %q) = %+v, %v; want %v", tc.method, tc.target, got, err, tc.want)
		}
	}
}

// The client's path builders produce exactly the routes the server parses.
func TestPathBuildersRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_"
	randName := func(max int) string {
		b := make([]byte, 1+rng.IntN(max))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for i := 0; i < 2000; i++ {
		repo := randName(MaxRepoLen)
		k := storage.Kinds[rng.IntN(len(storage.Kinds))]
		name := randName(128)
		if k == storage.KindConfig {
			name = "config"
		}
		h := storage.Handle{Kind: k, Name: name}
		p, err := ObjectPath(repo, h)
		if err != nil {
			t.Fatalf("ObjectPath(%q, %v): %v", repo, h, err)
		}
		for _, m := range []struct {
			method string
			op     Op
		}{{"HEAD", OpStat}, {"GET", OpLoad}, {"PUT", OpSave}, {"DELETE", OpRemove}} {
			r, err := ParseRequest(m.method, p)
			if err != nil || r != (Route{Op: m.op, Repo: repo, Kind: k, Name: name}) {
				t.Fatalf("ParseRequest(%s %s) = %+v, %v", m.method, p, r, err)
			}
		}
		lp, err := ListPath(repo, k)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := ParseRequest("GET", lp); err != nil || r != (Route{Op: OpList, Repo: repo, Kind: k}) {
			t.Fatalf("ParseRequest(GET %s) = %+v, %v", lp, r, err)
		}
	}
	for _, h := range []storage.Handle{{Kind: storage.KindData, Name: ".."}, {Kind: "x", Name: "a"}} {
		if _, err := ObjectPath("r", h); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("ObjectPath(%v) = %v", h, err)
		}
	}
	if _, err := RepoPath("a/b"); !errors.Is(err, storage.ErrInvalidName) {
		t.Errorf("RepoPath(a/b) = %v", err)
	}
	if _, err := ListPath("r", "nope"); !errors.Is(err, storage.ErrInvalidName) {
		t.Errorf("ListPath(nope) = %v", err)
	}
}

func TestValidateClientName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"a", "host-1.example.com", "x_y", strings.Repeat("a", 63)} {
		if err := ValidateClientName(ok); err != nil {
			t.Errorf("ValidateClientName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", ".hidden", "a..b", "-a", "A", "a/b", "a\x00", "a b", strings.Repeat("a", 64), "é"} {
		if err := ValidateClientName(bad); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("ValidateClientName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}

func TestRange(t *testing.T) {
	t.Parallel()
	const size = 100
	tests := []struct {
		off, n         int64
		header         string
		wantOff, wantN int64
	}{
		{0, -1, "", 0, size},
		{10, -1, "bytes=10-", 10, 90},
		{100, -1, "bytes=100-", 100, 0},
		{0, 1, "bytes=0-0", 0, 1},
		{99, 1, "bytes=99-99", 99, 1},
		{0, 100, "bytes=0-99", 0, 100},
		{5, 10, "bytes=5-14", 5, 10},
	}
	for _, tc := range tests {
		h, err := FormatRange(tc.off, tc.n)
		if err != nil || h != tc.header {
			t.Errorf("FormatRange(%d,%d) = %q, %v; want %q", tc.off, tc.n, h, err, tc.header)
			continue
		}
		if h == "" {
			continue
		}
		r, err := ParseRange(h)
		if err != nil {
			t.Fatalf("ParseRange(%q): %v", h, err)
		}
		off, n, err := r.Resolve(size)
		if err != nil || off != tc.wantOff || n != tc.wantN {
			t.Errorf("Resolve(%q) = %d,%d,%v; want %d,%d", h, off, n, err, tc.wantOff, tc.wantN)
		}
	}
	for _, bad := range []struct{ off, n int64 }{{-1, 1}, {0, 0}, {2, math.MaxInt64}, {math.MaxInt64, 2}} {
		if h, err := FormatRange(bad.off, bad.n); !errors.Is(err, storage.ErrRange) {
			t.Errorf("FormatRange(%d,%d) = %q, %v; want ErrRange", bad.off, bad.n, h, err)
		}
	}
	// Ranges that parse but lie outside a 100-byte object.
	for _, h := range []string{"bytes=101-", "bytes=100-100", "bytes=0-100", "bytes=99-200", "bytes=9223372036854775807-"} {
		r, err := ParseRange(h)
		if err != nil {
			t.Fatalf("ParseRange(%q): %v", h, err)
		}
		if off, n, err := r.Resolve(size); !errors.Is(err, storage.ErrRange) {
			t.Errorf("Resolve(%q) = %d,%d,%v; want ErrRange", h, off, n, err)
		}
	}
	for _, h := range []string{"", "bytes", "bytes=", "bytes=-5", "bytes=5-4", "bytes=1-2,3-4", "bytes= 1-2", "bytes=+1-2",
		"bytes=0x1-", "items=1-2", "bytes=1-2 ", "bytes=99999999999999999999-", "bytes=1--2", "BYTES=1-2", "bytes=-"} {
		if r, err := ParseRange(h); !errors.Is(err, storage.ErrRange) {
			t.Errorf("ParseRange(%q) = %+v, %v; want ErrRange", h, r, err)
		}
	}
}

func TestContentRange(t *testing.T) {
	t.Parallel()
	if got := ContentRange(5, 10, 100); got != "bytes 5-14/100" {
		t.Errorf("ContentRange = %q", got)
	}
	if got := ContentRange(100, 0, 100); got != "bytes */100" {
		t.Errorf("ContentRange empty = %q", got)
	}
}

func TestListRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	lw := NewListWriter(&buf)
	now := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	want := []Entry{{Name: "a", Size: 0}, {Name: "b-c_d", Size: 1 << 40}, {Name: "e", Size: 7, Received: &now}}
	for _, e := range want {
		if err := lw.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	full := buf.String()
	var got []Entry
	if err := DecodeList(strings.NewReader(full), storage.KindData, func(e Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatalf("DecodeList: %v\n%s", err, full)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Size != want[i].Size || (want[i].Received != nil) != (got[i].Received != nil) ||
			(want[i].Received != nil && !got[i].Received.Equal(*want[i].Received)) {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// Every proper prefix of the listing is refused: a cut listing is never a short one.
	for cut := 0; cut < len(full); cut++ {
		err := DecodeList(strings.NewReader(full[:cut]), storage.KindData, func(Entry) error { return nil })
		if err == nil {
			t.Fatalf("listing cut at %d of %d bytes accepted", cut, len(full))
		}
	}
	// A callback error stops the listing and comes back unchanged.
	stop := errors.New("stop")
	calls := 0
	if err := DecodeList(strings.NewReader(full), storage.KindData, func(Entry) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("DecodeList with failing callback = %v after %d calls", err, calls)
	}
}

func TestDecodeListRefuses(t *testing.T) {
	t.Parallel()
	bad := []string{
		"",
		`{"end":true,"count":1}` + "\n",
		`{"name":"a","size":1}` + "\n" + `{"end":true,"count":2}` + "\n",
		`{"name":"a","size":1}` + "\n" + `{"end":true}` + "\n",
		`{"name":"..","size":1}` + "\n" + `{"end":true,"count":1}` + "\n",
		`{"name":"a/b","size":1}` + "\n" + `{"end":true,"count":1}` + "\n",
		`{"name":"a","size":-1}` + "\n" + `{"end":true,"count":1}` + "\n",
		`{"name":"a","size":1,"evil":1}` + "\n" + `{"end":true,"count":1}` + "\n",
		`{"name":"a","size":1} {}` + "\n" + `{"end":true,"count":1}` + "\n",
		`{"end":true}` + "\n" + `{"name":"a","size":1}` + "\n",
		`{"end":true,"name":"a"}` + "\n",
		`{"name":"a","count":3}` + "\n" + `{"end":true,"count":1}` + "\n",
		`{"name":"` + strings.Repeat("a", 600) + `","size":1}` + "\n" + `{"end":true,"count":1}` + "\n",
		`[]` + "\n",
		`{"end":true}`,
	}
	for _, s := range bad {
		if err := DecodeList(strings.NewReader(s), storage.KindData, func(Entry) error { return nil }); err == nil {
			t.Errorf("DecodeList(%q) accepted", s)
		}
	}
	if err := DecodeList(strings.NewReader(`{"end":true}`+"\n"), storage.KindData, func(Entry) error { return nil }); err != nil {
		t.Errorf("empty listing refused: %v", err)
	}
}

func TestErrorsRoundTrip(t *testing.T) {
	t.Parallel()
	sentinels := []error{
		storage.ErrNotFound, storage.ErrNoRepository, storage.ErrExists, storage.ErrRange, storage.ErrForbidden,
		storage.ErrInvalidName, ErrQuota, ErrTooLarge, ErrLengthRequired, ErrDigest, ErrBadRequest,
		ErrTooManyRequests, ErrUnauthenticated, ErrCorrupt, ErrServer, ErrUnavailable, ErrNotImplemented,
		ErrNoRoute, ErrMethod,
	}
	for _, s := range sentinels {
		for _, head := range []bool{false, true} {
			rec := httptest.NewRecorder()
			WriteError(rec, fmt.Errorf("op on /srv/secret/path: %w", s))
			resp := rec.Result()
			if head {
				resp.Body = nil // HEAD responses carry no body: the header alone must do
			}
			err := ResponseError(resp)
			if !errors.Is(err, s) {
				t.Errorf("%v (head %v) came back as %v (status %d)", s, head, err, rec.Code)
			}
		}
	}
	// Internal errors never leak their message.
	rec := httptest.NewRecorder()
	WriteError(rec, errors.New("open /srv/coffer/objects/alice: permission denied"))
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "/srv") {
		t.Errorf("internal error answered %d %q", rec.Code, rec.Body.String())
	}
	if !Transient(ResponseError(rec.Result())) {
		t.Error("internal error not transient")
	}
	rec = httptest.NewRecorder()
	WriteError(rec, ErrCorrupt)
	if Transient(ResponseError(rec.Result())) {
		t.Error("corrupt object reported as transient")
	}
	// Statuses without a code still map sensibly.
	for status, want := range map[int]error{404: storage.ErrNotFound, 412: storage.ErrExists, 507: ErrQuota, 502: ErrUnavailable, 418: ErrServer} {
		resp := &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{}}
		if err := ResponseError(resp); !errors.Is(err, want) {
			t.Errorf("bare %d = %v, want %v", status, err, want)
		}
	}
	for _, e := range []error{storage.ErrNotFound, storage.ErrExists, ErrQuota, storage.ErrInvalidName} {
		if Transient(e) {
			t.Errorf("%v reported transient", e)
		}
	}
}

func TestOpString(t *testing.T) {
	t.Parallel()
	if OpSave.String() != "save" || Op(99).String() != "op(99)" {
		t.Errorf("Op names: %s %s", OpSave, Op(99))
	}
}
