package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/coffer-backup/coffer/internal/storage/local"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// globalOptions are the flags every repository command shares.
type globalOptions struct {
	repo            string
	passwordFile    string
	passwordCommand string
	json            bool
	quiet           bool
	noLock          bool
}

// register adds the global flags to the root command's persistent flags.
func (g *globalOptions) register(f *pflag.FlagSet) {
	f.StringVarP(&g.repo, "repo", "r", "", "repository location (env COFFER_REPO; default: a local repository under $XDG_DATA_HOME/coffer/default)")
	f.StringVar(&g.passwordFile, "password-file", "", "read the passphrase (or recovery key) from this file (env COFFER_PASSWORD_FILE)")
	f.StringVar(&g.passwordCommand, "password-command", "", "run this command and read the passphrase from its output (env COFFER_PASSWORD_COMMAND)")
	f.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print only errors")
	f.BoolVar(&g.noLock, "no-lock", false, "do not lock the repository (read-only commands only)")
}

// usageArgs wraps a cobra argument validator so its errors exit with code 2.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		return nil
	}
}

func usageErrorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

func dataHome() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return d
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return "."
	}
	return filepath.Join(h, ".local", "share")
}

// stateDir is where the client keeps what it has seen of each repository.
func stateDir() string {
	if d := os.Getenv("COFFER_STATE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "coffer")
	}
	h, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(h, ".local", "state", "coffer")
}

// defaultRepo is the repository used when none is given.
func defaultRepo() string { return filepath.Join(dataHome(), "coffer", "default") }

// repoLocation returns the repository location and whether it is the default.
func (g *globalOptions) repoLocation() (string, bool) {
	if g.repo != "" {
		return g.repo, false
	}
	if r := os.Getenv("COFFER_REPO"); r != "" {
		return r, false
	}
	return defaultRepo(), true
}

// openStorage opens (or, with create, creates) the backend for a location.
func (g *globalOptions) openStorage(ctx context.Context, loc string, create bool) (storage.Storage, error) {
	if strings.Contains(loc, "://") {
		return g.openRemoteStorage(ctx, loc, create)
	}
	loc = strings.TrimPrefix(loc, "local:")
	if create {
		return local.Create(loc)
	}
	return local.Open(loc)
}

// readPassword returns the passphrase from, in order: --password-file,
// COFFER_PASSWORD_FILE, --password-command, COFFER_PASSWORD_COMMAND,
// COFFER_PASSWORD, a terminal prompt.
func (g *globalOptions) readPassword(prompt string, confirm bool) ([]byte, error) {
	file := firstNonEmpty(g.passwordFile, os.Getenv("COFFER_PASSWORD_FILE"))
	if file != "" {
		return readSecretFile(file)
	}
	if c := firstNonEmpty(g.passwordCommand, os.Getenv("COFFER_PASSWORD_COMMAND")); c != "" {
		return passwordFromCommand(c)
	}
	if p := os.Getenv("COFFER_PASSWORD"); p != "" {
		return []byte(p), nil
	}
	return promptPassword(prompt, confirm)
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// readSecretFile reads a secret file and strips one trailing newline.
func readSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path) // #nosec G304 G703 -- the user names the secret file
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("password file %s is empty", path)
	}
	return b, nil
}

func passwordFromCommand(c string) ([]byte, error) {
	cmd := exec.Command("/bin/sh", "-c", c) // #nosec G204 G702 -- the user configures their own password command
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("password command failed: %w", err)
	}
	out = bytes.TrimRight(out, "\r\n")
	if len(out) == 0 {
		return nil, errors.New("password command printed nothing")
	}
	return out, nil
}

func promptPassword(prompt string, confirm bool) ([]byte, error) {
	fd := int(os.Stdin.Fd()) // #nosec G115 -- file descriptors fit in int
	if !term.IsTerminal(fd) {
		return nil, errors.New("no passphrase given: set COFFER_PASSWORD_FILE, COFFER_PASSWORD_COMMAND or COFFER_PASSWORD, or run on a terminal")
	}
	fmt.Fprint(os.Stderr, prompt)
	p, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, errors.New("empty passphrase")
	}
	if confirm {
		fmt.Fprint(os.Stderr, "enter the passphrase again: ")
		q, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(p, q) {
			return nil, errors.New("passphrases do not match")
		}
	}
	return p, nil
}

