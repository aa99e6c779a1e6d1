package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/keyring"
)

// escrowKeygen runs escrow keygen --out path and returns the public key.
func (e *env) escrowKeygen(path string) string {
	e.t.Helper()
	so, se, code := e.runPass("", "escrow", "keygen", "--out", path)
	if code != 0 {
		e.t.Fatalf("escrow keygen: exit %d: %s", code, se)
	}
	pub := strings.TrimSpace(so)
	if !strings.HasPrefix(pub, "age1") {
		e.t.Fatalf("escrow keygen printed %q", so)
	}
	return pub
}

// escrowSlot returns the ID of the repository's one escrow slot.
func (e *env) escrowSlot(pass string) keySlotJSON {
	e.t.Helper()
	var found []keySlotJSON
	for _, s := range e.keySlots(pass) {
		if s.Kind == "escrow" {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		e.t.Fatalf("%d escrow slots, want 1", len(found))
	}
	return found[0]
}

func TestEscrowKeyOpensRepository(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.init()
	src := filepath.Join(e.dir, "src")
	writeFile(t, filepath.Join(src, "a.txt"), []byte("escrowed data\n"))
	e.must("backup", "--repo", e.repo, src)

	key := filepath.Join(e.dir, "escrow.key")
	pub := e.escrowKeygen(key)
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi, err)
	}
	if b, err := os.ReadFile(key + ".pub"); err != nil || strings.TrimSpace(string(b)) != pub {
		t.Fatalf("public key file %q: %v", b, err)
	}
	before, _ := os.ReadFile(key)
	if _, se, code := e.runPass("", "escrow", "keygen", "--out", key); code == 0 || !strings.Contains(se, "refusing to overwrite") {
		t.Fatalf("second keygen over the same file: exit %d: %s", code, se)
	}
	if after, _ := os.ReadFile(key); !bytes.Equal(before, after) {
		t.Fatal("keygen overwrote an existing key")
	}

	e.must("key", "add", "--repo", e.repo, "--escrow-public-key", key+".pub")
	slot := e.escrowSlot(testPass)
	if slot.EscrowPublicKey != pub || slot.EscrowFingerprint != keyring.EscrowFingerprint(pub) {
		t.Fatalf("key list shows %+v, want public key %s", slot, pub)
	}
	if so := e.must("key", "list", "--repo", e.repo); !strings.Contains(so, keyring.EscrowFingerprint(pub)) {
		t.Fatalf("key list does not show the fingerprint:\n%s", so)
	}

	// Restore with only the escrow key: no passphrase anywhere.
	dst := filepath.Join(e.dir, "dst")
	if _, se, code := e.runPass("", "restore", "latest", "--repo", e.repo, "--escrow-key", key, "--target", dst); code != 0 {
		t.Fatalf("restore with the escrow key: exit %d: %s", code, se)
	}
	diffTrees(t, src, filepath.Join(dst, src))
	e.extra = []string{"COFFER_ESCROW_KEY_FILE=" + key}
	if _, se, code := e.runPass("", "snapshots", "--repo", e.repo); code != 0 {
		t.Fatalf("COFFER_ESCROW_KEY_FILE: exit %d: %s", code, se)
	}
	e.extra = nil

	// key passwd would replace the escrow slot: refused.
	np := filepath.Join(e.dir, "np")
	writeFile(t, np, []byte("new pass\n"))
	if _, se, code := e.runPass("", append([]string{"key", "passwd", "--repo", e.repo, "--escrow-key", key, "--new-password-file", np}, cheapKDF...)...); code == 0 || !strings.Contains(se, "escrow") {
		t.Fatalf("key passwd with the escrow key: exit %d: %s", code, se)
	}

	// A readable key file works, with a warning.
	loose := filepath.Join(e.dir, "loose.key")
	writeFile(t, loose, before)
	if _, se, code := e.runPass("", "snapshots", "--repo", e.repo, "--escrow-key", loose); code != 0 || !strings.Contains(se, "can be read by others") {
		t.Fatalf("mode 0644 key file: exit %d: %s", code, se)
	}

	// A wrong escrow key exits as a wrong passphrase does.
	other := filepath.Join(e.dir, "other.key")
	var kj escrowKeygenJSON
	requireFields(t, "escrow keygen", e.must("escrow", "keygen", "--out", other, "--json"), &kj)
	if !strings.HasPrefix(kj.PublicKey, "age1") || kj.Fingerprint != keyring.EscrowFingerprint(kj.PublicKey) || kj.IdentityFile != other || kj.PublicKeyFile != other+".pub" {
		t.Fatalf("escrow keygen --json: %+v", kj)
	}
	if _, se, code := e.runPass("", "snapshots", "--repo", e.repo, "--escrow-key", other); code != exitWrongPassword || !strings.Contains(se, "wrong escrow key") ||
		!strings.Contains(se, "--escrow-key "+other) {
		t.Fatalf("wrong escrow key: exit %d: %s", code, se)
	}
	// A public key given as the private one: a clear error, not a crash.
	if _, se, code := e.runPass("", "snapshots", "--repo", e.repo, "--escrow-key", key+".pub"); code == 0 || !strings.Contains(se, "invalid escrow key") {
		t.Fatalf("public key as --escrow-key: exit %d: %s", code, se)
	}

	// key remove works as for other kinds: the last escrow slot needs --force.
	if _, se, code := e.run("key", "remove", "--repo", e.repo, slot.ID[:8]); code == 0 || !strings.Contains(se, "last escrow slot") {
		t.Fatalf("removing the last escrow slot: exit %d: %s", code, se)
	}
	e.must("key", "remove", "--repo", e.repo, "--force", slot.ID[:8])
	if _, _, code := e.runPass("", "snapshots", "--repo", e.repo, "--escrow-key", key); code != exitWrongPassword {
		t.Fatalf("escrow key after its slot was removed: exit %d", code)
	}
}

