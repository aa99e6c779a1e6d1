// Package filter decides which paths backup excludes and restore includes,
// with restic-style glob patterns, and detects cache and marker directories.
package filter

import (
	"strconv"
	"strings"
)

// Matcher tests paths against an ordered list of patterns. The zero value
// and a nil *Matcher match nothing. A Matcher is safe for concurrent use.
type Matcher struct {
	patterns []pattern
}

// New compiles patterns, in order. The syntax (case-sensitive, one pattern
// per string):
//
//   - A pattern is split at "/" into components; each matches one path
//     component with "*" (any run of characters), "?" (one character),
//     "[abc]", "[a-z]", "[!a-z]" or "[^a-z]" (one character in or not in
//     the set) and "\" escaping the next character. "/" cannot be escaped.
//   - A component "**" matches any number of path components, none included.
//   - A leading "/" anchors the pattern at the root of the path. Any other
//     pattern may match starting at any component: "foo" and "foo/bar"
//     behave as "**/foo" and "**/foo/bar". So a pattern without "/"
//     matches a file or directory name anywhere.
//   - A pattern that matches a directory also matches everything under it.
//   - A leading "!" negates: a path matched by a later negated pattern is
//     not matched. The last pattern that matches a path decides.
//   - Empty components, "." components and a trailing "/" are ignored
//     (paths carry no file type); ".." is refused.
//
// Unlike gitignore, "foo/bar" is not anchored and "foo/" also matches a
// file named foo. Environment variables are not expanded.
//
// A malformed pattern fails with an error wrapping ErrBadPattern that quotes it.
func New(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for _, s := range patterns {
		p, err := compile(s)
		if err != nil {
			return nil, err
		}
		m.patterns = append(m.patterns, p)
	}
	return m, nil
}

// Empty reports whether m has no patterns, so callers can skip matching.
func (m *Matcher) Empty() bool { return m == nil || len(m.patterns) == 0 }

// Patterns returns the patterns m was built from.
func (m *Matcher) Patterns() []string {
	if m == nil {
		return nil
	}
	out := make([]string, len(m.patterns))
	for i, p := range m.patterns {
		out[i] = p.original
	}
	return out
}

// splitPath splits a slash-separated path into its components. Absolute
// and relative paths are the same to a Matcher: both start at the root.
func splitPath(p string) []string {
	parts := strings.Split(p, "/")
	out := parts[:0]
	for _, c := range parts {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// Match reports whether path is matched: the last pattern that matches it
// or one of its parent directories is not negated.
func (m *Matcher) Match(path string) bool {
	return m.MatchedBy(path) >= 0
}

// MatchedBy returns the index (in Patterns) of the pattern that makes
// Match(path) true, or -1 when Match(path) is false. A restore uses it to
// name include patterns that matched nothing.
func (m *Matcher) MatchedBy(path string) int {
	if m.Empty() {
		return -1
	}
	comps := splitPath(path)
	for i := len(m.patterns) - 1; i >= 0; i-- {
		if matched, _ := m.patterns[i].walk(comps); matched {
			if m.patterns[i].negated {
				return -1
			}
			return i
		}
	}
	return -1
}

// Negated reports whether pattern i (an index in Patterns) starts with "!".
func (m *Matcher) Negated(i int) bool { return m.patterns[i].negated }

// ChildMayMatch reports whether some path strictly under dirPath could be
// matched. It never returns false when one could, and it may return true
// when none can; a restore with include patterns uses it to skip
// directories that hold nothing to restore.
func (m *Matcher) ChildMayMatch(dirPath string) bool {
	return m.childMay(dirPath, true)
}

// ChildMayNotMatch reports whether some path strictly under dirPath could
// be left unmatched. It never returns false when one could. A backup uses it
// on an excluded directory: when it is false (no negated pattern can
// re-include anything below), the directory need not be read at all.
func (m *Matcher) ChildMayNotMatch(dirPath string) bool {
	return m.childMay(dirPath, false)
}

// Action is what a backup does with a path, given its exclude patterns.
type Action uint8

// Actions of ExcludeAction.
const (
	// Keep: the path is not excluded (no pattern matches it, or the last
	// one that does is negated).
	Keep Action = iota
	// Skip: the path is excluded, and nothing below it can be re-included.
	Skip
	// Descend: the path is an excluded directory below which a later "!"
	// pattern may re-include something. A backup reads it and stores it
	// only as the parent of what is re-included.
	Descend
)

func (a Action) String() string {
	switch a {
	case Keep:
		return "keep"
	case Skip:
		return "skip"
	case Descend:
		return "descend"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// ExcludeAction decides path for a backup that uses m as its exclude
// patterns, in one pass over the patterns: Keep when Match(path) is false;
// otherwise Descend for a directory (isDir) for which ChildMayNotMatch(path)
// holds, and Skip for anything else. Like ChildMayNotMatch it may answer
// Descend for a directory below which nothing turns out to be re-included,
// never Skip for one below which something is.
//
// restic and gitignore never look inside an excluded directory, so there
// "--exclude /cache --exclude '!/cache/keep'" keeps nothing of /cache. Here
// the last matching pattern decides every path, as Match documents, and
// Descend lets a backup honour that for /cache/keep.
func (m *Matcher) ExcludeAction(path string, isDir bool) Action {
	if m.Empty() {
		return Keep
	}
	comps := splitPath(path)
	reinclude := false
	for i := len(m.patterns) - 1; i >= 0; i-- {
		p := &m.patterns[i]
		matched, live := p.walk(comps)
		if matched {
			switch {
			case p.negated:
				return Keep
			case isDir && reinclude:
				return Descend
			}
			return Skip
		}
		if live && p.negated {
			reinclude = true
		}
	}
	return Keep
}

// childMay reports whether some descendant of dirPath could have Match ==
// want. Patterns are taken from the last: the first one that matches
// dirPath itself decides every descendant no later pattern decided; before
// that, any pattern that could match a descendant with the wanted outcome
// answers yes.
func (m *Matcher) childMay(dirPath string, want bool) bool {
	if m.Empty() {
		return !want
	}
	comps := splitPath(dirPath)
	for i := len(m.patterns) - 1; i >= 0; i-- {
		p := &m.patterns[i]
		matched, live := p.walk(comps)
		if matched {
			return !p.negated == want
		}
		if live && !p.negated == want {
			return true
		}
	}
	return !want
}
