package repository

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/coffer-backup/coffer/internal/bufpool"
	"github.com/coffer-backup/coffer/internal/crypto"
)

// finishedPack is a pack laid out but not assembled: its sealed blob
// segments stay in the writer's spill file. The pack's bytes are head, then
// the segment of every entry in order, then tail (the sealed directory and
// its length). Committing a pack this way never holds the pack in memory:
// the read-back check reads each segment from the spill file, and the
// upload streams the same byte ranges to storage (in the kernel, for a
// local repository). It is not safe for concurrent use.
type finishedPack struct {
	id         ID
	entries    []PackEntry // in pack order; offsets within the pack
	from       []int64     // from[k]: offset of entries[k]'s segment in spill
	head, tail []byte
	size       int64
	spill      *os.File // nil when the pack holds no blob

	stage []byte // copy buffer for segments not copied in the kernel
}

// kernelCopyMin is the smallest segment handed to the destination's
// ReadFrom (copy_file_range for a local file); smaller ones are gathered in
// a buffer, which costs fewer system calls.
const kernelCopyMin = 128 << 10

// stageSize is the copy buffer for small segments.
const stageSize = 256 << 10

// Size is the pack's length in bytes.
func (p *finishedPack) Size() int64 { return p.size }

// Close releases the spill file.
func (p *finishedPack) Close() error {
	if p.spill == nil {
		return nil
	}
	err := p.spill.Close()
	p.spill = nil
	return err
}

// verify is the read-back check before a pack is committed: it parses the
// header and the sealed directory exactly as a reader will, checks that the
// directory names the blobs written, laid out back to back from the header
// on, and reads every blob segment back from the spill file, where the
// upload takes it from, to decrypt, decompress and hash it. scratch holds
// reusable buffers; uploads run one at a time and share one.
func (p *finishedPack) verify(keys crypto.KeyLookup, repoID []byte, hasher *BlobHasher, scratch *verifyScratch) error {
	r, err := NewPackReader(p.id, p.head, keys, repoID)
	if err != nil {
		return err
	}
	entries, err := r.ParseDirectory(p.tail, p.size)
	if err != nil {
		return err
	}
	if len(entries) != len(p.entries) {
		return fmt.Errorf("pack %s: %w: %d entries, wrote %d", p.id.Short(), ErrCorruptPack, len(entries), len(p.entries))
	}
	off := int64(crypto.HeaderSize)
	for k, e := range entries {
		if e != p.entries[k] || int64(e.Offset) != off {
			return fmt.Errorf("pack %s: %w: entry %d differs from what was written", p.id.Short(), ErrCorruptPack, k)
		}
		off += int64(e.Length)
	}
	if off+int64(len(p.tail)) != p.size {
		return fmt.Errorf("pack %s: %w: blobs end at %d, directory starts at %d", p.id.Short(), ErrCorruptPack, off, p.size-int64(len(p.tail)))
	}
	for k, e := range entries {
		sealed := grow(scratch.sealed, int(e.Length))
		scratch.sealed = sealed
		if _, err := p.spill.ReadAt(sealed, p.from[k]); err != nil {
			return fmt.Errorf("pack %s: read back blob %s: %w", p.id.Short(), e.ID.Short(), err)
		}
		// Room for the whole plaintext, so decompressing never allocates.
		if cap(scratch.out) < int(e.RawLen) {
			scratch.out = make([]byte, 0, bufpool.Round(int(e.RawLen)))
		}
		// Decrypt in place: the segment is not needed afterwards.
		plain, _, err := r.openBlob(e, sealed, sealed[crypto.NonceSize:crypto.NonceSize], scratch.out[:0])
		if err != nil {
			return err
		}
		if got := hasher.Sum(plain); !bytes.Equal(got[:], e.ID[:]) {
			return fmt.Errorf("pack %s: %w: blob %s hashes to %s", p.id.Short(), ErrCorruptPack, e.ID.Short(), got.Short())
		}
	}
	return nil
}

// verifyScratch is the read-back check's reusable memory.
type verifyScratch struct {
	sealed, out []byte
}

// grow returns b resized to n bytes, reusing its backing array if it fits;
// a new one is rounded up (bufpool.Round) so that it fits the next few.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return make([]byte, n, bufpool.Round(n))
}

// WriteTo writes the pack to w. Large segments go through w's ReadFrom
// when it has one (an *os.File copies file to file in the kernel); the
// rest through a small buffer.
func (p *finishedPack) WriteTo(w io.Writer) (int64, error) {
	var n int64
	write := func(b []byte) error {
		m, err := w.Write(b)
		n += int64(m)
		if err == nil && m != len(b) {
			err = io.ErrShortWrite
		}
		return err
	}
	if err := write(p.head); err != nil {
		return n, err
	}
	rf, _ := w.(io.ReaderFrom)
	if p.stage == nil {
		p.stage = make([]byte, 0, stageSize)
	}
	stage := p.stage[:0]
	flush := func() error {
		err := write(stage)
		stage = stage[:0]
		return err
	}
	for k, e := range p.entries {
		length := int64(e.Length)
		if rf != nil && length >= kernelCopyMin {
			if err := flush(); err != nil {
				return n, err
			}
			if _, err := p.spill.Seek(p.from[k], io.SeekStart); err != nil {
				return n, fmt.Errorf("pack %s: spill: %w", p.id.Short(), err)
			}
			m, err := rf.ReadFrom(&io.LimitedReader{R: p.spill, N: length})
			n += m
			if err == nil && m != length {
				err = fmt.Errorf("pack %s: spill: %w", p.id.Short(), io.ErrUnexpectedEOF)
			}
			if err != nil {
				return n, err
			}
			continue
		}
		for pos := int64(0); pos < length; {
			if len(stage) == cap(stage) {
				if err := flush(); err != nil {
					return n, err
				}
			}
			c := min(int64(cap(stage)-len(stage)), length-pos)
			buf := stage[len(stage) : len(stage)+int(c)]
			if _, err := p.spill.ReadAt(buf, p.from[k]+pos); err != nil {
				return n, fmt.Errorf("pack %s: spill: %w", p.id.Short(), err)
			}
			stage = stage[:len(stage)+int(c)]
			pos += c
		}
	}
	if err := flush(); err != nil {
		return n, err
	}
	return n, write(p.tail)
}

// Bytes assembles the whole pack in buf's backing array when it is large
// enough, for storage that takes objects in memory.
func (p *finishedPack) Bytes(buf []byte) ([]byte, error) {
	if int64(cap(buf)) < p.size {
		buf = make([]byte, 0, p.size)
	}
	sw := &sliceWriter{b: buf[:0]}
	if _, err := p.WriteTo(sw); err != nil {
		return nil, err
	}
	if int64(len(sw.b)) != p.size {
		return nil, fmt.Errorf("pack %s: %d bytes, want %d", p.id.Short(), len(sw.b), p.size)
	}
	return sw.b, nil
}

// sliceWriter appends to a slice; unlike bytes.Buffer it has no ReadFrom,
// so the pack copies into it through its small buffer and never regrows it.
type sliceWriter struct{ b []byte }

func (s *sliceWriter) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}
