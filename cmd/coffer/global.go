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

	"github.com/coffer-backup/coffer/internal/bytesize"
	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// globalOptions are the flags every repository command shares.
type globalOptions struct {
	repo            string
	passwordFile    string
	passwordCommand string
	escrowKey       string
	json            bool
	quiet           bool
	noLock          bool
	cacert          string
	limitUpload     int64 // bytes per second, 0: unlimited
	limitDownload   int64
	// credEnv prefixes the environment variables that name the repository
	// and its credential: "" is "COFFER_"; copy's source uses
	// "COFFER_FROM_" (COFFER_FROM_REPO, COFFER_FROM_PASSWORD_FILE, …).
	credEnv string

	// Set by main: process-wide tuning around the key derivation.
	beforeKDF   keyring.KDFHook
	afterUnlock func()
}

// register adds the global flags to the root command's persistent flags.
func (g *globalOptions) register(f *pflag.FlagSet) {
	f.StringVarP(&g.repo, "repo", "r", "", "repository location (env COFFER_REPO; default: a local repository under $XDG_DATA_HOME/coffer/default)")
	f.StringVar(&g.passwordFile, "password-file", "", "read the passphrase (or recovery key) from this file (env COFFER_PASSWORD_FILE)")
	f.StringVar(&g.passwordCommand, "password-command", "", "run this command and read the passphrase from its output (env COFFER_PASSWORD_COMMAND)")
	f.StringVar(&g.escrowKey, "escrow-key", "", "open the repository with this escrow private key file, not a passphrase (env COFFER_ESCROW_KEY_FILE)")
	f.BoolVar(&g.json, "json", false, "print machine-readable JSON")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print only errors")
	f.BoolVar(&g.noLock, "no-lock", false, "do not lock the repository (read-only commands only)")
	f.Var(rateFlag{&g.limitUpload}, "limit-upload", "send at most this rate to the repository: a plain number is KiB/s (as in restic), or give a unit (\"20MiB/s\"); 0: unlimited")
	f.Var(rateFlag{&g.limitDownload}, "limit-download", "read at most this rate from the repository, as --limit-upload")
	f.StringVar(&g.cacert, "cacert", "", "trust the CA certificates in this PEM file, besides the system's, for s3:https:// endpoints (env COFFER_CACERT)")
}

// usageArgs wraps a cobra argument validator so its errors exit with code 2.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return fmt.Errorf("%w: %v\nusage: %s", errUsage, err, cmd.UseLine())
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
	if r := g.getenv("REPO"); r != "" {
		return r, false
	}
	return defaultRepo(), true
}

// caCertFile is --cacert, else COFFER_CACERT.
func (g *globalOptions) caCertFile() string {
	if g.cacert != "" {
		return g.cacert
	}
	return os.Getenv("COFFER_CACERT")
}

// envName is the environment variable of name ("REPO", "PASSWORD_FILE")
// for this repository: COFFER_name, or copy's COFFER_FROM_name.
func (g *globalOptions) envName(name string) string {
	if g.credEnv == "" {
		return "COFFER_" + name
	}
	return g.credEnv + name
}

func (g *globalOptions) getenv(name string) string { return os.Getenv(g.envName(name)) }

// flagName is the flag of name ("password-file") for this repository, as
// errors name it: --name, or copy's --from-name.
func (g *globalOptions) flagName(name string) string {
	if g.credEnv == "" {
		return "--" + name
	}
	return "--from-" + name
}

// credential returns where the passphrase comes from, in order:
// --password-file, COFFER_PASSWORD_FILE, --password-command,
// COFFER_PASSWORD_COMMAND, COFFER_PASSWORD, a terminal prompt.
func (g *globalOptions) credential(prompt string, confirm bool) client.Credential {
	switch {
	case g.passwordFile != "":
		return fileCredential(g.passwordFile, g.flagName("password-file")+" "+g.passwordFile)
	case g.getenv("PASSWORD_FILE") != "":
		f := g.getenv("PASSWORD_FILE")
		return fileCredential(f, g.envName("PASSWORD_FILE")+"="+f)
	case g.passwordCommand != "":
		return commandCredential(g.passwordCommand, g.flagName("password-command"))
	case g.getenv("PASSWORD_COMMAND") != "":
		return commandCredential(g.getenv("PASSWORD_COMMAND"), g.envName("PASSWORD_COMMAND"))
	case g.getenv("PASSWORD") != "":
		return client.Credential{Source: g.envName("PASSWORD"), Secret: func(context.Context) ([]byte, error) {
			return []byte(g.getenv("PASSWORD")), nil
		}}
	}
	return client.Credential{Source: "the terminal", Secret: func(context.Context) ([]byte, error) {
		p, err := promptPassword(prompt, confirm)
		if errors.Is(err, errNoTerminal) {
			return nil, fmt.Errorf("no passphrase given: set %s, %s or %s, or run on a terminal",
				g.envName("PASSWORD_FILE"), g.envName("PASSWORD_COMMAND"), g.envName("PASSWORD"))
		}
		return p, err
	}}
}

