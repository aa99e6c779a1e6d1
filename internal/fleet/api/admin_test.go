package api

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeRunNow(t *testing.T) {
	t.Parallel()
	r, err := DecodeRunNow([]byte(`{"client":"web1","kind":"check","read_data_subset":"10%"}`))
	if err != nil || r.Client != "web1" || r.Kind != KindCheck || r.ReadDataSubset != "10%" {
		t.Fatalf("%+v, %v", r, err)
	}
	for _, bad := range []string{
		``, `{}`, `{"client":"web1","kind":"restore"}`, `{"client":"web1","kind":"backup","read_data_subset":"1%"}`,
		`{"client":"web1","kind":"backup","repository":"A B"}`, `{"client":"web1","kind":"backup","extra":1}`,
		`{"client":"web1","kind":"backup"} {}`, `{"client":"` + strings.Repeat("a", 100) + `","kind":"backup"}`,
	} {
		if _, err := DecodeRunNow([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeRunNow(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestDecodeRestoreOrder(t *testing.T) {
	t.Parallel()
	r, err := DecodeRestoreOrder([]byte(`{"client":"web1","snapshot":"latest","target":"/var/restore/a","include":["/etc"]}`))
	if err != nil || r.Client != "web1" || r.Snapshot != "latest" || r.Target != "/var/restore/a" || len(r.Include) != 1 {
		t.Fatalf("%+v, %v", r, err)
	}
	for _, bad := range []string{
		`{"client":"web1","snapshot":"latest","target":"relative"}`, `{"client":"web1","target":"/x"}`,
		`{"client":"web1","snapshot":"latest","target":"/x","bogus":true}`, `{"client":"web1","repository":"..","snapshot":"latest","target":"/x"}`,
	} {
		if _, err := DecodeRestoreOrder([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("DecodeRestoreOrder(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// Whatever the administration decoders accept encodes and decodes again to
// the same value.
func FuzzDecodeAdmin(f *testing.F) {
	f.Add([]byte(`{"client":"web1","kind":"check","read_data_subset":"10%"}`))
	f.Add([]byte(`{"client":"web1","repository":"main","snapshot":"latest","target":"/var/restore/a","include":["/etc"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := DecodeRunNow(data); err == nil {
			b, _ := json.Marshal(r)
			again, err := DecodeRunNow(b)
			if err != nil || !reflect.DeepEqual(r, again) {
				t.Fatalf("run-now round trip: %+v, %+v, %v", r, again, err)
			}
		}
		if r, err := DecodeRestoreOrder(data); err == nil {
			b, _ := json.Marshal(r)
			again, err := DecodeRestoreOrder(b)
			if err != nil || !reflect.DeepEqual(r, again) {
				t.Fatalf("restore round trip: %+v, %+v, %v", r, again, err)
			}
		}
	})
}
