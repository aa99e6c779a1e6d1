package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"time"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

type backupOptions struct {
	tags             []string
	host             string
	excludes         []string
	excludeFiles     []string
	excludeCaches    bool
	excludeIfPresent []string
	oneFileSystem    bool
	stdin            bool
	stdinFilename    string
	stdinFromCommand bool
	parent           string
	force            bool
	preHook          string
	postHook         string
	compression      string
	progress         bool
}

func newBackupCommand(g *globalOptions) *cobra.Command {
	var o backupOptions
	cmd := &cobra.Command{
		Use:   "backup [flags] PATH... | --stdin | --stdin-from-command -- CMD [ARG...]",
		Short: "Back up files and directories into a snapshot",
		Long: `Back up PATHs into a new snapshot. With no repository given, the default local
repository is used and created on first use (its recovery key is shown once).

Exit status 3 means the snapshot was written but some sources could not be read.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.runBackup(cmd, o, args)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.tags, "tag", nil, "add a tag to the snapshot (repeatable; comma-separated lists allowed)")
	f.StringVar(&o.host, "host", "", "host name recorded in the snapshot (default: this host)")
	f.StringArrayVarP(&o.excludes, "exclude", "e", nil, "exclude paths matching a pattern (repeatable)")
	f.StringArrayVar(&o.excludeFiles, "exclude-file", nil, "read exclude patterns from a file (repeatable)")
	f.BoolVar(&o.excludeCaches, "exclude-caches", false, "exclude directories with a valid CACHEDIR.TAG")
	f.StringArrayVar(&o.excludeIfPresent, "exclude-if-present", nil, "exclude directories that contain this file name (repeatable)")
	f.BoolVarP(&o.oneFileSystem, "one-file-system", "x", false, "do not cross file system boundaries")
	f.BoolVar(&o.stdin, "stdin", false, "back up standard input as one file")
	f.StringVar(&o.stdinFilename, "stdin-filename", "stdin", "file name for --stdin and --stdin-from-command")
	f.BoolVar(&o.stdinFromCommand, "stdin-from-command", false, "back up the output of the command given after --; its exit status is checked")
	f.StringVar(&o.parent, "parent", "", "use this snapshot as parent (default: latest with the same host and paths)")
	f.BoolVar(&o.force, "force", false, "re-read every file, ignoring the parent snapshot")
	f.StringVar(&o.preHook, "pre-hook", "", "command to run before the backup; a failure aborts it")
	f.StringVar(&o.postHook, "post-hook", "", "command to run after the backup (COFFER_BACKUP_STATUS holds the result)")
	f.StringVar(&o.compression, "compression", "", "compression for this backup: auto, off or max (default: the repository's)")
	f.BoolVar(&o.progress, "progress", false, "show progress even when not on a terminal")
	return cmd
}

// openOrCreateDefault opens the repository; the default one is created on
// first use so that a first-time user types one command.
func (g *globalOptions) openOrCreateDefault(cmd *cobra.Command) (*repository.Repository, error) {
	loc, isDefault := g.repoLocation()
	if isDefault {
		if _, err := os.Stat(loc); errors.Is(err, os.ErrNotExist) {
			return g.createDefault(cmd, loc)
		}
	}
	return g.openRepo(cmd.Context())
}

func (g *globalOptions) createDefault(cmd *cobra.Command, loc string) (*repository.Repository, error) {
	fmt.Fprintf(os.Stderr, "creating the default repository at %s\n", loc)
	o := initOptions{cipher: "aes-256-gcm", compression: "auto", chunkAvg: 1 << 20}
	o.kdf.time, o.kdf.memory, o.kdf.threads = 3, 64*1024, 4
	if err := os.MkdirAll(dataHome()+"/coffer", 0o700); err != nil {
		return nil, err
	}
	r, _, err := g.initRepository(cmd, loc, o)
	if err != nil {
		return nil, err
	}
	k, _, err := r.AddRecoveryKey(cmd.Context())
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "\nRECOVERY KEY (shown once; store it offline, it opens this repository):\n\n    %s\n\n", k.String())
	return r, nil
}

func runHook(ctx context.Context, name, command string, env ...string) error {
	if command == "" {
		return nil
	}
	c := exec.CommandContext(ctx, "/bin/sh", "-c", command) // #nosec G204 -- hooks are the user's own commands
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	c.Env = append(os.Environ(), env...)
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s hook failed: %w", name, err)
	}
	return nil
}

func (g *globalOptions) runBackup(cmd *cobra.Command, o backupOptions, args []string) (err error) {
	ctx := cmd.Context()
	start := time.Now()
	var cmdArgs []string
	if o.stdinFromCommand {
		dash := cmd.ArgsLenAtDash()
		if dash < 0 || dash >= len(args) {
			return usageErrorf("--stdin-from-command needs a command after --")
		}
		cmdArgs, args = args[dash:], args[:dash]
	}
	switch {
	case (o.stdin || o.stdinFromCommand) && len(args) > 0:
		return usageErrorf("paths cannot be combined with --stdin or --stdin-from-command")
	case o.stdin && o.stdinFromCommand:
		return usageErrorf("--stdin and --stdin-from-command exclude each other")
	case !o.stdin && !o.stdinFromCommand && len(args) == 0:
		return usageErrorf("nothing to back up: give at least one path")
	}
	patterns := slices.Clone(o.excludes)
	for _, f := range o.excludeFiles {
		p, err := filter.ReadPatternFile(f)
		if err != nil {
			return usageErrorf("%v", err)
		}
		patterns = append(patterns, p...)
	}
	var excl *filter.Matcher
	if len(patterns) > 0 {
		if excl, err = filter.New(patterns); err != nil {
			return usageErrorf("exclude: %v", err)
		}
	}
	if err := runHook(ctx, "pre", o.preHook); err != nil {
		return err
	}
	defer func() {
		status := "success"
		if err != nil {
			status = "failure"
		}
		if herr := runHook(context.WithoutCancel(ctx), "post", o.postHook, "COFFER_BACKUP_STATUS="+status); herr != nil && err == nil {
			err = herr
		}
	}()

	repo, err := g.openOrCreateDefault(cmd)
	if err != nil {
		return err
	}
	if o.compression != "" {
		m, err := compress.ParseMode(o.compression)
		if err != nil {
			return usageErrorf("%v", err)
		}
		repo.SetCompression(m)
	}
	lock, unlock, err := lockRepoHeld(ctx, repo, "backup")
	if err != nil {
		return err
	}
	defer unlock()
	if err := repo.LoadIndex(ctx); err != nil {
		return err
	}
	snaps, err := g.loadSnapshots(ctx, repo)
	if err != nil {
		return err
	}
	host := o.host
	if host == "" {
		host = repository.Hostname()
	}

	prog := &archiver.Progress{}
	aopts := archiver.Options{Excludes: excl, ExcludeCaches: o.excludeCaches, ExcludeIfPresent: o.excludeIfPresent,
		OneFileSystem: o.oneFileSystem, Progress: prog}
	var snap *repository.Snapshot
	stop := g.startProgress(o.progress, func() string { return backupProgressLine(start, prog) })
	if o.stdin || o.stdinFromCommand {
		snap, err = backupStream(ctx, repo, aopts, o.stdinFilename, cmdArgs)
	} else {
		if !o.force {
			aopts.Parent = findParent(snaps, o.parent, host, args)
		}
		arch := archiver.New(repo, aopts)
		snap, err = arch.Snapshot(ctx, args)
		for _, e := range arch.Errors() {
			fmt.Fprintf(os.Stderr, "error: %v\n", e)
		}
		if err == nil && len(arch.Errors()) > 0 {
			defer func() {
				if err == nil {
					err = fmt.Errorf("%w: %d source(s) unreadable, snapshot %s written without them", errPartialBackup, len(arch.Errors()), snap.ID.Short())
				}
			}()
		}
	}
	stop()
	if err != nil {
		return err
	}
	snap.Hostname = host
	snap.Tags = splitTags(o.tags)
	snap.Excludes = patterns
	snap.ProgramVersion = "coffer " + version
	if u, uerr := user.Current(); uerr == nil {
		snap.Username = u.Username
	}
	snap.UID, snap.GID = uint32(os.Getuid()), uint32(os.Getgid()) // #nosec G115 -- ids are 32-bit on Linux
	// A prune may have deleted what we deduplicated against if our lock
	// went stale while we were suspended: then write no snapshot.
	if err := lock.Valid(ctx); err != nil {
		return err
	}
	if err := repo.SaveSnapshot(ctx, snap); err != nil {
		return err
	}
	recordSnapshot(ctx, repo, snap.ID)
	return g.printBackupSummary(cmd.OutOrStdout(), snap)
}

func backupStream(ctx context.Context, repo *repository.Repository, aopts archiver.Options, name string, cmdArgs []string) (*repository.Snapshot, error) {
	arch := archiver.New(repo, aopts)
	if len(cmdArgs) == 0 {
		return arch.SnapshotStream(ctx, name, os.Stdin)
	}
	c := exec.CommandContext(ctx, cmdArgs[0], cmdArgs[1:]...) // #nosec G204 -- the user's own command
	c.Stderr = os.Stderr
	out, err := c.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmdArgs[0], err)
	}
	snap, serr := arch.SnapshotStream(ctx, name, out)
	if serr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	werr := c.Wait()
	if serr != nil {
		return nil, serr
	}
	if werr != nil {
		// Nothing references the data yet: no snapshot is written.
		return nil, fmt.Errorf("command %s failed, no snapshot written: %w", cmdArgs[0], werr)
	}
	return snap, nil
}

func findParent(snaps []*repository.Snapshot, sel, host string, paths []string) *repository.Snapshot {
	if sel != "" {
		s, err := repository.FindSnapshot(snaps, sel, repository.SnapshotFilter{})
		if err != nil {
			warnf("parent %s: %v; reading all files", sel, err)
			return nil
		}
		return s
	}
	abs, err := absPaths(paths)
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

func (g *globalOptions) printBackupSummary(w io.Writer, s *repository.Snapshot) error {
	sum := s.Summary
	if g.json {
		return printJSON(w, map[string]any{"message_type": "summary", "snapshot_id": s.ID.String(), "files_new": sum.FilesNew,
			"files_changed": sum.FilesChanged, "files_unmodified": sum.FilesUnmodified, "dirs_new": sum.DirsNew,
			"dirs_changed": sum.DirsChanged, "dirs_unmodified": sum.DirsUnmodified, "data_blobs": sum.DataBlobs,
			"tree_blobs": sum.TreeBlobs, "data_added": sum.DataAdded, "data_added_packed": sum.DataAddedPacked,
			"total_files_processed": sum.TotalFilesProcessed, "total_bytes_processed": sum.TotalBytesProcessed,
			"total_duration": sum.BackupEnd.Sub(sum.BackupStart).Seconds(), "errors": sum.Errors})
	}
	g.printf(w, "Files:       %d new, %d changed, %d unmodified\n", sum.FilesNew, sum.FilesChanged, sum.FilesUnmodified)
	g.printf(w, "Dirs:        %d new, %d changed, %d unmodified\n", sum.DirsNew, sum.DirsChanged, sum.DirsUnmodified)
	g.printf(w, "Added:       %s (%s stored)\n", formatBytes(sum.DataAdded), formatBytes(sum.DataAddedPacked))
	g.printf(w, "Processed:   %d files, %s in %s\n", sum.TotalFilesProcessed, formatBytes(sum.TotalBytesProcessed), sum.BackupEnd.Sub(sum.BackupStart).Round(time.Millisecond))
	g.printf(w, "snapshot %s saved\n", s.ID.Short())
	return nil
}