func fileCredential(path, source string) client.Credential {
	return client.Credential{Source: source, Secret: func(context.Context) ([]byte, error) { return readSecretFile(path) }}
}

func commandCredential(c, source string) client.Credential {
	return client.Credential{Source: source, Secret: func(context.Context) ([]byte, error) { return passwordFromCommand(c) }}
}

// readPassword reads the passphrase from the credential of credential().
func (g *globalOptions) readPassword(ctx context.Context, prompt string, confirm bool) ([]byte, error) {
	return g.credential(prompt, confirm).Secret(ctx)
}

// readSecretFile reads a secret file and strips one trailing newline.
func readSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path) // #nosec G304 G703 -- the user names the secret file
	if err != nil {
		return nil, fmt.Errorf("read password file: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 { // #nosec G703 -- the user names the secret file
		warnf("password file %s can be read by others (mode %04o): chmod 600 %s", path, fi.Mode().Perm(), path)
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

// errNoTerminal: a passphrase was to be prompted for, with no terminal.
var errNoTerminal = errors.New("no terminal to prompt for a passphrase")

func promptPassword(prompt string, confirm bool) ([]byte, error) {
	fd := int(os.Stdin.Fd()) // #nosec G115 -- file descriptors fit in int
	if !term.IsTerminal(fd) {
		return nil, errNoTerminal
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

// clientOptions are the options of client.Open for a location.
func (g *globalOptions) clientOptions(loc string) client.Options {
	o := client.Options{
		Location:    loc,
		Credential:  g.openCredential("enter the passphrase for repository " + loc + ": "),
		StateDir:    stateDir(),
		IdentityDir: identityDir(),
		CACertFile:  g.caCertFile(),
		LimitUpload: g.limitUpload, LimitDownload: g.limitDownload,
		BeforeKDF:   g.beforeKDF,
		AfterUnlock: g.afterUnlock,
		Warnf:       warnf,
	}
	if !g.quiet {
		o.Infof = func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	}
	return o
}

// openRepo opens and unlocks the repository for a command; the caller
// closes it.
func (g *globalOptions) openRepo(ctx context.Context) (*client.Client, error) {
	loc, _ := g.repoLocation()
	o := g.clientOptions(loc)
	if v := os.Getenv("COFFER_KDF_MAX_MEMORY"); v != "" {
		n, err := bytesize.Parse(v)
		if err != nil {
			return nil, usageErrorf("COFFER_KDF_MAX_MEMORY: %v", err)
		}
		o.KDFMaxMemory = n
	}
	c, err := client.Open(ctx, o)
	if errors.Is(err, storage.ErrNoRepository) {
		return nil, fmt.Errorf("%w; to create one: coffer init --repo %s", err, loc)
	}
	return c, err
}

// lockRepo takes a lock unless --no-lock was given for a read-only command.
func (g *globalOptions) lockRepo(ctx context.Context, c *client.Client, op string, exclusive, readOnly bool) (func(), error) {
	if readOnly && g.noLock {
		return func() {}, nil
	}
	l, err := c.Lock(ctx, op, exclusive)
	if readOnly && errors.Is(err, repository.ErrLockNotWritten) {
		warnf("%v; going on without a lock, as with --no-lock", err)
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	return func() { _ = l.Unlock(context.Background()) }, nil
}

// openReader opens the repository for a read-only command: unlock, take a
// shared lock (unless --no-lock), load the index and the snapshots (with the
// rollback check). The caller must call done.
func (g *globalOptions) openReader(ctx context.Context, op string) (c *client.Client, snaps []*repository.Snapshot, done func(), err error) {
	c, err = g.openRepo(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	snaps, end, err := c.BeginRead(ctx, op, g.noLock)
	if err != nil {
		_ = c.Close()
		return nil, nil, nil, err
	}
	return c, snaps, func() { end(); _ = c.Close() }, nil
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
