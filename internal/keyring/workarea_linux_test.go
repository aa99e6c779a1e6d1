package keyring

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// vmaFlags returns the VmFlags of the mapping holding addr, from
// /proc/self/smaps.
func vmaFlags(t *testing.T, addr uintptr) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "VmFlags:" {
			if in {
				return fields[1:]
			}
			continue
		}
		// A mapping's header line starts with its range, "lo-hi"; the
		// lines of its fields start with "Name:".
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && !strings.HasSuffix(fields[0], ":") {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return nil
}

func hasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if x == f {
			return true
		}
	}
	return false
}

// The allocation that follows PrepareWorkArea (Argon2id's, in
// passphraseKey) lands in memory marked for huge pages; a plain one, or one
// after GODEBUG=disablethp=1, does not. The test fails if a Go runtime stops
// reusing the freed span. It runs in a fresh process, whose heap no earlier
// test has hinted.
func TestWorkAreaHugePageHint(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("transparent huge pages unavailable (%q, %v)", mode, err)
	}
	if os.Getenv("COFFER_WORKAREA_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWorkAreaHugePageHint$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "COFFER_WORKAREA_CHILD=1", "GODEBUG=")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	const n = 64 << 20
	type block [128]uint64 // what x/crypto/argon2 allocates
	plain := make([]block, n/1024)
	if hasFlag(vmaFlags(t, uintptr(unsafe.Pointer(&plain[0]))), "hg") {
		t.Fatal("a plain allocation is already marked for huge pages: the test proves nothing here")
	}
	runtime.KeepAlive(plain)

	t.Setenv("GODEBUG", "disablethp=1")
	PrepareWorkArea(n)
	off := make([]block, n/1024)
	if hasFlag(vmaFlags(t, uintptr(unsafe.Pointer(&off[0]))), "hg") {
		t.Fatal("GODEBUG=disablethp=1 still hinted huge pages")
	}
	runtime.KeepAlive(off)

	// The runtime's choice of span is not guaranteed, so the hint must
	// land in one of three tries.
	t.Setenv("GODEBUG", "")
	var flags []string
	for try := 0; try < 3; try++ {
		PrepareWorkArea(n)
		area := make([]block, n/1024)
		flags = vmaFlags(t, uintptr(unsafe.Pointer(&area[n/1024/2])))
		runtime.KeepAlive(area)
		if hasFlag(flags, "hg") {
			return
		}
	}
	t.Fatalf("the work area's mapping has flags %v, want hg (MADV_HUGEPAGE)", flags)
}

func residentPages(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no statm: %v", err)
	}
	f := strings.Fields(string(b))
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// reserveUntouched hands out its bytes without writing them (make would
// clear them and so map every page before the hint): the process grows by
// far less than the reservation.
func TestReserveUntouched(t *testing.T) {
	const n = 64 << 20
	before := residentPages(t)
	b := reserveUntouched(n)
	grown := residentPages(t) - before
	if len(b) != n {
		t.Fatalf("got %d bytes, want %d", len(b), n)
	}
	if grown > n/os.Getpagesize()/4 {
		t.Fatalf("reserving %d bytes made %d pages resident", n, grown)
	}
	runtime.KeepAlive(b)
}
