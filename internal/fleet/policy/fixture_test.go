package policy

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var updateFixture = flag.Bool("update-fixture", false, "rewrite testdata/policy.json and policy.pub (changes the frozen wire format: never for a released version)")

// fixturePolicy is the policy frozen in testdata/policy.json, signed with
// testKey. Do not edit: the file must keep verifying.
func fixturePolicy() *Policy {
	return &Policy{
		Version:    1,
		Client:     "web-1.example",
		Generation: 42,
		Issued:     time.Date(2026, 12, 5, 10, 11, 12, 345000000, time.UTC),
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
			Grace:         Duration(90 * time.Minute),
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

// TestFixture: the frozen signed policy still verifies and decodes to the
// same policy, and Sign still writes exactly those bytes. A failure here
// means the wire format changed: agents in the field would refuse it.
func TestFixture(t *testing.T) {
	t.Parallel()
	if *updateFixture {
		pubPEM, err := MarshalPublicKey(testPub())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", PublicKeyFile), pubPEM, 0o644); err != nil { // #nosec G306 -- a public key
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", CacheFile), mustSign(t, fixturePolicy()), 0o644); err != nil { // #nosec G306 -- test data
			t.Fatal(err)
		}
	}
	pub, err := LoadPublicKey("testdata")
	if err != nil || !pub.Equal(testPub()) {
		t.Fatalf("testdata/policy.pub: %v", err)
	}
	signed, err := os.ReadFile(filepath.Join("testdata", CacheFile))
	if err != nil {
		t.Fatal(err)
	}
	want := fixturePolicy()
	got, err := Verify(signed, pub, want.Client, want.Generation)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("frozen policy: %v\n got %+v\nwant %+v", err, got, want)
	}
	if again := mustSign(t, want); !bytes.Equal(again, signed) {
		t.Fatalf("Sign no longer writes the frozen bytes:\n got %s\nwant %s", again, signed)
	}
	if got, err := Load("testdata", pub, want.Client); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Load of the frozen cache: %v", err)
	}
}
