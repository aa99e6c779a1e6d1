package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/maintenance"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

const testPass = "correct horse"

func passCredential(p string) Credential {
	return Credential{Source: "the test", Secret: func(context.Context) ([]byte, error) { return []byte(p), nil }}
}

// testOptions returns options for a new repository in a temporary
// directory, and creates it.
func testOptions(t *testing.T) Options {
	t.Helper()
	dir := t.TempDir()
	o := Options{Location: filepath.Join(dir, "repo"), Credential: passCredential(testPass), StateDir: filepath.Join(dir, "state"),
		Warnf: func(format string, a ...any) { t.Logf("warning: "+format, a...) }}
	c, _, err := Init(context.Background(), o, InitOptions{Passphrase: []byte(testPass),
		KDF: keyring.KDFParams{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return o
}

func openTest(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	src := t.TempDir()
	for name, content := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var unlocked, kdf int
	o := testOptions(t)
	o.AfterUnlock = func() { unlocked++ }
	o.BeforeKDF = func(n int) {
		if n != 8<<20 {
			t.Errorf("BeforeKDF(%d), want the slot's 8 MiB", n)
		}
		kdf++
	}
	c := openTest(t, o)
	if unlocked != 1 || kdf != 1 {
		t.Fatalf("AfterUnlock ran %d times, BeforeKDF %d times; want 1 and 1", unlocked, kdf)
	}
	files := map[string]string{"a.txt": "alpha", "sub/b.txt": strings.Repeat("beta", 1000)}
	src := writeTree(t, files)
	res, err := c.Backup(ctx, BackupOptions{Paths: []string{src}, Tags: []string{"t1"}, Host: "h1", ProgramVersion: "test"})
	if err != nil || len(res.Errors) > 0 {
		t.Fatalf("backup: %v %v", err, res)
	}
	s := res.Snapshot
	if s.Hostname != "h1" || len(s.Tags) != 1 || s.ProgramVersion != "test" || s.Summary.FilesNew != 2 {
		t.Fatalf("snapshot %+v", s)
	}
	// The second backup finds the first as its parent.
	res2, err := c.Backup(ctx, BackupOptions{Paths: []string{src}, Host: "h1"})
	if err != nil || res2.Snapshot.Summary.FilesUnmodified != 2 || res2.Snapshot.Parent == nil || *res2.Snapshot.Parent != s.ID {
		t.Fatalf("second backup: %v, parent %v, summary %+v", err, res2.Snapshot.Parent, res2.Snapshot.Summary)
	}
	target := t.TempDir()
	rres, err := c.Restore(ctx, RestoreOptions{Snapshot: s.ID.String(), Target: target})
	if err != nil || len(rres.Errors) > 0 || rres.Snapshot.ID != s.ID {
		t.Fatalf("restore: %v %+v", err, rres)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(target, src, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q (%v), want %q", name, got, err, want)
		}
	}
	if rres.Progress.Files.Load() != 2 {
		t.Errorf("restored %d files, want 2", rres.Progress.Files.Load())
	}
}

func TestBackupStreamAndCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := openTest(t, testOptions(t))
	res, err := c.Backup(ctx, BackupOptions{Stream: strings.NewReader("streamed"), StreamName: "dump.sql"})
	if err != nil || res.Snapshot.Summary.TotalBytesProcessed != 8 {
		t.Fatalf("stream: %v %+v", err, res)
	}
	if _, err := c.Backup(ctx, BackupOptions{Command: []string{"/bin/sh", "-c", "echo partial; exit 3"}, StreamName: "x"}); err == nil ||
		!strings.Contains(err.Error(), "no snapshot written") {
		t.Fatalf("failing command: %v, want no snapshot written", err)
	}
	snaps, err := c.LoadSnapshots(ctx)
	if err != nil || len(snaps) != 1 {
		t.Fatalf("%d snapshots (%v), want only the stream's", len(snaps), err)
	}
}

func TestWrongPasswordNamesSource(t *testing.T) {
	t.Parallel()
	o := testOptions(t)
	o.Credential = Credential{Source: "COFFER_PASSWORD_FILE=/x", Secret: func(context.Context) ([]byte, error) { return []byte("nope"), nil }}
	_, err := Open(context.Background(), o)
	if !errors.Is(err, keyring.ErrWrongPassword) || !strings.Contains(err.Error(), "(read from COFFER_PASSWORD_FILE=/x)") {
		t.Fatalf("err = %v, want ErrWrongPassword naming the source", err)
	}
	o.Credential = Credential{}
	if _, err := Open(context.Background(), o); err == nil {
		t.Fatal("opened without a credential")
	}
}

func TestRollbackDetected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := testOptions(t)
	c := openTest(t, o)
	src := writeTree(t, map[string]string{"f": "x"})
	res, err := c.Backup(ctx, BackupOptions{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	// The storage loses the snapshot without a forget record.
	if err := os.Remove(filepath.Join(o.Location, "snapshots", res.Snapshot.ID.String())); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoadSnapshots(ctx); !errors.Is(err, repository.ErrRolledBack) {
		t.Fatalf("LoadSnapshots = %v, want ErrRolledBack", err)
	}
	if _, err := c.Restore(ctx, RestoreOptions{Snapshot: "latest", Target: t.TempDir()}); !errors.Is(err, repository.ErrRolledBack) {
		t.Fatalf("Restore = %v, want ErrRolledBack", err)
	}
}

func TestForgetPruneCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := openTest(t, testOptions(t))
	src := writeTree(t, map[string]string{"f": "one"})
	first, err := c.Backup(ctx, BackupOptions{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Backup(ctx, BackupOptions{Paths: []string{src}}); err != nil {
		t.Fatal(err)
	}
	by, _ := maintenance.ParseGroupBy("host,paths")
	dry, err := c.Forget(ctx, ForgetOptions{Policy: maintenance.Policy{Last: 1}, GroupBy: by, DryRun: true})
	if err != nil || dry.Removed || len(dry.Remove) != 1 || dry.Remove[0].ID != first.Snapshot.ID {
		t.Fatalf("dry run: %v %+v", err, dry)
	}
	res, err := c.Forget(ctx, ForgetOptions{IDs: []string{first.Snapshot.ID.String()[:8]}})
	if err != nil || !res.Removed {
		t.Fatalf("forget: %v %+v", err, res)
	}
	if _, err := c.Forget(ctx, ForgetOptions{IDs: []string{"ffffffff"}}); !errors.Is(err, repository.ErrSnapshotNotFound) {
		t.Fatalf("forget of nothing: %v", err)
	}
	rep, err := c.Prune(ctx, maintenance.PruneOptions{SafetyMargin: -1, ClockSkew: -1})
	if err != nil || rep.DeletedPacks+rep.RepackedPacks == 0 {
		t.Fatalf("prune: %v %+v", err, rep)
	}
	cres, err := c.Check(ctx, check.Options{ReadData: true}, false)
	if err != nil || cres.Err() != nil || cres.Snapshots != 1 {
		t.Fatalf("check: %v %+v", err, cres)
	}
}

func TestHooks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var out bytes.Buffer
	ran := false
	h := Hooks{Pre: "echo pre", Post: `echo "post $COFFER_BACKUP_STATUS"`, Out: &out}
	if err := h.Run(ctx, func() error { ran = true; return errors.New("boom") }); err == nil || err.Error() != "boom" {
		t.Fatalf("Run = %v, want the operation's error", err)
	}
	if !ran || out.String() != "pre\npost failure\n" {
		t.Fatalf("ran %v, output %q", ran, out.String())
	}
	ran = false
	err := Hooks{Pre: "exit 1"}.Run(ctx, func() error { ran = true; return nil })
	if err == nil || ran {
		t.Fatalf("a failing pre hook: err %v, operation ran %v", err, ran)
	}
	if err := (Hooks{Post: "exit 2"}).Run(ctx, func() error { return nil }); err == nil || !strings.Contains(err.Error(), "post hook failed") {
		t.Fatalf("a failing post hook after success: %v", err)
	}
}

func TestCloseReleasesStorage(t *testing.T) {
	t.Parallel()
	c, err := Open(context.Background(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// Locations are opened by scheme: an unknown one is refused by name, before
// anything reads a passphrase, and a coffer server without an enrolled
// identity says how to enroll.
func TestOpenByScheme(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	asked := false
	cred := Credential{Source: "the test", Secret: func(context.Context) ([]byte, error) { asked = true; return []byte("x"), nil }}
	_, err := Open(ctx, Options{Location: "sftp:user@example.invalid:/srv", Credential: cred})
	if !errors.Is(err, storage.ErrUnknownScheme) || !strings.Contains(err.Error(), "coffer") || !strings.Contains(err.Error(), "local") {
		t.Fatalf("unknown scheme: %v", err)
	}
	_, err = Open(ctx, Options{Location: "coffer://127.0.0.1:1/repo", Credential: cred, IdentityDir: filepath.Join(t.TempDir(), "none")})
	if err == nil || !strings.Contains(err.Error(), "coffer enroll") {
		t.Fatalf("remote without identity: %v", err)
	}
	if asked {
		t.Fatal("the passphrase was read before the storage opened")
	}
}
