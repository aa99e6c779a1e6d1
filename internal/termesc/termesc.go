// Package termesc makes file names from snapshots safe to print on a
// terminal: non-printable characters are escaped as GNU `ls -b` does.
package termesc

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Name returns s with every byte that is not part of a printable character
// escaped as GNU `ls -b` (quoting style "escape") does, so that a name
// cannot move the cursor, recolour or clear the terminal, or print a fake
// line: \a \b \t \n \v \f \r as C escapes, a backslash as \\, other control
// characters, invalid UTF-8 and non-printable runes (such as the
// bidirectional overrides) byte by byte in three-digit octal (\033). Unlike
// `ls -b`, spaces are left as they are. Printable names come back
// unchanged, without allocating; escaped ones can be read back exactly.
func Name(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\' {
		i++
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == utf8.RuneError && size == 1, !unicode.IsPrint(r):
			for _, c := range []byte(s[i : i+size]) {
				writeByte(&b, c)
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// cEscapes are the control characters `ls -b` writes as C escapes.
var cEscapes = [...]string{'\a': `\a`, '\b': `\b`, '\t': `\t`, '\n': `\n`, '\v': `\v`, '\f': `\f`, '\r': `\r`}

func writeByte(b *strings.Builder, c byte) {
	if int(c) < len(cEscapes) && cEscapes[c] != "" {
		b.WriteString(cEscapes[c])
		return
	}
	b.WriteByte('\\')
	b.WriteByte('0' + c>>6)
	b.WriteByte('0' + c>>3&7)
	b.WriteByte('0' + c&7)
}
