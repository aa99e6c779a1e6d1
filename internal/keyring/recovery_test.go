package keyring

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
	"testing/quick"
)

var recoveryForm = regexp.MustCompile(`^CFRK(-[0-9A-HJKMNP-TV-Z]{5}){11}$`)

func TestRecoveryKeyFormat(t *testing.T) {
	t.Parallel()
	rk, err := NewRecoveryKey()
	if err != nil {
		t.Fatal(err)
	}
	s := rk.String()
	if !recoveryForm.MatchString(s) {
		t.Fatalf("%q does not have the documented form", s)
	}
	if rk == (RecoveryKey{}) {
		t.Fatal("recovery key is all zero")
	}
	other, _ := NewRecoveryKey()
	if other == rk {
		t.Fatal("two recovery keys are equal")
	}
}

// Property: every key survives String and Parse, including the ways a
// person retypes it.
func TestRecoveryKeyRoundTripProperty(t *testing.T) {
	t.Parallel()
	retype := []func(string) string{
		func(s string) string { return s },
		strings.ToLower,
		func(s string) string { return strings.ReplaceAll(s, "-", " ") },
		func(s string) string { return strings.TrimPrefix(s, "CFRK-") },
		func(s string) string { return strings.ReplaceAll(s, "-", "") + "\n" },
		func(s string) string { return "  " + strings.ReplaceAll(s, "-", "\t") + "\r\n" },
		func(s string) string {
			return strings.NewReplacer("1", "l", "0", "O").Replace(s)
		},
		func(s string) string {
			return strings.NewReplacer("1", "I", "0", "o").Replace(strings.ToLower(s))
		},
	}
	prop := func(k [RecoveryKeySize]byte, which uint8) bool {
		rk := RecoveryKey(k)
		in := retype[int(which)%len(retype)](rk.String())
		got, err := ParseRecoveryKey(in)
		return err == nil && got == rk && recoveryForm.MatchString(rk.String())
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 2000}); err != nil {
		t.Fatal(err)
	}
}

// A single mistyped character is caught, by the checksum or the alphabet.
func TestRecoveryKeyTypoDetected(t *testing.T) {
	t.Parallel()
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	r := rand.New(rand.NewPCG(1, 2))
	for range 3 {
		var rk RecoveryKey
		for i := range rk {
			rk[i] = byte(r.Uint32())
		}
		s := rk.String()
		accepted := 0
		for i := len("CFRK-"); i < len(s); i++ {
			if s[i] == '-' {
				continue
			}
			for _, c := range []byte(alphabet) {
				if c == s[i] {
					continue
				}
				typo := s[:i] + string(c) + s[i+1:]
				if _, err := ParseRecoveryKey(typo); err == nil {
					accepted++
				} else if !errors.Is(err, ErrBadRecoveryKey) {
					t.Fatalf("typo error does not wrap ErrBadRecoveryKey: %v", err)
				}
			}
		}
		if accepted != 0 {
			t.Errorf("%d single-character typos accepted", accepted)
		}
	}
}

func TestRecoveryKeyErrors(t *testing.T) {
	t.Parallel()
	rk, _ := NewRecoveryKey()
	s := rk.String()
	flip := func(s string, i int) string {
		c := byte('0')
		if s[i] == '0' {
			c = '1'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	cases := map[string]struct {
		in, want string
	}{
		"empty":          {"", "0 key characters"},
		"short":          {s[:len(s)-6], "want 55"},
		"long":           {s + "-AAAAA", "want 55"},
		"bad char U":     {s[:6] + "U" + s[7:], "not a letter or digit"},
		"bad char punct": {s[:6] + "!" + s[7:], "not a letter or digit"},
		"unicode":        {s[:6] + "é" + s[8:], "not a letter or digit"},
		"way too long":   {strings.Repeat(s, 10), "too long"},
		"checksum":       {flip(s, 6), ""},
		"prefix wrong":   {"CFRX" + s[4:], "want 55"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseRecoveryKey(c.in)
			if !errors.Is(err, ErrBadRecoveryKey) {
				t.Fatalf("ParseRecoveryKey = %v, want ErrBadRecoveryKey", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			body := strings.ReplaceAll(s[5:], "-", "")
			if strings.Contains(err.Error(), body[:10]) {
				t.Errorf("error echoes the key: %v", err)
			}
		})
	}
}

func TestRecoveryKeyChecksumMessage(t *testing.T) {
	t.Parallel()
	var rk RecoveryKey
	s := rk.String()
	// Change a key character so that only the checksum can catch it.
	typo := s[:5] + "1" + s[6:]
	_, err := ParseRecoveryKey(typo)
	if !errors.Is(err, ErrBadRecoveryKey) || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("got %v, want a checksum error", err)
	}
}

func TestRecoveryKeyNonCanonicalLastChar(t *testing.T) {
	t.Parallel()
	var rk RecoveryKey
	s := rk.String()
	// The last character's low 3 bits are padding; set one.
	last := s[len(s)-1]
	idx := strings.IndexByte("0123456789ABCDEFGHJKMNPQRSTVWXYZ", last)
	alt := "0123456789ABCDEFGHJKMNPQRSTVWXYZ"[idx|1]
	_, err := ParseRecoveryKey(s[:len(s)-1] + string(alt))
	if !errors.Is(err, ErrBadRecoveryKey) || !strings.Contains(err.Error(), "last character") {
		t.Fatalf("non-canonical last character: %v", err)
	}
}