// openRepo opens and unlocks the repository for a command.
func (g *globalOptions) openRepo(ctx context.Context) (*repository.Repository, error) {
	loc, _ := g.repoLocation()
	st, err := g.openStorage(ctx, loc, false)
	if err != nil {
		return nil, err
	}
	pass, err := g.readPassword("enter the passphrase for repository "+loc+": ", false)
	if err != nil {
		return nil, err
	}
	r, err := repository.Open(ctx, st, pass)
	clear(pass)
	if err != nil {
		return nil, err
	}
	// A keyring older than one this client saw hides a rotation: refuse
	// before anything is sealed under the older key.
	if err := r.CheckTerm(stateDir()); err != nil {
		return nil, err
	}
	if strings.Contains(loc, "://") {
		// A request costs far more than its bytes: read whole packs.
		r.UsePackCache(3)
	}
	// Argon2id just used 64 MiB. Collect it now, so the real work reuses
	// those pages instead of growing the heap past them (raising the
	// peak); they are not handed back to the kernel at once, which would
	// make that work fault every page in again (the background scavenger
	// returns what stays unused).
	runtime.GC()
	return r, nil
}

// lockRepoHeld takes a shared lock and returns it, for writers that must
// check before committing that they did not lose it while suspended.
func lockRepoHeld(ctx context.Context, r *repository.Repository, op string) (*repository.HeldLock, func(), error) {
	l, err := r.Lock(ctx, op, false)
	if err != nil {
		return nil, nil, err
	}
	return l, func() { _ = l.Unlock(context.Background()) }, nil
}

// lockRepo takes a lock unless --no-lock was given for a read-only command.
func (g *globalOptions) lockRepo(ctx context.Context, r *repository.Repository, op string, exclusive, readOnly bool) (func(), error) {
	if readOnly && g.noLock {
		return func() {}, nil
	}
	l, err := r.Lock(ctx, op, exclusive)
	if err != nil {
		return nil, err
	}
	return func() { _ = l.Unlock(context.Background()) }, nil
}

// openReader opens the repository for a read-only command: unlock, take a
// shared lock (unless --no-lock), load the index and the snapshots (with the
// rollback check). The caller must call unlock.
func (g *globalOptions) openReader(ctx context.Context, op string) (repo *repository.Repository, snaps []*repository.Snapshot, unlock func(), err error) {
	repo, err = g.openRepo(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	unlock, err = g.lockRepo(ctx, repo, op, false, true)
	if err != nil {
		return nil, nil, nil, err
	}
	if err = repo.LoadIndex(ctx); err == nil {
		snaps, err = g.loadSnapshots(ctx, repo)
	}
	if err != nil {
		unlock()
		return nil, nil, nil, err
	}
	return repo, snaps, unlock, nil
}

// loadSnapshots loads snapshots and runs the rollback check against what
// this client has seen before, then records what it sees now.
func (g *globalOptions) loadSnapshots(ctx context.Context, r *repository.Repository) ([]*repository.Snapshot, error) {
	snaps, bad, err := r.LoadSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range bad {
		warnf("snapshot %s cannot be read: %v", b.ID.Short(), b.Err)
	}
	ids := make([]repository.ID, 0, len(snaps)+len(bad))
	for _, s := range snaps {
		ids = append(ids, s.ID)
	}
	for _, b := range bad {
		ids = append(ids, b.ID)
	}
	if err := r.CheckRollback(ctx, stateDir(), ids); err != nil {
		return nil, err
	}
	if err := r.RecordSeen(stateDir(), ids); err != nil {
		warnf("cannot record seen snapshots: %v", err)
	}
	return snaps, nil
}

// recordSnapshot adds a snapshot this client just wrote to its seen set.
func recordSnapshot(ctx context.Context, r *repository.Repository, id repository.ID) {
	snaps, _, err := r.LoadSnapshots(ctx)
	if err != nil {
		return
	}
	ids := []repository.ID{id}
	for _, s := range snaps {
		ids = append(ids, s.ID)
	}
	if err := r.RecordSeen(stateDir(), ids); err != nil {
		warnf("cannot record seen snapshots: %v", err)
	}
}

func warnf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "warning: "+format+"\n", a...)
}

// printf writes human output unless --quiet or --json.
func (g *globalOptions) printf(w io.Writer, format string, a ...any) {
	if g.quiet || g.json {
		return
	}
	fmt.Fprintf(w, format, a...)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func isTerminal(f *os.File) bool {
	return term.IsTerminal(int(f.Fd())) // #nosec G115 -- file descriptors fit in int
}
