package filter

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrBadPattern is wrapped by every error about a malformed pattern.
var ErrBadPattern = errors.New("malformed pattern")

// pattern is one compiled pattern: a sequence of path-component matchers.
type pattern struct {
	original string
	negated  bool
	parts    []part // an unanchored pattern starts with a doublestar part
}

type partKind uint8

const (
	partLiteral    partKind = iota // the component equals lit
	partGlob                       // the component matches toks
	partDoubleStar                 // any number of components, including none
)

type part struct {
	kind partKind
	lit  string
	toks []token
}

type tokKind uint8

const (
	tokChar  tokKind = iota // exactly the bytes of one character
	tokAny                  // ? : any one character
	tokStar                 // * : any run of characters
	tokClass                // [...] : one character in (or not in) ranges
)

type token struct {
	kind    tokKind
	char    string
	negated bool
	ranges  []runeRange
}

type runeRange struct{ lo, hi rune }

func badPattern(p, format string, args ...any) error {
	return fmt.Errorf("pattern %q: %w: %s", p, ErrBadPattern, fmt.Sprintf(format, args...))
}

// compile parses one pattern string.
func compile(s string) (pattern, error) {
	p := pattern{original: s}
	body := s
	if strings.HasPrefix(body, "!") {
		p.negated = true
		body = body[1:]
	}
	if body == "" {
		return p, badPattern(s, "empty pattern")
	}
	anchored := strings.HasPrefix(body, "/")
	if !anchored {
		p.parts = append(p.parts, part{kind: partDoubleStar})
	}
	components := 0
	for _, c := range strings.Split(body, "/") {
		switch c {
		case "", ".":
			continue // "a//b", "./a", trailing "/": paths carry no type
		case "..":
			return p, badPattern(s, `".." is not allowed`)
		case "**":
			components++
			if n := len(p.parts); n > 0 && p.parts[n-1].kind == partDoubleStar {
				continue
			}
			p.parts = append(p.parts, part{kind: partDoubleStar})
			continue
		}
		components++
		pt, err := compilePart(c)
		if err != nil {
			return p, badPattern(s, "%v", err)
		}
		p.parts = append(p.parts, pt)
	}
	if components == 0 {
		return p, badPattern(s, "no path component")
	}
	return p, nil
}

// compilePart parses one path component of a pattern.
func compilePart(c string) (part, error) {
	var toks []token
	literal := true
	var lit strings.Builder
	for i := 0; i < len(c); {
		switch c[i] {
		case '*':
			literal = false
			i++
			if len(toks) > 0 && toks[len(toks)-1].kind == tokStar {
				continue // "**" inside a component is just "*"
			}
			toks = append(toks, token{kind: tokStar})
		case '?':
			literal = false
			i++
			toks = append(toks, token{kind: tokAny})
		case '[':
			literal = false
			tok, n, err := parseClass(c[i:])
			if err != nil {
				return part{}, err
			}
			toks = append(toks, tok)
			i += n
		case '\\':
			if i+1 >= len(c) {
				return part{}, errors.New("trailing backslash")
			}
			_, size := utf8.DecodeRuneInString(c[i+1:])
			ch := c[i+1 : i+1+size]
			toks = append(toks, token{kind: tokChar, char: ch})
			lit.WriteString(ch)
			i += 1 + size
		default:
			_, size := utf8.DecodeRuneInString(c[i:])
			ch := c[i : i+size]
			toks = append(toks, token{kind: tokChar, char: ch})
			lit.WriteString(ch)
			i += size
		}
	}
	if literal {
		return part{kind: partLiteral, lit: lit.String()}, nil
	}
	return part{kind: partGlob, toks: toks}, nil
}

