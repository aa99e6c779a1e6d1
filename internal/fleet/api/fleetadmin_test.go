package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeUserAdd(t *testing.T) {
	t.Parallel()
	good := []string{
		`{"name":"alice","role":"admin"}`,
		`{"name":"op1","role":"operator","scope":["group:g1","client:web-1"]}`,
		`{"name":"aud","role":"auditor","ttl_seconds":3600}`,
	}
	for _, b := range good {
		if _, err := DecodeUserAdd([]byte(b)); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	bad := []string{
		``, `null`, `[]`, `{"name":"alice","role":"admin"} {}`, `{"name":"alice","role":"admin","extra":1}`,
		`{"name":"Alice","role":"admin"}`, `{"name":"a..b","role":"admin"}`, `{"name":"alice","role":"root"}`,
		`{"name":"alice","role":"admin","scope":["group:g1"]}`, `{"name":"op","role":"operator"}`,
		`{"name":"op","role":"operator","scope":["group:"]}`, `{"name":"op","role":"operator","scope":["host:x"]}`,
		`{"name":"op","role":"auditor","ttl_seconds":-1}`, `{"name":"op","role":"auditor","ttl_seconds":99999999}`,
	}
	for _, b := range bad {
		if _, err := DecodeUserAdd([]byte(b)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted or wrong error: %v", b, err)
		}
	}
}

func TestDecodePolicySettings(t *testing.T) {
	t.Parallel()
	s, err := DecodePolicySettings([]byte(`{"paths":["/etc"],"schedule":"@daily","jitter":"90s","keep_daily":7}`))
	if err != nil || s.Jitter == nil || s.Jitter.D().Seconds() != 90 || *s.KeepDaily != 7 || s.Window != nil {
		t.Fatalf("%+v %v", s, err)
	}
	for _, b := range []string{`{"paths":"/etc"}`, `{"jitter":"-5s"}`, `{"jitter":"1.5s"}`, `{"schedule":1}`, `{"unknown":true}`, `{} x`} {
		if _, err := DecodePolicySettings([]byte(b)); err == nil {
			t.Errorf("%s accepted", b)
		}
	}
}

func TestDecodePolicySet(t *testing.T) {
	t.Parallel()
	s, err := DecodePolicySet([]byte(`{"schedule":"@daily","location":"/srv/r","read_data_subset":"5%","unset":["keep_daily","window"]}`))
	if err != nil || *s.Schedule != "@daily" || *s.Location != "/srv/r" || *s.ReadDataSubset != "5%" || len(s.Unset) != 2 {
		t.Fatalf("%+v %v", s, err)
	}
	for b, want := range map[string]string{
		`{"unset":["keep_forever"]}`:          "keep_forever",
		`{"unset":["window","window"]}`:       "twice",
		`{"window":"Sat","unset":["window"]}`: "both set and unset",
		`{"unset":"window"}`:                  "cannot unmarshal",
		`{"unset":["window"],"unknown":1}`:    "unknown",
	} {
		if _, err := DecodePolicySet([]byte(b)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrInvalid naming %q", b, err, want)
		}
	}
	if names := SettingNames(); len(names) != 23 || names[0] != "paths" || names[22] != "read_data_subset" {
		t.Fatalf("setting names %v", names)
	}
}

// Every admin decoder takes any bytes without panicking, and what it
// accepts survives encoding and decoding again.
func FuzzAdminDecoders(f *testing.F) {
	for _, s := range []string{
		`{"name":"op1","role":"operator","scope":["group:g1"]}`, `{"name":"g1"}`, `{"clients":["web1","web2"]}`,
		`{"paths":["/etc"],"schedule":"@daily","retry_backoff":2,"grace":"1h"}`, `{"public_key":"age1x"}`, `{}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		again := func(v any, dec func([]byte) error) {
			enc, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("encode %+v: %v", v, err)
			}
			if err := dec(enc); err != nil {
				t.Fatalf("%s decoded, but its encoding %s does not: %v", b, enc, err)
			}
		}
		if u, err := DecodeUserAdd(b); err == nil {
			again(u, func(x []byte) error { _, err := DecodeUserAdd(x); return err })
		}
		if g, err := DecodeGroupAdd(b); err == nil {
			again(g, func(x []byte) error { _, err := DecodeGroupAdd(x); return err })
		}
		if g, err := DecodeGroupAssign(b); err == nil {
			again(g, func(x []byte) error { _, err := DecodeGroupAssign(x); return err })
		}
		if s, err := DecodePolicySettings(b); err == nil {
			again(s, func(x []byte) error { _, err := DecodePolicySettings(x); return err })
		}
		if s, err := DecodePolicySet(b); err == nil {
			again(s, func(x []byte) error { _, err := DecodePolicySet(x); return err })
		}
		if e, err := DecodeEscrowSet(b); err == nil {
			again(e, func(x []byte) error { _, err := DecodeEscrowSet(x); return err })
		}
	})
}
