package wire

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/coffer-backup/coffer/internal/storage"
)

// Range is a parsed Range header: bytes Start to End inclusive, or to the
// end of the object when End is -1. The protocol accepts exactly one range
// in the forms "bytes=a-b" (a <= b) and "bytes=a-"; suffix ranges and lists
// are refused.
type Range struct {
	Start int64
	End   int64 // inclusive; -1 means to the end
}

// maxRangeHeader bounds a Range header: "bytes=" and two 19-digit numbers.
const maxRangeHeader = 6 + 19 + 1 + 19

// FormatRange returns the Range header for reading length bytes at offset
// (length < 0: to the end). It fails with storage.ErrRange for a negative
// offset or a range that overflows; length 0 has no Range form, the caller
// asks for the size instead. ("", nil) means the whole object: no header.
func FormatRange(offset, length int64) (string, error) {
	switch {
	case offset < 0:
		return "", fmt.Errorf("%w: offset %d", storage.ErrRange, offset)
	case length == 0:
		return "", fmt.Errorf("%w: a zero-length read has no Range header", storage.ErrRange)
	case length < 0 && offset == 0:
		return "", nil
	case length < 0:
		return "bytes=" + strconv.FormatInt(offset, 10) + "-", nil
	case length-1 > math.MaxInt64-offset:
		return "", fmt.Errorf("%w: %d bytes at %d overflow", storage.ErrRange, length, offset)
	}
	return "bytes=" + strconv.FormatInt(offset, 10) + "-" + strconv.FormatInt(offset+length-1, 10), nil
}

// ParseRange parses a Range header of the protocol's two forms. Errors
// wrap storage.ErrRange.
func ParseRange(h string) (Range, error) {
	if len(h) > maxRangeHeader {
		return Range{}, fmt.Errorf("%w: Range header of %d bytes", storage.ErrRange, len(h))
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return Range{}, fmt.Errorf("%w: Range %q is not in bytes", storage.ErrRange, h)
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return Range{}, fmt.Errorf("%w: Range %q", storage.ErrRange, h)
	}
	start, err := parseDecimal(first)
	if err != nil {
		return Range{}, fmt.Errorf("%w: Range %q: %v", storage.ErrRange, h, err)
	}
	if last == "" {
		return Range{Start: start, End: -1}, nil
	}
	end, err := parseDecimal(last)
	if err != nil {
		return Range{}, fmt.Errorf("%w: Range %q: %v", storage.ErrRange, h, err)
	}
	if end < start {
		return Range{}, fmt.Errorf("%w: Range %q ends before it starts", storage.ErrRange, h)
	}
	return Range{Start: start, End: end}, nil
}

// parseDecimal accepts 1 to 19 ASCII digits without sign or spaces.
func parseDecimal(s string) (int64, error) {
	if len(s) == 0 || len(s) > 19 {
		return 0, fmt.Errorf("number of %d digits", len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a decimal number: %q", s)
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

// Resolve returns the offset and length the range selects in an object of
// size bytes. Unlike HTTP, the range is never clamped: it must lie within
// the object or Resolve fails with storage.ErrRange. "bytes=size-" selects
// the empty tail, as storage.Storage.Load(size, -1) does.
func (r Range) Resolve(size int64) (offset, length int64, err error) {
	if r.Start < 0 || r.Start > size {
		return 0, 0, fmt.Errorf("%w: offset %d of %d bytes", storage.ErrRange, r.Start, size)
	}
	if r.End < 0 {
		return r.Start, size - r.Start, nil
	}
	if r.End >= size || r.End < r.Start {
		return 0, 0, fmt.Errorf("%w: bytes %d-%d of %d", storage.ErrRange, r.Start, r.End, size)
	}
	return r.Start, r.End - r.Start + 1, nil
}

// ContentRange returns the Content-Range header of a 206 response.
func ContentRange(offset, length, size int64) string {
	if length == 0 {
		return "bytes */" + strconv.FormatInt(size, 10)
	}
	return "bytes " + strconv.FormatInt(offset, 10) + "-" + strconv.FormatInt(offset+length-1, 10) + "/" + strconv.FormatInt(size, 10)
}
