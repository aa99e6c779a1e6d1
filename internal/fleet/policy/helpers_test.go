package policy

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"
)

// testKey is a fixed key: the frozen fixture is signed with it.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, ed25519.SeedSize))

func testPub() ed25519.PublicKey { return testKey.Public().(ed25519.PublicKey) }

// validPolicy returns a policy using every field.
func validPolicy() *Policy {
	return &Policy{
		Version:    Version,
		Client:     "web-1.example",
		Generation: 7,
		Issued:     time.Date(2026, 12, 5, 10, 11, 12, 0, time.UTC),
		Repositories: []Repository{{
			Name:          "system",
			Location:      "coffer://backup.example:8443/system",
			Paths:         []string{"/etc", "/home", "/var/lib/app"},
			Excludes:      []string{"*.tmp", "/home/*/.cache"},
			ExcludeCaches: true,
			Schedule:      "Mon-Fri 08:00-18:00 every 1h",
			Window:        "Mon-Fri",
			Jitter:        Duration(10 * time.Minute),
			Retry:         Retry{Interval: Duration(5 * time.Minute), Factor: 2, Attempts: 3},
			Timeout:       Duration(6 * time.Hour),
			Check:         &Check{Schedule: "@weekly", ReadDataSubset: "10%"},
			Prune:         &Prune{Schedule: "daily 03:30"},
			Keep:          Keep{Last: 3, Hourly: 24, Daily: 7, Weekly: 4, Monthly: 12, Yearly: -1, Within: "1y2m3d4h"},
			Grace:         Duration(2 * time.Hour),
		}, {
			Name:     "db",
			Paths:    []string{"/var/lib/postgresql"},
			Schedule: "@daily",
		}},
		RestoreRoot:     "/srv/restore",
		ReportFileNames: true,
		EscrowPublicKey: bytes.Repeat([]byte{9}, 32),
	}
}

// signRaw signs arbitrary policy bytes as Sign would, so tests can make
// validly signed documents that Sign itself refuses to produce.
func signRaw(t testing.TB, priv ed25519.PrivateKey, doc []byte) []byte {
	t.Helper()
	pub := priv.Public().(ed25519.PublicKey)
	env, err := json.Marshal(envelope{Key: KeyID(pub), Policy: b64.EncodeToString(doc), Sig: b64.EncodeToString(ed25519.Sign(priv, signedMessage(doc)))})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// marshal is json.Marshal that fails the test.
func marshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustSign(t testing.TB, p *Policy) []byte {
	t.Helper()
	signed, err := Sign(testKey, p)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}
