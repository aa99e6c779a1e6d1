package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Entry is one object in a listing: one JSON object per line.
//
//	{"name":"ab12","size":1234}
//	{"name":"cd34","size":99,"received":"2026-01-02T03:04:05.123456789Z"}
//
// Received is set for snapshots only: the time the server stored the object.
type Entry struct {
	Name     string     `json:"name"`
	Size     int64      `json:"size"`
	Received *time.Time `json:"received,omitempty"`
}

// listLine is the union of an entry line and the final line
// {"end":true,"count":N}, which tells a complete listing from a cut one.
type listLine struct {
	Name     string     `json:"name,omitempty"`
	Size     int64      `json:"size,omitempty"`
	Received *time.Time `json:"received,omitempty"`
	End      bool       `json:"end,omitempty"`
	Count    int64      `json:"count,omitempty"`
}

// ErrTruncatedList is returned when a listing ends without its final line
// or the final line's count disagrees with the entries: a listing error is
// never read as a short listing.
var ErrTruncatedList = errors.New("listing truncated")

// maxListLine bounds one line: a 128-character name, a size and a time.
const maxListLine = 512

// ListWriter writes a listing.
type ListWriter struct {
	w     *bufio.Writer
	count int64
}

// NewListWriter returns a writer of a listing to w.
func NewListWriter(w io.Writer) *ListWriter {
	return &ListWriter{w: bufio.NewWriterSize(w, 32<<10)}
}

// Write adds one entry.
func (l *ListWriter) Write(e Entry) error {
	b, err := json.Marshal(listLine{Name: e.Name, Size: e.Size, Received: e.Received})
	if err != nil {
		return err
	}
	l.count++
	if _, err := l.w.Write(append(b, '\n')); err != nil {
		return err
	}
	return nil
}

// Flush sends what was written so far (so a long listing streams).
func (l *ListWriter) Flush() error { return l.w.Flush() }

// Close writes the final line. A listing that failed must not be closed:
// the client then reports ErrTruncatedList instead of a short listing.
func (l *ListWriter) Close() error {
	b, err := json.Marshal(listLine{End: true, Count: l.count})
	if err != nil {
		return err
	}
	if _, err := l.w.Write(append(b, '\n')); err != nil {
		return err
	}
	return l.w.Flush()
}

// DecodeList reads a listing of kind from r and calls fn for each entry.
// Lines are strict JSON (unknown fields refused), names are checked with
// storage.ValidateHandle, sizes must not be negative, and the listing must
// end with its final line and nothing after it. An error from fn stops the
// listing and is returned as is.
func DecodeList(r io.Reader, kind storage.Kind, fn func(Entry) error) error {
	br := bufio.NewReaderSize(r, 32<<10)
	var n int64
	for {
		line, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: no final line after %d entries", ErrTruncatedList, n)
		}
		if err != nil {
			return err
		}
		var l listLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return fmt.Errorf("%w: listing line %d: %v", ErrBadRequest, n+1, err)
		}
		if dec.More() {
			return fmt.Errorf("%w: listing line %d: trailing data", ErrBadRequest, n+1)
		}
		if l.End {
			if l.Name != "" || l.Size != 0 || l.Received != nil || l.Count != n {
				return fmt.Errorf("%w: final line says %d entries, got %d", ErrTruncatedList, l.Count, n)
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				return fmt.Errorf("%w: data after the final line", ErrBadRequest)
			}
			return nil
		}
		if l.Count != 0 {
			return fmt.Errorf("%w: listing line %d: count on an entry", ErrBadRequest, n+1)
		}
		if err := storage.ValidateHandle(storage.Handle{Kind: kind, Name: l.Name}); err != nil {
			return fmt.Errorf("listing line %d: %w", n+1, err)
		}
		if l.Size < 0 {
			return fmt.Errorf("%w: listing line %d: size %d", ErrBadRequest, n+1, l.Size)
		}
		n++
		if err := fn(Entry{Name: l.Name, Size: l.Size, Received: l.Received}); err != nil {
			return err
		}
	}
}

// readLine returns one line without its '\n', refusing lines over
// maxListLine and a last line without '\n'.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxListLine+1 {
			return nil, fmt.Errorf("%w: listing line over %d bytes", ErrBadRequest, maxListLine)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return nil, fmt.Errorf("%w: last line cut", ErrTruncatedList)
		default:
			return nil, err
		}
	}
}
