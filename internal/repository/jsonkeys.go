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
// could be written many ways. It only looks at keys: the decoder that
// follows checks the syntax, and on JSON that is not valid this check
// may pass or fail.
func checkJSONKeys(b []byte) error {
	type frame struct {
		object  bool
		wantKey bool
		keys    int    // start of this object's keys in the keys stack
		seen    uint64 // a bit per key hash: most keys need no search
	}
	var stackBuf [maxJSONDepth]frame
	stack := stackBuf[:0]
	var keys [][]byte
	for i := 0; i < len(b); i++ {
		if !jsonStructural[b[i]] {
			continue
		}
		switch b[i] {
		case '"':
			end := stringEnd(b, i+1)
			if end < 0 {
				return errors.New("unterminated string")
			}
			if n := len(stack); n > 0 && stack[n-1].wantKey {
				top := &stack[n-1]
				k := b[i+1 : end]
				bit := keyBit(k)
				if err := checkKey(k, keys[top.keys:], top.seen&bit != 0); err != nil {
					return err
				}
				top.seen |= bit
				keys = append(keys, k)
				top.wantKey = false
			}
			i = end
		case '{', '[':
			if len(stack) == maxJSONDepth {
				return fmt.Errorf("JSON nested deeper than %d", maxJSONDepth)
			}
			stack = append(stack, frame{object: b[i] == '{', wantKey: b[i] == '{', keys: len(keys)})
		case '}', ']':
			if len(stack) == 0 {
				return errors.New("unbalanced JSON")
			}
			keys = keys[:stack[len(stack)-1].keys]
			stack = stack[:len(stack)-1]
		case ',':
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].wantKey = true
			}
		}
	}
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
