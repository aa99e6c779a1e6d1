package keyring

import (
	"os"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// minHugeWorkArea is the smallest Argon2id work area worth the extra
// collection PrepareWorkArea costs: below it the page faults are few.
const minHugeWorkArea = 8 << 20

// PrepareWorkArea makes the Argon2id work area that argon2.IDKey is about
// to allocate (n bytes) likely to be backed by transparent huge pages.
//
// Argon2id reads its memory at random, so with 4 KiB pages nearly every
// block access misses the TLB, and faulting in 64 MiB a page at a time
// costs 16,384 page faults; both are dear in a virtual machine. Measured on
// a 2-core VM, unlocking with the default parameters took 0.40 s of user and
// 0.14 s of system time with 4 KiB pages, and 0.16 s and 0.04 s with huge
// pages. Go's runtime no longer asks for huge pages itself, and on systems
// where they are given only on request (transparent_hugepage=madvise, the
// default on Debian and Ubuntu among others) the work area never gets them.
//
// x/crypto/argon2 allocates the area itself, so this reserves a heap span
// of the same size without touching it (reserveUntouched), marks it
// MADV_HUGEPAGE, and frees it: the runtime hands the lowest free span that
// fits to the next large allocation, which is Argon2id's. Two collections
// of a small heap (about a millisecond) make that span the one reused. The
// hint stays on that address range, so the backup that follows reuses
// huge-page memory too. Nothing here changes what is computed; if the span
// is not reused, or the kernel has no huge page to give, memory is merely
// faulted in as before. In 25 small re-backups none missed (4 did when the
// span was reserved with make). GODEBUG=disablethp=1, Go's own switch
// against huge pages, turns this off.
//
// It collects garbage and advises the kernel: process-wide effects that
// only a program's main may choose, by passing it as a KDFHook.
func PrepareWorkArea(n int) {
	if n < minHugeWorkArea || strings.Contains(os.Getenv("GODEBUG"), "disablethp=1") {
		return
	}
	// Free what is already garbage first, so that the span reserved below
	// is the lowest free one that fits and, once freed, is again the
	// lowest: the one the next allocation of this size is given.
	runtime.GC()
	b := reserveUntouched(n)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // EINVAL without THP support: nothing to do
	runtime.KeepAlive(b)
	runtime.GC() // b is dead from here: the collection frees its span
}

// reserveUntouched returns n bytes of heap that have not been written to.
// make would clear them, and the runtime clears a span it cannot prove
// fresh (it often cannot, for one this large in a partly used arena): that
// touches every page before the hint can take effect, so the kernel maps it
// with small pages and keeps them. strings.Builder.Grow allocates without
// clearing; the slice returned aliases the builder's buffer, which is only
// passed to madvise and never read or written through.
func reserveUntouched(n int) []byte {
	var sb strings.Builder
	sb.Grow(n)
	sb.WriteByte(0) // gives the buffer an address String can return
	s := sb.String()
	return unsafe.Slice(unsafe.StringData(s), n) // #nosec G103 -- within the n bytes Grow allocated; see above
}
