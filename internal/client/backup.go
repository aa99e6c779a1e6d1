package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"time"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/repository"
)

// BackupOptions describe one backup. Exactly one source is used: Stream,
// else Command, else Paths.
type BackupOptions struct {
	Paths []string // files and directories to back up
	// Stream, when not nil, is backed up as one file named StreamName.
	Stream io.Reader
	// Command, when not empty, is run (Command[0] with the rest as
	// arguments) and its standard output backed up as one file named
	// StreamName. A failing command writes no snapshot.
	Command []string
	// CommandStderr receives Command's standard error (nil: discarded).
	CommandStderr io.Writer
	StreamName    string // file name of Stream or Command's output

	Host             string          // recorded host name ("": this host)
	Tags             []string        // recorded tags
	Exclude          *filter.Matcher // paths to leave out (nil: none)
	ExcludePatterns  []string        // Exclude's patterns, recorded in the snapshot
	ExcludeCaches    bool            // leave out directories with a valid CACHEDIR.TAG
	ExcludeIfPresent []string        // leave out directories holding one of these names
	OneFileSystem    bool            // do not cross mount points
	// Parent selects the parent snapshot ("": the newest of the same host
	// and paths); Force reads every file, ignoring any parent.
	Parent string
	Force  bool
	// Compression overrides the repository's compression for this backup
	// (nil: the repository's).
	Compression *compress.Mode
	// Time, when not zero, is recorded as the snapshot's time instead of
	// the start of the backup (backup --time, for importing old backups).
	// It is the client's claim: a coffer server's retention ignores it.
	Time time.Time
	// ProgramVersion is recorded in the snapshot.
	ProgramVersion string
	// Progress, when not nil, is updated as the backup runs.
	Progress *archiver.Progress
	// OnFile, when not nil, is told of each file stored and how it
	// compares with the parent (archiver.Options.OnFile).
	OnFile func(path string, s archiver.FileStatus)
}

// BackupResult is what a backup wrote.
type BackupResult struct {
	Snapshot *repository.Snapshot
	// Errors lists sources that could not be read: the snapshot was
	// written without them.
	Errors []archiver.SourceError
}

// Backup writes a new snapshot under a shared lock. It refuses to write
// the snapshot if the lock was lost meanwhile (a prune may have deleted
// what it deduplicated against).
func (c *Client) Backup(ctx context.Context, o BackupOptions) (*BackupResult, error) {
	if o.Compression != nil {
		def, err := compress.ParseMode(c.repo.Config().Compression)
		if err != nil {
			return nil, err
		}
		c.repo.SetCompression(*o.Compression)
		defer c.repo.SetCompression(def)
	}
	lock, err := c.repo.Lock(ctx, "backup", false)
	if err != nil {
		return nil, err
	}
	defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
	if err := c.repo.LoadIndex(ctx); err != nil {
		return nil, err
	}
	if u, err := c.repo.VouchIndex(ctx, c.opts.StateDir); err != nil {
		return nil, err
	} else if u.Count() > 0 {
		c.opts.warnf("not deduplicating against %d packs (%s): their data is stored again; run `coffer check`", u.Count(), u)
	}
	snaps, err := c.LoadSnapshots(ctx)
	if err != nil {
		return nil, err
	}
	host := o.Host
	if host == "" {
		host = repository.Hostname()
	}
	aopts := archiver.Options{Excludes: o.Exclude, ExcludeCaches: o.ExcludeCaches, ExcludeIfPresent: o.ExcludeIfPresent,
		OneFileSystem: o.OneFileSystem, Progress: o.Progress, OnFile: o.OnFile}
	res := &BackupResult{}
	if o.Stream != nil || len(o.Command) > 0 {
		res.Snapshot, err = c.backupStream(ctx, aopts, o)
	} else {
		if !o.Force {
			aopts.Parent = c.findParent(snaps, o.Parent, host, o.Paths)
		}
		arch := archiver.New(c.repo, aopts)
		res.Snapshot, err = arch.Snapshot(ctx, o.Paths)
		res.Errors = arch.Errors()
	}
	if err != nil {
		return res, err
	}
	s := res.Snapshot
	s.Hostname, s.Tags, s.Excludes, s.ProgramVersion = host, o.Tags, o.ExcludePatterns, o.ProgramVersion
	if !o.Time.IsZero() {
		s.Time = o.Time.UTC()
	}
	if u, uerr := user.Current(); uerr == nil {
		s.Username = u.Username
	}
	s.UID, s.GID = uint32(os.Getuid()), uint32(os.Getgid()) // #nosec G115 -- ids are 32-bit on Linux
	if err := lock.Valid(ctx); err != nil {
		return res, err
	}
	if err := c.repo.SaveSnapshot(ctx, s); err != nil {
		return res, err
	}
	c.recordSnapshot(ctx, s.ID)
	return res, nil
}

