package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/storage"
)

// FuzzParseRequest: whatever the target, a parsed route is valid, its names
// pass validation, and rebuilding its path gives back the exact target, so
// no two targets reach the same object and nothing escapes the namespace.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"/v1/enroll", "/v1/repos/r", "/v1/repos/r/data/", "/v1/repos/r/data/ab", "/v1/repos/r/config/config",
		"/v1/repos/r/data/%2e%2e", "/v1/repos/../data/x", "/v1/repos/r/data/a%00", "/v1/repos/r/data/x?a=b",
		"/v1/repos/r//x", "http://h/v1/repos/r", "*", "",
	} {
		for _, m := range []string{"GET", "HEAD", "PUT", "DELETE", "POST"} {
			f.Add(m, s)
		}
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		r, err := ParseRequest(method, target)
		if err != nil {
			if r != (Route{}) {
				t.Fatalf("error %v with route %+v", err, r)
			}
			return
		}
		var rebuilt string
		switch r.Op {
		case OpEnroll:
			rebuilt = EnrollPath
		case OpCreateRepo, OpStatRepo:
			rebuilt, err = RepoPath(r.Repo)
		case OpList:
			rebuilt, err = ListPath(r.Repo, r.Kind)
		case OpStat, OpLoad, OpSave, OpRemove:
			rebuilt, err = ObjectPath(r.Repo, r.Handle())
		default:
			t.Fatalf("route %+v without error", r)
		}
		if err != nil || rebuilt != target {
			t.Fatalf("%s %q parsed to %+v, which rebuilds to %q, %v", method, target, r, rebuilt, err)
		}
		if strings.Contains(target, "..") || strings.ContainsAny(target, "%\x00\\.?#") {
			t.Fatalf("accepted %q", target)
		}
	})
}

// FuzzParseRange: a parsed range resolves inside the object or fails with
// ErrRange, and a well-formed range survives a round trip.
func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=10-", "bytes=5-4", "bytes=-5", "bytes=1-2,3-4", "bytes=9223372036854775807-", "bytes=0-9223372036854775807"} {
		f.Add(s, int64(100))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
			if size < 0 {
				size = 0
			}
		}
		r, err := ParseRange(h)
		if err != nil {
			if !errors.Is(err, storage.ErrRange) {
				t.Fatalf("ParseRange(%q) error %v does not wrap ErrRange", h, err)
			}
			return
		}
		if r.Start < 0 || r.End < -1 || (r.End >= 0 && r.End < r.Start) {
			t.Fatalf("ParseRange(%q) = %+v", h, r)
		}
		off, n, err := r.Resolve(size)
		if err != nil {
			if !errors.Is(err, storage.ErrRange) {
				t.Fatalf("Resolve error %v", err)
			}
			return
		}
		if off < 0 || n < 0 || off > size || n > size-off {
			t.Fatalf("Resolve(%q, %d) = %d, %d outside the object", h, size, off, n)
		}
		if n > 0 {
			again, err := FormatRange(off, n)
			if err != nil {
				t.Fatalf("FormatRange(%d,%d): %v", off, n, err)
			}
			if r2, err := ParseRange(again); err != nil || (again != "" && r2.Start != off) {
				t.Fatalf("round trip of %q via %q: %+v, %v", h, again, r2, err)
			}
		}
	})
}

// FuzzDecodeList: the decoder never panics, and what it accepts has valid
// names and sizes and re-encodes to a listing it accepts again.
func FuzzDecodeList(f *testing.F) {
	f.Add([]byte("{\"name\":\"a\",\"size\":1}\n{\"end\":true,\"count\":1}\n"))
	f.Add([]byte("{\"end\":true}\n"))
	f.Add([]byte("{\"name\":\"s\",\"size\":2,\"received\":\"2026-01-02T03:04:05Z\"}\n{\"end\":true,\"count\":1}\n"))
	f.Add([]byte("{\"name\":\"..\",\"size\":1}\n"))
	f.Add([]byte("{\"end\":true,\"count\":0}\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []Entry
		err := DecodeList(bytes.NewReader(data), storage.KindData, func(e Entry) error {
			got = append(got, e)
			return nil
		})
		if err != nil {
			return
		}
		var buf bytes.Buffer
		lw := NewListWriter(&buf)
		for _, e := range got {
			if e.Size < 0 || storage.ValidateHandle(storage.Handle{Kind: storage.KindData, Name: e.Name}) != nil {
				t.Fatalf("accepted entry %+v", e)
			}
			if err := lw.Write(e); err != nil {
				t.Fatal(err)
			}
		}
		if err := lw.Close(); err != nil {
			t.Fatal(err)
		}
		n := 0
		if err := DecodeList(&buf, storage.KindData, func(Entry) error { n++; return nil }); err != nil || n != len(got) {
			t.Fatalf("re-encoded listing: %d entries, %v", n, err)
		}
	})
}
