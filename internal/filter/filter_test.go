package filter

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func mustNew(t testing.TB, pats ...string) *Matcher {
	t.Helper()
	m, err := New(pats)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pats []string
		yes  []string
		no   []string
	}{
		{[]string{"*.go"},
			[]string{"a.go", "/x/y/a.go", "x/.go", "/a.go/inside"},
			[]string{"a.goo", "/a.go.txt", "/x/ago", "/"}},
		{[]string{"foo"},
			[]string{"foo", "/foo", "/a/foo", "/a/foo/b/c", "a/b/foo"},
			[]string{"/foobar", "/afoo", "/a/fo", "/Foo"}},
		{[]string{"/home/*/.cache"},
			[]string{"/home/u/.cache", "home/u/.cache", "/home/u/.cache/x/y"},
			[]string{"/x/home/u/.cache", "/home/.cache", "/home/u/v/.cache", "/home/u/.cachex"}},
		{[]string{"foo/bar"},
			[]string{"/foo/bar", "/x/foo/bar", "/x/foo/bar/baz"},
			[]string{"/foo/x/bar", "/foo", "/bar"}},
		{[]string{"/a/**/b"},
			[]string{"/a/b", "/a/x/b", "/a/x/y/z/b", "/a/b/c"},
			[]string{"/b", "/x/a/b", "/a/xb", "/a/x/bb"}},
		{[]string{"**/b"},
			[]string{"/b", "/x/b", "/x/y/b/c"},
			[]string{"/bx", "/x/by"}},
		{[]string{"/a/**"},
			[]string{"/a", "/a/b", "/a/b/c"},
			[]string{"/b/a", "/ab"}},
		{[]string{"/a/**/**/b"},
			[]string{"/a/b", "/a/x/b"},
			[]string{"/a"}},
		{[]string{"a**b"}, // ** inside a component is a plain *
			[]string{"/ab", "/axxb"},
			[]string{"/a/b", "/a/x/b"}},
		{[]string{"f?o"},
			[]string{"/foo", "/fäo", "/f-o"},
			[]string{"/fo", "/fooo", "/f/o"}},
		{[]string{"[abc]x", "[!0-9]y", "[^q]z", "[]]w", "[!]]v", "[a-]u"},
			[]string{"/ax", "/cx", "/ay", "/az", "/]w", "/xv", "/-u", "/au"},
			[]string{"/dx", "/1y", "/qz", "/]v", "/bu", "/x"}},
		{[]string{`\*`, `a\?`, `\[x]`, `\!bang`},
			[]string{"/*", "/a?", "/[x]", "/!bang"},
			[]string{"/x", "/ab", "/x]", "/bang"}},
		{[]string{"/data/", "!/data/keep"},
			[]string{"/data", "/data/x", "/data/keeper", "/data/x/keep"},
			[]string{"/data/keep", "/data/keep/deep", "/other"}},
		{[]string{"*.log", "!important.log", "/var/log/important.log"},
			[]string{"/a.log", "/var/log/important.log"},
			[]string{"/x/important.log", "/a.txt"}},
		{[]string{"!*.log"}, nil, []string{"/a.log", "/b"}},
		{[]string{"./a//b/"},
			[]string{"/x/a/b"},
			[]string{"/x/ab"}},
		{[]string{"**"},
			[]string{"/", "/a", "a/b/c"},
			nil},
		{[]string{"ümlaut", "日本*"},
			[]string{"/x/ümlaut", "/日本語"},
			[]string{"/umlaut", "/本日"}},
	}
	for _, c := range cases {
		m := mustNew(t, c.pats...)
		for _, p := range c.yes {
			if !m.Match(p) {
				t.Errorf("%q should match %q", c.pats, p)
			}
		}
		for _, p := range c.no {
			if m.Match(p) {
				t.Errorf("%q should not match %q", c.pats, p)
			}
		}
	}
}

func TestBadPatterns(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", "!", "/", "!/", "./", "//", "a/../b", "..", "[abc", "a[", "[!", "[]", `a\`, `[a\`, "[z-a]", "a/[/]"} {
		_, err := New([]string{"ok", p})
		if !errors.Is(err, ErrBadPattern) {
			t.Errorf("New(%q): %v, want ErrBadPattern", p, err)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", p)) {
			t.Errorf("error does not quote the pattern: %v", err)
		}
	}
}

