package formattest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// The frozen repository's inputs. Everything the fixture holds is derived
// from these definitions, so a test can rebuild the expected tree without
// trusting anything coffer wrote.

// entryKind is what an input entry is on disk.
type entryKind int

const (
	kindFile entryKind = iota
	kindDir
	kindSymlink
	kindHardlink // a second name for the regular file named by target
	kindFIFO
)

// inputEntry is one path below the backed-up root.
type inputEntry struct {
	path   string // relative, "/"-separated; may hold any byte but NUL and "/" in a component
	kind   entryKind
	mode   uint32 // permission bits with setuid and sticky (never setgid: a non-member cannot restore it)
	mtime  time.Time
	data   func() []byte // regular files
	sparse []span        // regular files written as data spans over a hole
	size   int64         // of a sparse file
	target string        // symlink target, or the path a hardlink shares its inode with
	uid    int           // -1: the generator's own
	gid    int
}

// span is data written at an offset of a sparse file.
type span struct {
	off  int64
	data []byte
}

// stream returns n deterministic bytes for label: SHA-256 in counter mode,
// whose output no Go release can change.
func stream(label string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		h := sha256.New()
		h.Write([]byte(label))
		h.Write([]byte{0})
		h.Write(ctr[:])
		out = h.Sum(out)
	}
	return out[:n]
}

var vocabulary = []string{"backup", "restore", "chunk", "pack", "index", "snapshot", "tree", "blob",
	"key", "term", "nonce", "salt", "prune", "forget", "lock", "check", "zstd", "gear", "cut", "padding",
	"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"}

