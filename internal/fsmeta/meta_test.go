package fsmeta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func sampleMeta() *Meta {
	return &Meta{
		Type:       TypeSymlink,
		Mode:       0o7777,
		UID:        1234,
		GID:        4294967295,
		User:       "alice",
		Group:      "staff",
		Size:       11,
		MTimeNs:    1700000000123456789,
		ATimeNs:    -1234567890123,
		CTimeNs:    1700000001000000001,
		Inode:      18446744073709551615,
		Device:     2049,
		Links:      3,
		Rdev:       0,
		Flags:      FlagNoDump,
		LinkTarget: []byte("\xff\xfe\ntarget/\x80"),
		Xattrs: []Xattr{
			{Name: "security.selinux", Value: []byte("system_u:object_r:tmp_t:s0\x00")},
			{Name: "system.posix_acl_access", Value: []byte{2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff}},
			{Name: "user.empty"},
			{Name: "user.\xff\nodd", Value: []byte{0, 1, 2, 0xff}},
		},
	}
}

func TestMetaJSONRoundTripKeepsRawBytes(t *testing.T) {
	t.Parallel()
	m := sampleMeta()
	if err := m.Validate(); err != nil {
		t.Fatalf("sample invalid: %v", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"name_raw":`)) {
		t.Errorf("non-UTF-8 xattr name not stored raw: %s", b)
	}
	if !bytes.Contains(b, []byte(`"name":"user.empty"}`)) {
		t.Errorf("empty xattr value not omitted or name not plain: %s", b)
	}
	var got Meta
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, m) {
		t.Fatalf("round trip changed meta:\n got %#v\nwant %#v", got, *m)
	}
}

// TestMetaJSONFormat pins the field names, which are part of the snapshot
// format.
func TestMetaJSONFormat(t *testing.T) {
	t.Parallel()
	m := &Meta{
		Type: TypeFile, Mode: 0o644, UID: 1, GID: 2, User: "u", Group: "g", Size: 5,
		MTimeNs: 3, ATimeNs: 4, CTimeNs: 5, Inode: 6, Device: 7, Links: 8, Rdev: 9, Flags: 64,
		Xattrs: []Xattr{{Name: "user.a", Value: []byte("v")}, {Name: "user.\xff", Value: []byte("w")}},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"type":"file","mode":420,"uid":1,"gid":2,"user":"u","group":"g","size":5,` +
		`"mtime_ns":3,"atime_ns":4,"ctime_ns":5,"inode":6,"device":7,"links":8,"rdev":9,"flags":64,` +
		`"xattrs":[{"name":"user.a","value":"dg=="},{"name_raw":"dXNlci7/","value":"dw=="}]}`
	if string(b) != want {
		t.Fatalf("JSON format changed:\n got %s\nwant %s", b, want)
	}
	b, err = json.Marshal(&Meta{Type: TypeSymlink, LinkTarget: []byte{0xff}})
	if err != nil {
		t.Fatal(err)
	}
	const wantLink = `{"type":"symlink","mode":0,"uid":0,"gid":0,"mtime_ns":0,"atime_ns":0,"ctime_ns":0,"link_target":"/w=="}`
	if string(b) != wantLink {
		t.Fatalf("JSON format changed:\n got %s\nwant %s", b, wantLink)
	}
}

func TestXattrJSONRejectsBothNames(t *testing.T) {
	t.Parallel()
	var x Xattr
	err := json.Unmarshal([]byte(`{"name":"user.a","name_raw":"YQ=="}`), &x)
	if !errors.Is(err, ErrInvalidMeta) {
		t.Fatalf("err = %v, want ErrInvalidMeta", err)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	bad := map[string]func(m *Meta){
		"unknown type":          func(m *Meta) { m.Type = "door" },
		"empty type":            func(m *Meta) { m.Type = "" },
		"mode type bits":        func(m *Meta) { m.Mode = 0o100644 },
		"negative size":         func(m *Meta) { m.Size = -1 },
		"empty target":          func(m *Meta) { m.LinkTarget = nil },
		"NUL in target":         func(m *Meta) { m.LinkTarget = []byte("a\x00b") },
		"target on file":        func(m *Meta) { m.Type = TypeFile },
		"empty xattr name":      func(m *Meta) { m.Xattrs[0].Name = "" },
		"NUL in xattr name":     func(m *Meta) { m.Xattrs[1].Name = "user.\x00" },
		"unsorted xattrs":       func(m *Meta) { m.Xattrs[0], m.Xattrs[1] = m.Xattrs[1], m.Xattrs[0] },
		"duplicate xattr names": func(m *Meta) { m.Xattrs[1].Name = m.Xattrs[0].Name },
	}
	for name, mutate := range bad {
		t.Run(name, func(t *testing.T) {
			m := sampleMeta()
			mutate(m)
			if err := m.Validate(); !errors.Is(err, ErrInvalidMeta) {
				t.Fatalf("Validate = %v, want ErrInvalidMeta", err)
			}
		})
	}
	if err := (*Meta)(nil).Validate(); !errors.Is(err, ErrInvalidMeta) {
		t.Errorf("nil Validate = %v", err)
	}
	for _, typ := range []Type{TypeFile, TypeDir, TypeFIFO, TypeCharDev, TypeBlockDev, TypeSocket} {
		if err := (&Meta{Type: typ, Mode: 0o7777}).Validate(); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}

func TestMetaXattrLookup(t *testing.T) {
	t.Parallel()
	m := sampleMeta()
	v, ok := m.Xattr("system.posix_acl_access")
	if !ok || v[0] != 2 {
		t.Fatalf("Xattr(acl) = %v, %v", v, ok)
	}
	if _, ok := m.Xattr("user.missing"); ok {
		t.Fatal("found a missing xattr")
	}
}

func TestSameContent(t *testing.T) {
	t.Parallel()
	a := &Meta{Type: TypeFile, Size: 10, MTimeNs: 1, CTimeNs: 2, Inode: 3, Mode: 0o644, ATimeNs: 9}
	b := *a
	b.Mode, b.ATimeNs, b.Xattrs = 0o600, 77, []Xattr{{Name: "user.x"}}
	if !a.SameContent(&b) {
		t.Fatal("mode/atime/xattr change must not count as content change")
	}
	for name, mutate := range map[string]func(*Meta){
		"type":  func(m *Meta) { m.Type = TypeDir },
		"size":  func(m *Meta) { m.Size++ },
		"mtime": func(m *Meta) { m.MTimeNs++ },
		"ctime": func(m *Meta) { m.CTimeNs++ },
		"inode": func(m *Meta) { m.Inode++ },
	} {
		c := *a
		mutate(&c)
		if a.SameContent(&c) {
			t.Errorf("%s change not detected", name)
		}
	}
	if a.SameContent(nil) || (*Meta)(nil).SameContent(a) {
		t.Error("nil compared equal")
	}
}

func TestIsZeroMatchesNaive(t *testing.T) {
	t.Parallel()
	naive := func(b []byte) bool {
		for _, c := range b {
			if c != 0 {
				return false
			}
		}
		return true
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(9000))
		if len(b) > 0 && r.IntN(3) > 0 {
			b[r.IntN(len(b))] = byte(1 + r.IntN(255))
		}
		if got, want := IsZero(b), naive(b); got != want {
			t.Fatalf("IsZero(len %d) = %v, want %v", len(b), got, want)
		}
	}
	if !IsZero(nil) || IsZero([]byte{1}) || !IsZero([]byte{0}) {
		t.Fatal("edge cases wrong")
	}
}

func BenchmarkIsZero(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if !IsZero(buf) {
			b.Fatal("not zero")
		}
	}
}

func TestHardlinkIndex(t *testing.T) {
	t.Parallel()
	var h HardlinkIndex
	if _, ok := h.Lookup(1, 2); ok {
		t.Fatal("empty index found something")
	}
	h.Remember(1, 2, "a")
	h.Remember(1, 2, "b") // first path wins
	if p, ok := h.Lookup(1, 2); !ok || p != "a" {
		t.Fatalf("Lookup = %q, %v", p, ok)
	}
	if _, ok := h.Lookup(2, 2); ok {
		t.Fatal("device ignored")
	}
	h.Forget(1, 2)
	if h.Len() != 0 {
		t.Fatal("Forget did not forget")
	}

	// Exactly one concurrent caller per inode is told it is first.
	var wg sync.WaitGroup
	var mu sync.Mutex
	firsts := map[uint64]int{}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ino := range uint64(200) {
				if _, seen := h.LookupOrRemember(9, ino, fmt.Sprint(g)); !seen {
					mu.Lock()
					firsts[ino]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for ino := range uint64(200) {
		if firsts[ino] != 1 {
			t.Fatalf("inode %d had %d first callers", ino, firsts[ino])
		}
	}
}

func FuzzMetaJSON(f *testing.F) {
	b, err := json.Marshal(sampleMeta())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"type":"dir","mode":1023,"xattrs":[{"name_raw":"/w==","value":""},{"name":"a","value":null}]}`))
	f.Add([]byte(`{"xattrs":[{"name":"a","name_raw":"YQ=="}]}`))
	f.Add([]byte(`{"type":"symlink","link_target":"AA==","mtime_ns":-9223372036854775808,"inode":18446744073709551615}`))
	f.Add([]byte(`{"user":"\xff","xattrs":[{"NAME":"x"},{"name":"x"}],"Type":"file"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m1 Meta
		if json.Unmarshal(data, &m1) != nil {
			return
		}
		valid := m1.Validate() == nil
		b1, err := json.Marshal(&m1)
		if err != nil {
			t.Fatalf("re-encode decoded meta: %v", err)
		}
		var m2 Meta
		if err := json.Unmarshal(b1, &m2); err != nil {
			t.Fatalf("decode own output %s: %v", b1, err)
		}
		b2, err := json.Marshal(&m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable:\n%s\n%s", b1, b2)
		}
		if (m2.Validate() == nil) != valid {
			t.Fatalf("validity changed across a round trip: %s", b1)
		}
		if valid && !strings.Contains(string(b1), `"type":"`+string(m1.Type)+`"`) {
			t.Fatalf("type lost: %s", b1)
		}
	})
}
