package fsmeta

import (
	"bytes"
	"fmt"
	"os"
)

// SparseBlockSize is the granularity at which WriteSparse turns zeros into
// holes. It matches the block size of common Linux filesystems; a smaller
// zero run could not become a hole anyway.
const SparseBlockSize = 4096

// Region is a byte range of a file.
type Region struct {
	Offset int64
	Length int64
}

// IsZero reports whether b holds only zero bytes (true for an empty b).
func IsZero(b []byte) bool {
	// b[0] == 0 and b[i] == b[i+1] for every i means every byte is zero;
	// bytes.Equal compares the overlapping halves with vector instructions.
	return len(b) == 0 || (b[0] == 0 && bytes.Equal(b[1:], b[:len(b)-1]))
}

// SparseWriter writes a file sequentially from offset 0, leaving holes where
// told to. The file must be empty when the writer starts (freshly created or
// truncated): a hole skips over whatever the file already holds. Writes use
// WriteAt, so the file's own offset is left alone. Not safe for concurrent use.
type SparseWriter struct {
	f   *os.File
	off int64
}

// NewSparseWriter returns a writer at offset 0 of f.
func NewSparseWriter(f *os.File) *SparseWriter { return &SparseWriter{f: f} }

// Offset returns the number of bytes written or skipped so far.
func (w *SparseWriter) Offset() int64 { return w.off }

// Write writes p as data at the current offset.
func (w *SparseWriter) Write(p []byte) (int, error) {
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	if err != nil {
		return n, fmt.Errorf("sparse write %s at %d: %w", w.f.Name(), w.off, err)
	}
	return n, nil
}

// WriteHole advances the offset by n bytes without writing: they read back as
// zeros and occupy no disk blocks where the filesystem supports holes.
func (w *SparseWriter) WriteHole(n int64) error {
	if n < 0 {
		return fmt.Errorf("sparse write %s: negative hole %d", w.f.Name(), n)
	}
	w.off += n
	return nil
}

// WriteSparse writes p, turning each all-zero SparseBlockSize-aligned block
// of the file into a hole and writing the rest as data.
func (w *SparseWriter) WriteSparse(p []byte) (int, error) {
	base := w.off // file offset of p[0]
	blockEnd := func(i int) int {
		n := SparseBlockSize - int((base+int64(i))%SparseBlockSize)
		return min(i+n, len(p))
	}
	done := 0
	for done < len(p) {
		// A run of blocks that are all zero or all not, ending on a file
		// block boundary or at the end of p.
		zero := IsZero(p[done:blockEnd(done)])
		end := blockEnd(done)
		for end < len(p) && IsZero(p[end:blockEnd(end)]) == zero {
			end = blockEnd(end)
		}
		if zero {
			if err := w.WriteHole(int64(end - done)); err != nil {
				return done, err
			}
		} else if n, err := w.Write(p[done:end]); err != nil {
			return done + n, err
		}
		done = end
	}
	return done, nil
}

// Finish truncates the file to Offset, so that a trailing hole becomes part
// of the file's size and any older content past it is cut off.
func (w *SparseWriter) Finish() error {
	if err := w.f.Truncate(w.off); err != nil {
		return fmt.Errorf("sparse finish %s: %w", w.f.Name(), err)
	}
	return nil
}

// Close calls Finish and closes the file.
func (w *SparseWriter) Close() error {
	ferr := w.Finish()
	if err := w.f.Close(); err != nil && ferr == nil {
		ferr = fmt.Errorf("sparse close %s: %w", w.f.Name(), err)
	}
	return ferr
}