func TestZeroAndNilMatcher(t *testing.T) {
	t.Parallel()
	var nilM *Matcher
	for _, m := range []*Matcher{nilM, {}, mustNew(t)} {
		if m.Match("/a") || m.ChildMayMatch("/a") || !m.ChildMayNotMatch("/a") || !m.Empty() || len(m.Patterns()) != 0 {
			t.Errorf("empty matcher %v misbehaves", m)
		}
	}
	m := mustNew(t, "a", "!b")
	if m.Empty() || strings.Join(m.Patterns(), ",") != "a,!b" {
		t.Errorf("Patterns = %v", m.Patterns())
	}
}

func TestChildMayMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pats []string
		dir  string
		may  bool
	}{
		{[]string{"/home/u/docs"}, "/", true},
		{[]string{"/home/u/docs"}, "/home", true},
		{[]string{"/home/u/docs"}, "/home/u", true},
		{[]string{"/home/u/docs"}, "/home/u/docs", true},
		{[]string{"/home/u/docs"}, "/home/u/docs/x", true},
		{[]string{"/home/u/docs"}, "/var", false},
		{[]string{"/home/u/docs"}, "/home/v", false},
		{[]string{"/home/u/docs"}, "/home/u/music", false},
		{[]string{"/a/*/c"}, "/a/b", true},
		{[]string{"/a/*/c"}, "/a/b/d", false},
		{[]string{"*.go"}, "/any/where", true},
		{[]string{"/a/**/z"}, "/a/b/c/d", true},
		{[]string{"/a/**/z"}, "/b", false},
		{[]string{"/a", "!/a"}, "/a", false},
		{[]string{"/a", "!/a/b"}, "/a", true},
		{[]string{"!/a", "/a/b"}, "/a", true},
		{[]string{"!/a/b", "/a"}, "/a", true},
		{[]string{"/x", "!/a/b"}, "/a", false},
	}
	for _, c := range cases {
		m := mustNew(t, c.pats...)
		if got := m.ChildMayMatch(c.dir); got != c.may {
			t.Errorf("%q ChildMayMatch(%q) = %v, want %v", c.pats, c.dir, got, c.may)
		}
	}
}

func TestChildMayNotMatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pats []string
		dir  string
		may  bool
	}{
		{[]string{"/cache"}, "/cache", false},     // excluded wholesale: skip reading it
		{[]string{"/cache"}, "/cache/sub", false}, // below an excluded dir
		{[]string{"/cache", "!/cache/keep"}, "/cache", true},
		{[]string{"/cache", "!keep"}, "/cache", true},
		{[]string{"/cache", "!/other"}, "/cache", false},
		{[]string{"!/cache/keep", "/cache"}, "/cache", false}, // the later pattern wins
		{[]string{"/cache"}, "/home", true},
		{[]string{"**"}, "/home", false},
	}
	for _, c := range cases {
		m := mustNew(t, c.pats...)
		if got := m.ChildMayNotMatch(c.dir); got != c.may {
			t.Errorf("%q ChildMayNotMatch(%q) = %v, want %v", c.pats, c.dir, got, c.may)
		}
	}
}