// words returns about n bytes of compressible text for label: words drawn
// from a small vocabulary by stream(label).
func words(label string, n int) []byte {
	r := stream(label, n)
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		b.WriteString(vocabulary[int(r[i%len(r)])%len(vocabulary)])
		if r[(i+1)%len(r)]%11 == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

// bigFile is several chunks long (fixtureChunker) and repeats one block
// three times, so that its chunks deduplicate within the file.
func bigFile() []byte {
	block := words("big block", 320<<10)
	out := slices.Concat(block, block, block, words("big tail", 50<<10))
	return out
}

// stdinStream is what the second snapshot read from standard input.
func stdinStream() []byte {
	return slices.Concat([]byte("-- coffer fixture: a database dump\n"), words("stdin dump", 200<<10))
}

const stdinName = "dump.sql"

// at returns a fixed timestamp with nanoseconds, off seconds from a base.
func at(off int64) time.Time {
	return time.Unix(1709210096+off, 123456789).UTC() // 2024-02-29T12:34:56.123456789Z
}

func constant(s string) func() []byte { return func() []byte { return []byte(s) } }

// inputs lists the backed-up tree. Parents come before children.
func inputs() []inputEntry {
	e := func(path string, kind entryKind, mode uint32, mtime time.Time) inputEntry {
		return inputEntry{path: path, kind: kind, mode: mode, mtime: mtime, uid: -1, gid: -1}
	}
	file := func(path string, mode uint32, mtime time.Time, data func() []byte) inputEntry {
		x := e(path, kindFile, mode, mtime)
		x.data = data
		return x
	}
	link := func(path, target string, mtime time.Time) inputEntry {
		x := e(path, kindSymlink, 0o777, mtime)
		x.target = target
		return x
	}
	owned := file("owned-by-1234", 0o640, at(70), constant("owned by uid 1234, gid 5678\n"))
	owned.uid, owned.gid = 1234, 5678
	sparse := e("sparse.img", kindFile, 0o644, at(80))
	sparse.sparse = []span{{0, stream("sparse head", 8<<10)}, {1 << 20, stream("sparse tail", 4<<10)}}
	sparse.size = 1<<20 + 4<<10
	hard := e("multi/big-hardlink", kindHardlink, 0, time.Time{})
	hard.target = "multi/big.dat"
	return []inputEntry{
		file("empty", 0o644, at(1), constant("")),
		file("small.txt", 0o640, at(2), constant("hello, coffer\n")),
		file("random.bin", 0o600, at(3), func() []byte { return stream("random", 3000) }),
		file("exec.sh", 0o755, at(4), constant("#!/bin/sh\necho fixture\n")),
		file("read-only.txt", 0o444, at(5), constant("read only\n")),
		file("setuid", 0o4755, at(6), constant("setuid bit\n")),
		file("before-1970", 0o644, time.Unix(-14182940, 5).UTC(), constant("1969-07-20\n")),
		file("year-2100", 0o644, time.Date(2100, 1, 1, 0, 0, 0, 999999999, time.UTC), constant("future\n")),
		file("with space", 0o644, at(7), constant("space\n")),
		file("-leading-dash", 0o644, at(8), constant("dash\n")),
		file("ünïcødé-名前", 0o644, at(9), constant("unicode\n")),
		file("new\nline", 0o644, at(10), constant("newline in the name\n")),
		file("not-utf8-\xff\xfe", 0o644, at(11), constant("raw bytes in the name\n")),
		file("quote\"back\\slash:colon*star?", 0o644, at(12), constant("punctuation\n")),
		owned,
		sparse,
		link("link-relative", "small.txt", at(20)),
		link("link-absolute", "/nonexistent/coffer/target", at(21)),
		link("link-dangling", "../../nowhere", at(22)),
		link("link-raw-\xff", "target-\xfe", at(23)),
		e("fifo", kindFIFO, 0o644, at(30)),
		e("emptydir", kindDir, 0o755, at(40)),
		e("private", kindDir, 0o700, at(41)),
		file("private/secret", 0o600, at(42), constant("secret\n")),
		e("sticky", kindDir, 0o1777, at(43)),
		file("sticky/file", 0o666, at(44), constant("in a sticky directory\n")),
		e("read-only-dir", kindDir, 0o555, at(45)),
		file("read-only-dir/inside", 0o644, at(46), constant("inside a read-only directory\n")),
		e("multi", kindDir, 0o750, at(50)),
		file("multi/big.dat", 0o644, at(51), bigFile),
		file("multi/big-copy.dat", 0o644, at(52), bigFile),
		hard,
		e("multi/deep", kindDir, 0o755, at(53)),
		e("multi/deep/deeper", kindDir, 0o755, at(54)),
		file("multi/deep/deeper/leaf", 0o644, at(55), constant("leaf\n")),
	}
}

// rootMode and rootMTime are the backed-up directory's own metadata.
const rootMode = 0o755

var rootMTime = at(100)

// content returns what a regular file entry holds.
func (x inputEntry) content() []byte {
	if x.sparse == nil {
		return x.data()
	}
	b := make([]byte, x.size)
	for _, s := range x.sparse {
		copy(b[s.off:], s.data)
	}
	return b
}

// realise writes the inputs below root, which must exist, then sets
// every entry's mode and times (directories last, deepest first).
func realise(root string) error {
	in := inputs()
	for _, x := range in {
		p := filepath.Join(root, filepath.FromSlash(x.path))
		if err := create(p, root, x); err != nil {
			return fmt.Errorf("create %q: %w", x.path, err)
		}
	}
	for i := len(in) - 1; i >= 0; i-- {
		x := in[i]
		if x.kind == kindHardlink {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(x.path))
		if err := setMeta(p, x); err != nil {
			return fmt.Errorf("metadata of %q: %w", x.path, err)
		}
	}
	if err := os.Chmod(root, rootMode); err != nil {
		return err
	}
	return os.Chtimes(root, rootMTime, rootMTime)
}

func create(p, root string, x inputEntry) error {
	switch x.kind {
	case kindDir:
		return os.Mkdir(p, 0o700)
	case kindSymlink:
		return os.Symlink(x.target, p)
	case kindHardlink:
		return os.Link(filepath.Join(root, filepath.FromSlash(x.target)), p)
	case kindFIFO:
		return unix.Mkfifo(p, 0o600)
	case kindFile:
		if x.sparse == nil {
			return os.WriteFile(p, x.data(), 0o600)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		for _, s := range x.sparse {
			if _, err := f.WriteAt(s.data, s.off); err != nil {
				_ = f.Close()
				return err
			}
		}
		if err := f.Truncate(x.size); err != nil {
			_ = f.Close()
			return err
		}
		return f.Close()
	}
	return errors.New("unknown kind")
}

func setMeta(p string, x inputEntry) error {
	if x.uid >= 0 {
		if err := os.Lchown(p, x.uid, x.gid); err != nil {
			return err
		}
	}
	if x.kind != kindSymlink {
		// os.Chmod maps only the permission bits; set setuid and sticky too.
		if err := unix.Chmod(p, x.mode); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(x.mtime.UnixNano()), unix.NsecToTimespec(x.mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}
