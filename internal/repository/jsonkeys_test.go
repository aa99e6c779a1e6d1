package repository

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
)

// keysByTokens is checkJSONKeys's reference: it reports whether valid JSON
// b has a duplicate key or one that is not lowercase ASCII and '_', found
// with encoding/json's tokenizer.
func keysByTokens(b []byte) bool {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	type frame struct {
		object, wantKey bool
		keys            map[string]bool
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			top := stack[n-1]
			if k, isKey := tok.(string); isKey && top.wantKey {
				if k == "" || top.keys[k] {
					return false
				}
				for _, c := range []byte(k) {
					if (c < 'a' || c > 'z') && c != '_' {
						return false
					}
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
			if _, isDelim := tok.(json.Delim); !isDelim {
				top.wantKey = true // a scalar value; a nested one sets it on closing
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{object: true, wantKey: true, keys: map[string]bool{}})
		case json.Delim('['):
			stack = append(stack, &frame{})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			if n := len(stack); n > 0 && stack[n-1].object {
				stack[n-1].wantKey = true
			}
		}
	}
}

// FuzzCheckJSONKeys: what checkJSONKeys passes has, by encoding/json's own
// reading, no duplicate and no differently spelled key.
func FuzzCheckJSONKeys(f *testing.F) {
	for _, s := range []string{`{"a":1,"b":[{"c":"d"}]}`, `{"a":1,"a":2}`, `{"A":1}`, `{"a":"\"","b":{"a":1}}`, `[{"x":1},{"x":2}]`, `{"n\u0061me":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkJSONKeys(b, nil) != nil || !json.Valid(b) {
			return
		}
		if !keysByTokens(b) {
			t.Fatalf("checkJSONKeys passed %q, which has a duplicate or misspelled key", b)
		}
	})
}

func TestCheckJSONKeysBounds(t *testing.T) {
	t.Parallel()
	deep := bytes.Repeat([]byte("["), maxJSONDepth+1)
	if checkJSONKeys(deep, nil) == nil {
		t.Error("JSON nested too deeply passed")
	}
	var wide bytes.Buffer
	wide.WriteString("{")
	for i := range maxJSONKeys + 1 {
		if i > 0 {
			wide.WriteString(",")
		}
		wide.WriteString(`"k` + string(rune('a'+i/26)) + string(rune('a'+i%26)) + `":0`)
	}
	wide.WriteString("}")
	if checkJSONKeys(wide.Bytes(), nil) == nil {
		t.Error("object with too many keys passed")
	}
}