func TestExcludeAction(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pats  []string
		path  string
		isDir bool
		want  Action
	}{
		{nil, "/cache", true, Keep},
		{[]string{"/cache"}, "/cache", true, Skip},
		{[]string{"/cache"}, "/home", true, Keep},
		{[]string{"/cache", "!/cache/keep"}, "/cache", true, Descend},
		{[]string{"/cache", "!/cache/keep"}, "/cache", false, Skip}, // a file has nothing below it
		{[]string{"/cache", "!/cache/keep"}, "/cache/keep", true, Keep},
		{[]string{"/cache", "!/cache/keep"}, "/cache/keep/deep", false, Keep},
		{[]string{"/cache", "!/cache/keep"}, "/cache/other", true, Skip},
		{[]string{"/cache", "!/cache/keep"}, "/cache/other", false, Skip},
		{[]string{"/cache", "!keep"}, "/cache/a/b", true, Descend}, // "keep" may be anywhere below
		{[]string{"!/cache/keep", "/cache"}, "/cache", true, Skip}, // the later pattern wins
		{[]string{"/cache", "!/cache/keep", "/cache/keep/tmp"}, "/cache/keep/tmp", true, Skip},
		{[]string{"/cache", "!/cache/*/keep"}, "/cache/x", true, Descend},
		{[]string{"*.tmp", "!/a/b.tmp"}, "/a/b.tmp", false, Keep},
	}
	for _, c := range cases {
		m := mustNew(t, c.pats...)
		if got := m.ExcludeAction(c.path, c.isDir); got != c.want {
			t.Errorf("%q ExcludeAction(%q, dir %v) = %v, want %v", c.pats, c.path, c.isDir, got, c.want)
		}
	}
	if Action(7).String() != "action(7)" || Descend.String() != "descend" {
		t.Error("Action.String")
	}
}

// TestExcludeActionAgrees: ExcludeAction is Match and ChildMayNotMatch in
// one pass, on random pattern lists with negations; and a directory it
// skips holds nothing that Match leaves out (nothing re-included is lost).
func TestExcludeActionAgrees(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(7, 8)) // #nosec G404 -- reproducible test inputs, not secrets
	var seen [3]int
	for i := 0; i < 2000; i++ {
		var pats []string
		for n := 1 + r.IntN(4); n > 0; n-- {
			p := randPattern(r)
			if r.IntN(3) == 0 {
				p = "!" + p
			}
			pats = append(pats, p)
		}
		m := mustNew(t, pats...)
		path := randPath(r, 3)
		for _, isDir := range []bool{false, true} {
			got := m.ExcludeAction(path, isDir)
			want := Keep
			if m.Match(path) {
				want = Skip
				if isDir && m.ChildMayNotMatch(path) {
					want = Descend
				}
			}
			if got != want {
				t.Fatalf("%q ExcludeAction(%q, %v) = %v; Match and ChildMayNotMatch say %v", pats, path, isDir, got, want)
			}
			seen[got]++
			if got == Skip && isDir {
				for _, d := range descendants(path, 2) {
					if !m.Match(d) {
						t.Fatalf("%q: %q skipped but %q below it is re-included", pats, path, d)
					}
				}
			}
		}
	}
	for a, n := range seen {
		if n < 50 {
			t.Errorf("action %v chosen only %d times: the test explores little", Action(a), n)
		}
	}
}

// refRegexp translates a valid pattern into an equivalent regular
// expression over "/c1/c2/.../cn", independently of the NFA matcher.
func refRegexp(t testing.TB, pat string) *regexp.Regexp {
	t.Helper()
	p, err := compile(pat)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(`^`)
	for _, pt := range p.parts {
		switch pt.kind {
		case partDoubleStar:
			b.WriteString(`(?:/[^/]+)*`)
		case partLiteral:
			b.WriteString("/" + regexp.QuoteMeta(pt.lit))
		case partGlob:
			b.WriteString("/")
			for _, tok := range pt.toks {
				switch tok.kind {
				case tokChar:
					b.WriteString(regexp.QuoteMeta(tok.char))
				case tokAny:
					b.WriteString(`[^/]`)
				case tokStar:
					b.WriteString(`[^/]*`)
				case tokClass:
					if tok.negated {
						b.WriteString(`[^/`)
					} else {
						b.WriteString(`(?:[`)
					}
					for _, r := range tok.ranges {
						fmt.Fprintf(&b, `\x{%x}-\x{%x}`, r.lo, r.hi)
					}
					if tok.negated {
						b.WriteString(`]`)
					} else {
						b.WriteString(`]`)
						b.WriteString(`)`)
					}
				}
			}
		}
	}
	// A match of a directory covers everything below it.
	b.WriteString(`(?:/.*)?$`)
	re, err := regexp.Compile(`(?s)` + b.String())
	if err != nil {
		t.Fatalf("reference for %q: %v", pat, err)
	}
	return re
}