// Slots moved from another repository or edited are refused with a clear
// error, and never open the repository.
func TestEscrowSlotMovedOrEditedRefused(t *testing.T) {
	t.Parallel()
	a, b := newEnv(t), newEnv(t)
	a.init()
	b.init()
	key := filepath.Join(a.dir, "escrow.key")
	a.escrowKeygen(key)
	b.must("key", "add", "--repo", b.repo, "--escrow-public-key", key+".pub")
	foreign := b.escrowSlot(testPass)
	foreignData, err := os.ReadFile(filepath.Join(b.repo, "keys", foreign.ID))
	if err != nil {
		t.Fatal(err)
	}
	open := func(what string) string {
		t.Helper()
		_, se, code := a.runPass("", "snapshots", "--repo", a.repo, "--escrow-key", key)
		if code == 0 {
			t.Fatalf("%s: the repository opened", what)
		}
		return se
	}
	plant := func(id string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(a.repo, "keys", id), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Copied as it is: it opens, but to the other repository's keys.
	plant(foreign.ID, foreignData)
	if se := open("slot copied from another repository"); !strings.Contains(se, "belongs to another repository") || !strings.Contains(se, foreign.ID) {
		t.Fatalf("copied slot: %s", se)
	}

	// Copied with its repo_id edited to this repository's: its sealed
	// binding says otherwise.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(foreignData, &fields); err != nil {
		t.Fatal(err)
	}
	var own map[string]json.RawMessage
	var ownID string
	for _, s := range a.keySlots(testPass) {
		if s.Kind == "passphrase" {
			ownID = s.ID
		}
	}
	ownData, err := os.ReadFile(filepath.Join(a.repo, "keys", ownID))
	if err != nil || json.Unmarshal(ownData, &own) != nil {
		t.Fatalf("read own slot: %v", err)
	}
	if bytes.Equal(own["repo_id"], fields["repo_id"]) {
		t.Fatal("both repositories have the same ID")
	}
	fields["repo_id"] = own["repo_id"]
	moved, _ := json.Marshal(fields)
	plant(foreign.ID, moved)
	if se := open("slot moved with its repo_id edited"); !strings.Contains(se, "sealed for another repository or has been edited") {
		t.Fatalf("moved slot: %s", se)
	}
	if err := os.Remove(filepath.Join(a.repo, "keys", foreign.ID)); err != nil {
		t.Fatal(err)
	}

	// This repository's own slot with its creation time edited.
	a.must("key", "add", "--repo", a.repo, "--escrow-public-key", key+".pub")
	mine := a.escrowSlot(testPass)
	path := filepath.Join(a.repo, "keys", mine.ID)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	var createdText string
	if err := json.Unmarshal(fields["created"], &createdText); err != nil {
		t.Fatal(err)
	}
	created := []byte(createdText) // "…:SSZ"
	created[len(created)-2] = '0' + (created[len(created)-2]-'0'+1)%10
	fields["created"], _ = json.Marshal(string(created))
	edited, _ := json.Marshal(fields)
	plant(mine.ID, edited)
	if se := open("edited slot"); !strings.Contains(se, "sealed for another repository or has been edited") {
		t.Fatalf("edited slot: %s", se)
	}
	plant(mine.ID, data)
	if _, se, code := a.runPass("", "snapshots", "--repo", a.repo, "--escrow-key", key); code != 0 {
		t.Fatalf("the restored slot does not open: exit %d: %s", code, se)
	}
}
