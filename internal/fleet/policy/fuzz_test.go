package policy

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzVerify: Verify never panics on any input, and whatever it accepts is
// a valid policy for the client asked for, which signs and verifies back
// to itself (with the fixed test key, anything accepted is a seed or a
// forgery).
func FuzzVerify(f *testing.F) {
	p := validPolicy()
	signed, err := Sign(testKey, p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	f.Add(bytes.TrimSuffix(signed, []byte("\n")))
	f.Add(flip(signed, 40))
	f.Add([]byte(`{"key":"","policy":"","sig":""}`))
	f.Add([]byte(`{"key":"x","policy":"e30=","sig":"AA=="}` + "\n"))
	f.Add(signRaw(f, testKey, []byte(`{"version":1}`)))
	f.Add(signRaw(f, testKey, []byte(`{"version":2,"x":1}`)))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Verify(in, testPub(), p.Client, 0)
		if err != nil {
			if got != nil {
				t.Fatal("a policy returned with an error")
			}
			return
		}
		if got.Client != p.Client || got.Validate() != nil {
			t.Fatalf("accepted %+v", got)
		}
		again, err := Verify(mustSign(t, got), testPub(), p.Client, got.Generation)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("re-signed: %v\n%+v\n%+v", err, again, got)
		}
	})
}

// FuzzDecode: the decoder behind the signature never panics; what it
// accepts is valid, re-encodes to a document it decodes the same, and
// verifies once signed.
func FuzzDecode(f *testing.F) {
	f.Add(marshal(f, validPolicy()))
	f.Add(marshal(f, &Policy{Version: 1, Client: "a", Generation: 1}))
	f.Add([]byte(`{"version":1,"client":"a","generation":1,"issued":"2026-01-01T00:00:00Z","repositories":null,"report_file_names":false}`))
	f.Add([]byte(`{"version":1,"client":"a","generation":1,"issued":"2026-01-01T00:00:00Z","repositories":[{"name":"r","paths":["/"],"schedule":"@daily","jitter":"1h","retry":{"interval":"1m","factor":1.5,"attempts":2},"keep":{"last":1,"within":"2d"}}],"report_file_names":false} `))
	f.Add([]byte(`{"version":1,"Client":"a"}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := decode(doc)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("decode accepted an invalid policy: %v", err)
		}
		again, err := decode(marshal(t, p))
		if err != nil || !reflect.DeepEqual(again, p) {
			t.Fatalf("re-encoded: %v\n%+v\n%+v", err, again, p)
		}
		if _, err := Verify(signRaw(t, testKey, doc), testPub(), p.Client, p.Generation); err != nil {
			t.Fatalf("decoded, but refused once signed: %v", err)
		}
	})
}