func refMatch(re *regexp.Regexp, path string) bool {
	comps := splitPath(path)
	if len(comps) == 0 {
		return re.MatchString("") // only an all-"**" pattern matches the root
	}
	return re.MatchString("/" + strings.Join(comps, "/"))
}

var (
	genParts = []string{"a", "b", "ab", "*", "?", "a*", "*b", "[ab]", "[!a]", "**", "?b", "a?*"}
	genNames = []string{"a", "b", "ab", "ba", "aab", "c", "bb"}
)

func randPattern(r *rand.Rand) string {
	var parts []string
	for n := 1 + r.IntN(4); n > 0; n-- {
		parts = append(parts, genParts[r.IntN(len(genParts))])
	}
	p := strings.Join(parts, "/")
	if r.IntN(2) == 0 {
		p = "/" + p
	}
	if r.IntN(5) == 0 {
		p += "/"
	}
	return p
}

func randPath(r *rand.Rand, maxDepth int) string {
	var comps []string
	for n := r.IntN(maxDepth + 1); n > 0; n-- {
		comps = append(comps, genNames[r.IntN(len(genNames))])
	}
	return "/" + strings.Join(comps, "/")
}

// TestMatchAgreesWithReference compares the matcher with the regular
// expression translation on random patterns and paths.
func TestMatchAgreesWithReference(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2)) // #nosec G404 -- reproducible test inputs, not secrets
	for i := 0; i < 3000; i++ {
		pat := randPattern(r)
		m := mustNew(t, pat)
		re := refRegexp(t, pat)
		for j := 0; j < 20; j++ {
			path := randPath(r, 5)
			if got, want := m.Match(path), refMatch(re, path); got != want {
				t.Fatalf("pattern %q path %q: Match = %v, reference = %v", pat, path, got, want)
			}
		}
	}
}

// descendants lists every path below dir built from genNames, to depth.
func descendants(dir string, depth int) []string {
	if depth == 0 {
		return nil
	}
	var out []string
	for _, n := range genNames {
		p := strings.TrimSuffix(dir, "/") + "/" + n
		out = append(out, p)
		out = append(out, descendants(p, depth-1)...)
	}
	return out
}

// TestChildMayIsSound checks on random pattern lists with negations that
// ChildMayMatch and ChildMayNotMatch never prune a directory holding a path
// with the outcome asked for.
func TestChildMayIsSound(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4)) // #nosec G404 -- reproducible test inputs, not secrets
	pruned := 0
	for i := 0; i < 1500; i++ {
		var pats []string
		for n := 1 + r.IntN(3); n > 0; n-- {
			p := randPattern(r)
			if r.IntN(3) == 0 {
				p = "!" + p
			}
			pats = append(pats, p)
		}
		m := mustNew(t, pats...)
		dir := randPath(r, 3)
		mayMatch, mayNot := m.ChildMayMatch(dir), m.ChildMayNotMatch(dir)
		for _, d := range descendants(dir, 3) {
			got := m.Match(d)
			if got && !mayMatch {
				t.Fatalf("%q: ChildMayMatch(%q) = false but %q matches", pats, dir, d)
			}
			if !got && !mayNot {
				t.Fatalf("%q: ChildMayNotMatch(%q) = false but %q does not match", pats, dir, d)
			}
		}
		if !mayMatch || !mayNot {
			pruned++
		}
	}
	if pruned < 100 {
		t.Errorf("only %d of 1500 directories could be pruned: ChildMay* is uselessly conservative", pruned)
	}
}