// parseClass parses "[...]" at the start of s and returns its length.
// A ']' right after '[' or '[!' is a member; '!' or '^' first negates.
func parseClass(s string) (token, int, error) {
	tok := token{kind: tokClass}
	i := 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		tok.negated = true
		i++
	}
	first := true
	for {
		if i >= len(s) {
			return tok, 0, errors.New("unterminated [")
		}
		if s[i] == ']' && !first {
			return tok, i + 1, nil
		}
		first = false
		lo, n, err := classChar(s[i:])
		if err != nil {
			return tok, 0, err
		}
		i += n
		hi := lo
		if i+1 < len(s) && s[i] == '-' && s[i+1] != ']' {
			hi, n, err = classChar(s[i+1:])
			if err != nil {
				return tok, 0, err
			}
			i += 1 + n
			if hi < lo {
				return tok, 0, fmt.Errorf("range %q-%q is reversed", lo, hi)
			}
		}
		tok.ranges = append(tok.ranges, runeRange{lo, hi})
	}
}

// classChar reads one (possibly escaped) character inside a class.
func classChar(s string) (rune, int, error) {
	if s[0] == '\\' {
		if len(s) < 2 {
			return 0, 0, errors.New("unterminated [")
		}
		r, size := utf8.DecodeRuneInString(s[1:])
		return r, 1 + size, nil
	}
	r, size := utf8.DecodeRuneInString(s)
	return r, size, nil
}

// matchPart reports whether one path component matches pt.
func matchPart(pt *part, name string) bool {
	switch pt.kind {
	case partLiteral:
		return pt.lit == name
	case partDoubleStar:
		return true
	}
	return matchTokens(pt.toks, name)
}

// matchTokens is the classic glob matcher: every token but '*' consumes
// exactly one character, so backtracking to the last star is enough.
func matchTokens(toks []token, name string) bool {
	ti, ni := 0, 0
	starTi, starNi := -1, 0
	for {
		if ti < len(toks) && toks[ti].kind == tokStar {
			starTi, starNi = ti, ni
			ti++
			continue
		}
		if ni == len(name) {
			if ti == len(toks) {
				return true
			}
		} else if ti < len(toks) {
			if n := matchOne(&toks[ti], name[ni:]); n > 0 {
				ti++
				ni += n
				continue
			}
		}
		// Mismatch: let the last star swallow one more character.
		if starTi < 0 || starNi >= len(name) {
			return false
		}
		_, size := utf8.DecodeRuneInString(name[starNi:])
		starNi += size
		ti, ni = starTi+1, starNi
	}
}

// matchOne returns how many bytes of s the single-character token t
// consumes, or 0 if it does not match. s is not empty.
func matchOne(t *token, s string) int {
	r, size := utf8.DecodeRuneInString(s)
	switch t.kind {
	case tokChar:
		if strings.HasPrefix(s, t.char) && len(t.char) == size {
			return size
		}
		return 0
	case tokAny:
		return size
	case tokClass:
		in := false
		for _, rg := range t.ranges {
			if rg.lo <= r && r <= rg.hi {
				in = true
				break
			}
		}
		if in != t.negated {
			return size
		}
	}
	return 0
}

// state is the set of pattern positions reachable after some components.
type state []bool

// start returns the positions reachable before any component is consumed.
func (p *pattern) start() state {
	s := make(state, len(p.parts)+1)
	s[0] = true
	p.closure(s)
	return s
}

// closure adds the positions reachable by letting "**" match nothing.
func (p *pattern) closure(s state) {
	for i, pt := range p.parts {
		if s[i] && pt.kind == partDoubleStar {
			s[i+1] = true
		}
	}
}

// step consumes one path component.
func (p *pattern) step(s state, name string) state {
	next := make(state, len(s))
	for i := range p.parts {
		if !s[i] {
			continue
		}
		pt := &p.parts[i]
		if pt.kind == partDoubleStar {
			next[i] = true
		} else if matchPart(pt, name) {
			next[i+1] = true
		}
	}
	p.closure(next)
	return next
}

func (s state) alive() bool {
	for _, b := range s[:len(s)-1] {
		if b {
			return true
		}
	}
	return false
}

func (s state) done() bool { return s[len(s)-1] }

// walk feeds comps to p. matched reports whether p matches the path
// (some prefix of it), live whether p could still match a longer path.
func (p *pattern) walk(comps []string) (matched, live bool) {
	s := p.start()
	if len(comps) == 0 {
		return s.done(), s.alive()
	}
	for _, c := range comps {
		s = p.step(s, c)
		if s.done() {
			return true, true
		}
		if !s.alive() {
			return false, false
		}
	}
	return false, s.alive()
}