func (c *Client) backupStream(ctx context.Context, aopts archiver.Options, o BackupOptions) (*repository.Snapshot, error) {
	arch := archiver.New(c.repo, aopts)
	if o.Stream != nil {
		return arch.SnapshotStream(ctx, o.StreamName, o.Stream)
	}
	cmd := exec.CommandContext(ctx, o.Command[0], o.Command[1:]...) // #nosec G204 -- the user's own command
	cmd.Stderr = o.CommandStderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Command[0], err)
	}
	snap, serr := arch.SnapshotStream(ctx, o.StreamName, out)
	if serr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	werr := cmd.Wait()
	if serr != nil {
		return nil, serr
	}
	if werr != nil {
		// Nothing references the data yet: no snapshot is written.
		return nil, fmt.Errorf("command %s failed, no snapshot written: %w", o.Command[0], werr)
	}
	return snap, nil
}

// findParent returns the snapshot named by sel, or else the newest one of
// host with exactly these paths.
func (c *Client) findParent(snaps []*repository.Snapshot, sel, host string, paths []string) *repository.Snapshot {
	if sel != "" {
		s, err := repository.FindSnapshot(snaps, sel, repository.SnapshotFilter{})
		if err != nil {
			c.opts.warnf("parent %s: %v; reading all files", sel, err)
			return nil
		}
		return s
	}
	abs, err := AbsPaths(paths)
	if err != nil {
		return nil
	}
	var best *repository.Snapshot
	for _, s := range snaps {
		if s.Hostname == host && slices.Equal(s.Paths, abs) && (best == nil || s.Time.After(best.Time)) {
			best = s
		}
	}
	return best
}

// AbsPaths returns the absolute, sorted forms of paths, as snapshots
// record them.
func AbsPaths(paths []string) ([]string, error) {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	slices.Sort(out)
	return out, nil
}

// Hooks are shell commands run around an operation.
type Hooks struct {
	Pre  string    // run first; its failure aborts the operation
	Post string    // run last; COFFER_BACKUP_STATUS holds success or failure
	Out  io.Writer // receives the hooks' output (nil: discarded)
}

// Run runs the pre hook, fn, then the post hook (even when fn failed, and
// even when ctx was cancelled). A failing post hook is the error only when
// fn succeeded.
func (h Hooks) Run(ctx context.Context, fn func() error) (err error) {
	if err := h.run(ctx, "pre", h.Pre); err != nil {
		return err
	}
	defer func() {
		status := "success"
		if err != nil {
			status = "failure"
		}
		if herr := h.run(context.WithoutCancel(ctx), "post", h.Post, "COFFER_BACKUP_STATUS="+status); herr != nil && err == nil {
			err = herr
		}
	}()
	return fn()
}

func (h Hooks) run(ctx context.Context, name, command string, env ...string) error {
	if command == "" {
		return nil
	}
	c := exec.CommandContext(ctx, "/bin/sh", "-c", command) // #nosec G204 -- hooks are the user's own commands
	c.Stdout, c.Stderr = h.Out, h.Out
	c.Env = append(os.Environ(), env...)
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s hook failed: %w", name, err)
	}
	return nil
}

// snapshotTimeLayouts are what ParseSnapshotTime accepts, restic's first.
var snapshotTimeLayouts = []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02", time.RFC3339Nano}

// ParseSnapshotTime parses backup --time: "2006-01-02 15:04:05" (seconds
// or the time of day may be left out) in loc, or RFC 3339 with its zone.
func ParseSnapshotTime(s string, loc *time.Location) (time.Time, error) {
	for _, l := range snapshotTimeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: time %q: want \"2006-01-02 15:04:05\" or RFC 3339", ErrInvalidTime, s)
}

// ErrInvalidTime is returned for a time ParseSnapshotTime cannot read.
var ErrInvalidTime = errors.New("invalid time")
