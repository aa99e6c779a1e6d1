package filter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/coffer-backup/coffer/internal/regfile"
)

// maxPatternLine bounds one line of a pattern file.
const maxPatternLine = 64 << 10

// ReadPatternFile reads patterns from a file, one per line: lines starting
// with "#" are comments, unescaped trailing spaces, tabs and a CR are
// trimmed, and blank lines are ignored. Every pattern is checked; an error
// names the file and line.
func ReadPatternFile(path string) ([]string, error) {
	f, err := os.Open(path) // #nosec G304 -- a pattern file the user named
	if err != nil {
		return nil, fmt.Errorf("read pattern file: %w", err)
	}
	defer func() { _ = f.Close() }()
	pats, err := ParsePatterns(f)
	if err != nil {
		return nil, fmt.Errorf("read pattern file %s: %w", path, err)
	}
	return pats, nil
}

// ParsePatterns reads patterns as ReadPatternFile does, from r.
func ParsePatterns(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxPatternLine)
	var out []string
	for line := 1; sc.Scan(); line++ {
		s := trimTrailing(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if _, err := compile(s); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("after %d patterns: %w", len(out), err)
	}
	return out, nil
}

// trimTrailing removes trailing spaces, tabs and CRs, keeping a space or
// tab escaped by a backslash ("foo\ " stays a name ending in a space).
func trimTrailing(s string) string {
	end := len(s)
	for end > 0 && (s[end-1] == ' ' || s[end-1] == '\t' || s[end-1] == '\r') {
		end--
	}
	if end < len(s) && s[end] != '\r' {
		// Count the backslashes before the first trimmed character: an odd
		// number escapes it.
		n := 0
		for i := end - 1; i >= 0 && s[i] == '\\'; i-- {
			n++
		}
		if n%2 == 1 {
			end++
		}
	}
	return s[:end]
}

// CacheDirTagName is the file that marks a cache directory, and
// CacheDirSignature how it must start (https://bford.info/cachedir/).
const (
	CacheDirTagName   = "CACHEDIR.TAG"
	CacheDirSignature = "Signature: 8a477f597d28d172789f06886806bc55"
)

// IsCacheDir reports whether dirPath holds a valid CACHEDIR.TAG: a regular
// file starting with CacheDirSignature. A missing, short or differing tag
// is (false, nil); only errors reading an existing tag are returned.
func IsCacheDir(dirPath string) (bool, error) {
	p := filepath.Join(dirPath, CacheDirTagName)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check cache directory tag: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return false, nil
	}
	f, _, err := regfile.Open(p) // a FIFO swapped in after the Lstat is refused, not waited on
	if errors.Is(err, regfile.ErrNotRegular) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check cache directory tag: %w", err)
	}
	defer func() { _ = f.Close() }()
	buf := make([]byte, len(CacheDirSignature))
	if _, err := io.ReadFull(f, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, nil
		}
		return false, fmt.Errorf("check cache directory tag %s: %w", p, err)
	}
	return bytes.Equal(buf, []byte(CacheDirSignature)), nil
}

// HasMarker reports whether dirPath directly contains an entry (of any
// type) with one of names, as backup --exclude-if-present asks. Names must
// be plain file names.
func HasMarker(dirPath string, names []string) (bool, error) {
	for _, name := range names {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			return false, fmt.Errorf("marker file name %q: must be a plain file name", name)
		}
	}
	for _, name := range names {
		_, err := os.Lstat(filepath.Join(dirPath, name))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("check marker %s in %s: %w", name, dirPath, err)
		}
	}
	return false, nil
}
