package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateHandle(t *testing.T) {
	good := []Handle{
		{KindConfig, "config"},
		{KindData, "a"},
		{KindData, strings.Repeat("0", 128)},
		{KindIndex, "abc-def_0123456789"},
		{KindLocks, "-"},
	}
	for _, h := range good {
		if err := ValidateHandle(h); err != nil {
			t.Errorf("ValidateHandle(%q/%q) = %v", h.Kind, h.Name, err)
		}
	}
	bad := []Handle{
		{KindData, ""},
		{KindData, strings.Repeat("0", 129)},
		{KindData, ".."},
		{KindData, "a/b"},
		{KindData, "a\x00"},
		{KindData, "A"},
		{KindData, "a.b"},
		{KindData, "é"},
		{KindConfig, ""},
		{KindConfig, "other"},
		{Kind("x"), "a"},
		{Kind(""), "a"},
		{Kind("DATA"), "a"},
	}
	for _, h := range bad {
		if err := ValidateHandle(h); !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateHandle(%q/%q) = %v, want ErrInvalidName", h.Kind, h.Name, err)
		}
	}
}

func TestHandleString(t *testing.T) {
	if s := (Handle{KindConfig, "config"}).String(); s != "config" {
		t.Errorf("config handle = %q", s)
	}
	if s := (Handle{KindData, "ab"}).String(); s != "data/ab" {
		t.Errorf("data handle = %q", s)
	}
	for _, k := range Kinds {
		if !ValidKind(k) {
			t.Errorf("ValidKind(%q) = false", k)
		}
	}
}

// FuzzValidateHandle checks that every accepted name is safe as a single
// path component on any filesystem coffer stores to.
func FuzzValidateHandle(f *testing.F) {
	for _, s := range []string{"config", "abc", "../x", "a/b", "", "A", "\x00", strings.Repeat("z", 129)} {
		f.Add("data", s)
		f.Add("config", s)
	}
	f.Fuzz(func(t *testing.T, kind, name string) {
		h := Handle{Kind(kind), name}
		err := ValidateHandle(h)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("error %v does not wrap ErrInvalidName", err)
			}
			return
		}
		if !ValidKind(h.Kind) || name == "" || len(name) > 128 || name == "." || name == ".." ||
			strings.ContainsAny(name, "/\\\x00.") || strings.ToLower(name) != name {
			t.Fatalf("unsafe handle %q/%q accepted", kind, name)
		}
		if h.Kind == KindConfig && name != "config" {
			t.Fatalf("config handle named %q accepted", name)
		}
	})
}
