package keyring

import (
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// minHugeWorkArea is the smallest Argon2id work area worth the extra
// collection prepareWorkArea costs: below it the page faults are few.
const minHugeWorkArea = 8 << 20

// prepareWorkArea makes the Argon2id work area that argon2.IDKey is about
// to allocate (n bytes) likely to be backed by transparent huge pages.
//
// Argon2id reads its memory at random, so with 4 KiB pages nearly every
// block access misses the TLB, and faulting in 64 MiB a page at a time
// costs 16,384 page faults; both are dear in a virtual machine. Measured on
// a 2-core VM, unlocking with the default parameters took 0.40 s of user and
// 0.14 s of system time with 4 KiB pages, and 0.16 s and 0.04 s with huge
// pages. Go's runtime no longer asks for huge pages itself, and on systems
// where they are given only on request (transparent_hugepage=madvise, the
// common default) the work area never gets them.
//
// x/crypto/argon2 allocates the area itself, so this reserves a heap span
// of the same size, marks it MADV_HUGEPAGE, and frees it: the runtime
// hands the lowest free span that fits to the next large allocation, which
// is Argon2id's. Two collections of a small heap (about a millisecond)
// make that span the one reused. The hint stays on that address range, so the backup that
// follows reuses huge-page memory too. Nothing here changes what is
// computed; if the span is not reused, or the kernel has no huge page to
// give, memory is merely faulted in as before (one unlock in twelve, on a
// loaded machine). GODEBUG=disablethp=1, Go's
// own switch against huge pages, turns this off.
func prepareWorkArea(n int) {
	if n < minHugeWorkArea || strings.Contains(os.Getenv("GODEBUG"), "disablethp=1") {
		return
	}
	// Free what is already garbage first, so that b gets the lowest free
	// span that fits and, once freed, is again the lowest: the one the
	// next allocation of this size is given.
	runtime.GC()
	b := make([]byte, n)                    // fresh memory is not touched (no RSS); reused memory was resident anyway
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // EINVAL without THP support: nothing to do
	runtime.KeepAlive(b)
	runtime.GC() // b is dead from here: the collection frees its span
}
