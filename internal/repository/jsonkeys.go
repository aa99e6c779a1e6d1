package repository

import (
	"bytes"
	"errors"
	"fmt"
)

// JSON limits of checkJSONKeys: far above what the format's objects use
// (a tree node has 22 fields, nested 5 deep), low enough that a hostile
// object cannot make the duplicate search quadratic in its size.
const (
	maxJSONKeys  = 64
	maxJSONDepth = 16
)

// checkJSONKeys rejects JSON in which an object repeats a key or spells
// one other than as the format writes it: lowercase ASCII letters and
// '_', no escapes. encoding/json keeps the last of two duplicates and
// matches field names case-insensitively, with Unicode folding ("Name"
// and "ſize" for "name" and "size"), so without this check one object
// could be written many ways. It only looks at keys (and, with value set,
// at string values): the decoder that follows checks the syntax, and on
// JSON that is not valid this check may pass or fail.
//
// value, if not nil, is called for every string value of an object member
// with the depth of that object (1 for the outermost), the member's key
// and the raw string between its quotes.
func checkJSONKeys(b []byte, value func(depth int, key, raw []byte) error) error {
	s := keyScan{value: value}
	s.stack = s.stackBuf[:0]
	for i := 0; i < len(b); i++ {
		if !jsonStructural[b[i]] {
			continue
		}
		var err error
		switch b[i] {
		case '"':
			end := stringEnd(b, i+1)
			if end < 0 {
				return errors.New("unterminated string")
			}
			err = s.str(b[i+1 : end])
			i = end
		case '{', '[':
			err = s.open(b[i] == '{')
		case '}', ']':
			err = s.close()
		case ',':
			if n := len(s.stack); n > 0 && s.stack[n-1].object {
				s.stack[n-1].wantKey = true
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// keyScan is checkJSONKeys's state: the open objects and arrays, and the
// keys of the open objects.
type keyScan struct {
	stackBuf [maxJSONDepth]keyFrame
	stack    []keyFrame
	keys     [][]byte
	value    func(depth int, key, raw []byte) error
}

type keyFrame struct {
	object  bool
	wantKey bool
	keys    int    // start of this object's keys in keyScan.keys
	seen    uint64 // a bit per key hash: most keys need no search
	member  []byte // the key whose value comes next, until it starts
}

func (s *keyScan) str(v []byte) error {
	n := len(s.stack)
	if n == 0 {
		return nil
	}
	top := &s.stack[n-1]
	if !top.object {
		return nil
	}
	if !top.wantKey {
		if top.member != nil && s.value != nil {
			if err := s.value(n, top.member, v); err != nil {
				return err
			}
		}
		top.member = nil
		return nil
	}
	bit := keyBit(v)
	if err := checkKey(v, s.keys[top.keys:], top.seen&bit != 0); err != nil {
		return err
	}
	top.seen |= bit
	s.keys = append(s.keys, v)
	top.wantKey, top.member = false, v
	return nil
}

func (s *keyScan) open(object bool) error {
	if len(s.stack) == maxJSONDepth {
		return fmt.Errorf("JSON nested deeper than %d", maxJSONDepth)
	}
	if n := len(s.stack); n > 0 {
		s.stack[n-1].member = nil
	}
	s.stack = append(s.stack, keyFrame{object: object, wantKey: object, keys: len(s.keys)})
	return nil
}

func (s *keyScan) close() error {
	n := len(s.stack)
	if n == 0 {
		return errors.New("unbalanced JSON")
	}
	s.keys = s.keys[:s.stack[n-1].keys]
	s.stack = s.stack[:n-1]
	return nil
}

// jsonStructural marks the bytes checkJSONKeys acts on.
var jsonStructural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true, ',': true}

// stringEnd returns the index of the quote closing the JSON string whose
// content starts at b[i], or -1.
func stringEnd(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i
		case '\\':
			i++ // skip the escaped character
		}
	}
	return -1
}

// keyBit is a bit of a key's hash.
func keyBit(k []byte) uint64 {
	h := uint64(len(k))
	for _, c := range k {
		h = h*31 + uint64(c)
	}
	return 1 << (h % 64)
}

// checkKey checks one object key against the keys seen before it in the
// same object; maybeSeen is false when none of them has k's hash bit.
func checkKey(k []byte, seen [][]byte, maybeSeen bool) error {
	if len(k) == 0 {
		return errors.New("empty JSON key")
	}
	for _, c := range k {
		if (c < 'a' || c > 'z') && c != '_' {
			return fmt.Errorf("JSON key %.40q is not spelled as the format writes it", k)
		}
	}
	if len(seen) >= maxJSONKeys {
		return fmt.Errorf("JSON object with more than %d keys", maxJSONKeys)
	}
	if !maybeSeen {
		return nil
	}
	for _, s := range seen {
		if bytes.Equal(s, k) {
			return fmt.Errorf("duplicate JSON key %q", k)
		}
	}
	return nil
}