// checkProperties asserts the invariants every pattern must satisfy.
func checkProperties(t *testing.T, pat, path string) {
	m, err := New([]string{pat})
	if err != nil {
		if !errors.Is(err, ErrBadPattern) {
			t.Fatalf("New(%q): error %v does not wrap ErrBadPattern", pat, err)
		}
		return
	}
	got := m.Match(path)
	body := strings.TrimPrefix(pat, "!")
	negated := body != pat

	// Unanchored means "**/" in front; a leading "/**/" is the same again.
	if !strings.HasPrefix(body, "/") {
		for _, alt := range []string{"**/" + body, "/**/" + body} {
			if negated {
				alt = "!" + alt
			}
			if am := mustNew(t, alt); am.Match(path) != got {
				t.Fatalf("%q and %q disagree on %q", pat, alt, path)
			}
		}
	}
	// A "**" component may be doubled without changing anything.
	if strings.Contains(body, "/**/") {
		alt := strings.Replace(pat, "/**/", "/**/**/", 1)
		if am := mustNew(t, alt); am.Match(path) != got {
			t.Fatalf("%q and %q disagree on %q", pat, alt, path)
		}
	}
	// A match covers everything below; the parent of a match may match.
	if got {
		if !m.Match(strings.TrimSuffix(path, "/") + "/child") {
			t.Fatalf("%q matches %q but not its child", pat, path)
		}
	}
	if a := m.ExcludeAction(path, true); (a == Keep) == got || (a == Descend && !m.ChildMayNotMatch(path)) {
		t.Fatalf("%q: ExcludeAction(%q) = %v, Match = %v", pat, path, a, got)
	}
	child := strings.TrimSuffix(path, "/") + "/x"
	if m.Match(child) && !got && !m.ChildMayMatch(path) {
		t.Fatalf("%q: ChildMayMatch(%q) = false but %q matches", pat, path, child)
	}
	// Negation: a pattern followed by its negation matches nothing.
	if !negated {
		if mustNew(t, pat, "!"+pat).Match(path) {
			t.Fatalf("%q then its negation still matches %q", pat, path)
		}
		if mustNew(t, "!"+pat, pat).Match(path) != got {
			t.Fatalf("a leading negation changed the result of %q on %q", pat, path)
		}
	} else if got {
		t.Fatalf("lone negated pattern %q matched %q", pat, path)
	}
	// Independent reference on valid UTF-8 (regexp reads bad bytes as U+FFFD).
	if utf8.ValidString(pat) && utf8.ValidString(path) && !negated {
		if want := refMatch(refRegexp(t, pat), path); want != got {
			t.Fatalf("pattern %q path %q: Match = %v, reference = %v", pat, path, got, want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	seeds := [][2]string{
		{"*.go", "/src/a.go"}, {"/a/**/b", "/a/x/y/b"}, {"foo", "/x/foo/bar"},
		{"!a", "/a"}, {"[!a-c]x", "/dx"}, {"[]]", "/]"}, {`\*`, "/*"},
		{"a/**", "/a"}, {"**", "/"}, {"/[z-a]", "/a"}, {"[", "/["},
		{"?", "/\xff"}, {"\xff", "/\xff"}, {"[\xff]", "/\xfe"}, {"a*b*c*d", "/aXbYcZd"},
		{"**/**/x", "x"}, {"./a//b/", "a/b"}, {"a/../b", "/b"},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pat, path string) {
		if len(pat) > 200 || len(path) > 400 {
			return
		}
		checkProperties(t, pat, path)
	})
}

func TestReadPatternFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "excludes")
	content := "# comment\n\n*.tmp   \n  \n/home/*/.cache\r\n!keep\\ \n\\#literal\n\t\nname\\\\  \n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPatternFile(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"*.tmp", "/home/*/.cache", `!keep\ `, `\#literal`, `name\\`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	m := mustNew(t, got...)
	for path, yes := range map[string]bool{"/a/b.tmp": true, "/#literal": true, "/home/u/.cache/x": true, `/x/name\`: true, "/#comment": false} {
		if m.Match(path) != yes {
			t.Errorf("Match(%q) = %v", path, !yes)
		}
	}

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("ok\n# fine\n[oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ReadPatternFile(bad)
	if !errors.Is(err, ErrBadPattern) || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v", err)
	}
	if _, err := ReadPatternFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	long := filepath.Join(dir, "long")
	if err := os.WriteFile(long, []byte(strings.Repeat("a", maxPatternLine+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPatternFile(long); err == nil {
		t.Error("over-long line accepted")
	}
}

func FuzzParsePatterns(f *testing.F) {
	for _, s := range []string{"# c\n*.go\n", "a \\ \nb\r\n", "\\#x\n!y\n", "[\n", "\x00\n\xff\n", "a\\\\ \t\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pats, err := ParsePatterns(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, p := range pats {
			if p == "" || strings.HasPrefix(p, "#") || strings.ContainsAny(p, "\n") {
				t.Fatalf("bad pattern %q from %q", p, s)
			}
			if _, err := New([]string{p}); err != nil {
				t.Fatalf("ParsePatterns returned %q which New refuses: %v", p, err)
			}
		}
	})
}

func TestIsCacheDir(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		content string
		want    bool
	}{
		"valid":     {CacheDirSignature + "\n# This file is a cache directory tag.\n", true},
		"exact":     {CacheDirSignature, true},
		"short":     {CacheDirSignature[:20], false},
		"wrong":     {strings.Replace(CacheDirSignature, "8a", "8b", 1), false},
		"empty":     {"", false},
		"lowercase": {strings.ToLower(CacheDirSignature), false},
	}
	for name, c := range cases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, CacheDirTagName), []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := IsCacheDir(dir)
		if err != nil || got != c.want {
			t.Errorf("%s: IsCacheDir = %v, %v; want %v", name, got, err, c.want)
		}
	}
	if got, err := IsCacheDir(t.TempDir()); got || err != nil {
		t.Errorf("no tag: %v, %v", got, err)
	}
	// A tag that is a directory or a symlink to a valid tag does not count.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, CacheDirTagName), 0o700); err != nil {
		t.Fatal(err)
	}
	if got, err := IsCacheDir(dir); got || err != nil {
		t.Errorf("tag directory: %v, %v", got, err)
	}
	real := t.TempDir()
	if err := os.WriteFile(filepath.Join(real, "tag"), []byte(CacheDirSignature), 0o600); err != nil {
		t.Fatal(err)
	}
	link := t.TempDir()
	if err := os.Symlink(filepath.Join(real, "tag"), filepath.Join(link, CacheDirTagName)); err != nil {
		t.Fatal(err)
	}
	if got, err := IsCacheDir(link); got || err != nil {
		t.Errorf("symlinked tag: %v, %v", got, err)
	}
	// A path that is not a directory is an error, not "no tag".
	file := filepath.Join(real, "tag")
	if _, err := IsCacheDir(file); err == nil {
		t.Error("IsCacheDir on a file returned no error")
	}
}

func TestHasMarker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".nobackup"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	for names, want := range map[string]bool{
		".nobackup":        true,
		"x,.nobackup":      true,
		"dangling":         true,
		"x":                false,
		"":                 false,
		".NOBACKUP,.nobak": false,
	} {
		var list []string
		if names != "" {
			list = strings.Split(names, ",")
		}
		got, err := HasMarker(dir, list)
		if err != nil || got != want {
			t.Errorf("HasMarker(%q) = %v, %v; want %v", names, got, err, want)
		}
	}
	for _, bad := range []string{"", "a/b", "..", ".", "a\x00"} {
		if _, err := HasMarker(dir, []string{bad}); err == nil {
			t.Errorf("marker name %q accepted", bad)
		}
	}
	if _, err := HasMarker(filepath.Join(dir, ".nobackup"), []string{"x"}); err == nil {
		t.Error("HasMarker on a file returned no error")
	}
}

func TestMatchedBy(t *testing.T) {
	t.Parallel()
	m := mustNew(t, "/home", "*.go", "!/home/x.go", "/etc")
	cases := map[string]int{
		"/home":          0,
		"/home/a.txt":    0,
		"/home/a.go":     1,
		"/home/x.go":     -1,
		"/etc/passwd":    3,
		"/var/y.go":      1,
		"/var/y.txt":     -1,
		"/homeward/file": -1,
	}
	for p, want := range cases {
		if got := m.MatchedBy(p); got != want {
			t.Errorf("MatchedBy(%q) = %d, want %d", p, got, want)
		}
		if m.Match(p) != (want >= 0) {
			t.Errorf("Match(%q) disagrees with MatchedBy", p)
		}
	}
	if m.Negated(1) || !m.Negated(2) {
		t.Error("Negated is wrong")
	}
	var nilM *Matcher
	if nilM.MatchedBy("/a") != -1 {
		t.Error("nil matcher matched")
	}
}
