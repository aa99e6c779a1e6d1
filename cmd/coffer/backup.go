package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/client"
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
	verbose          int
	time             string
}

func newBackupCommand(g *globalOptions) *cobra.Command {
	var o backupOptions
	cmd := &cobra.Command{
		Use:   "backup [flags] PATH... | --stdin | --stdin-from-command -- CMD [ARG...]",
		Short: "Back up files and directories into a snapshot",
		Long: `Back up PATHs into a new snapshot. With no repository given, the default local
repository is used and created on first use (its recovery key is shown once).

Exit status 3 means the snapshot was written but some sources were missing or
could not be read.`,
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
	f.BoolVar(&o.progress, "progress", false, "show progress even when not on a terminal (there: a plain line every 10s, or every COFFER_PROGRESS_INTERVAL)")
	f.CountVarP(&o.verbose, "verbose", "v", "list new and modified files (-vv: unchanged ones too)")
	f.StringVar(&o.time, "time", "", "record this time in the snapshot instead of now (\"2006-01-02 15:04:05\" local, or RFC 3339), for importing old backups; a coffer server's retention ignores it")
	return cmd
}

// openOrCreateDefault opens the repository; the default one is created on
// first use so that a first-time user types one command.
func (g *globalOptions) openOrCreateDefault(cmd *cobra.Command) (*client.Client, error) {
	loc, isDefault := g.repoLocation()
	if isDefault {
		if _, err := os.Stat(loc); errors.Is(err, os.ErrNotExist) {
			return g.createDefault(cmd, loc)
		}
	}
	return g.openRepo(cmd.Context())
}

func (g *globalOptions) createDefault(cmd *cobra.Command, loc string) (*client.Client, error) {
	fmt.Fprintf(os.Stderr, "creating the default repository at %s\n", loc)
	o := initOptions{cipher: "aes-256-gcm", compression: "auto", chunkAvg: 1 << 20}
	o.kdf.time, o.kdf.memory, o.kdf.threads = 3, 64*1024, 4
	if err := os.MkdirAll(dataHome()+"/coffer", 0o700); err != nil {
		return nil, err
	}
	c, _, err := g.initRepository(cmd, loc, o)
	if err != nil {
		return nil, err
	}
	k, _, err := c.Repository().AddRecoveryKey(cmd.Context())
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "\nRECOVERY KEY (shown once; store it offline, it opens this repository):\n\n    %s\n\n", k.String())
	return c, nil
}

// backupSource splits the arguments into paths and the command of
// --stdin-from-command, and checks that exactly one source is given.
func backupSource(cmd *cobra.Command, o backupOptions, args []string) (paths, command []string, err error) {
	if o.stdinFromCommand {
		dash := cmd.ArgsLenAtDash()
		if dash < 0 || dash >= len(args) {
			return nil, nil, usageErrorf("--stdin-from-command needs a command after --")
		}
		command, args = args[dash:], args[:dash]
	}
	switch {
	case (o.stdin || o.stdinFromCommand) && len(args) > 0:
		return nil, nil, usageErrorf("paths cannot be combined with --stdin or --stdin-from-command")
	case o.stdin && o.stdinFromCommand:
		return nil, nil, usageErrorf("--stdin and --stdin-from-command exclude each other")
	case !o.stdin && !o.stdinFromCommand && len(args) == 0:
		return nil, nil, usageErrorf("nothing to back up: give at least one path")
	}
	return args, command, nil
}

// backupOptions turns the flags into the library's options.
func (o backupOptions) clientOptions(paths, command []string) (client.BackupOptions, error) {
	patterns := slices.Clone(o.excludes)
	for _, f := range o.excludeFiles {
		p, err := filter.ReadPatternFile(f)
		if err != nil {
			return client.BackupOptions{}, usageErrorf("%v", err)
		}
		patterns = append(patterns, p...)
	}
	bo := client.BackupOptions{Paths: paths, Command: command, CommandStderr: os.Stderr, StreamName: o.stdinFilename,
		Host: o.host, Tags: splitTags(o.tags), ExcludePatterns: patterns, ExcludeCaches: o.excludeCaches,
		ExcludeIfPresent: o.excludeIfPresent, OneFileSystem: o.oneFileSystem, Parent: o.parent, Force: o.force,
		ProgramVersion: "coffer " + version}
	if o.stdin {
		bo.Stream = os.Stdin
	}
	if o.time != "" {
		t, err := client.ParseSnapshotTime(o.time, time.Local)
		if err != nil {
			return bo, usageErrorf("--time: %v", err)
		}
		bo.Time = t
	}
	if len(patterns) > 0 {
		m, err := filter.New(patterns)
		if err != nil {
			return bo, usageErrorf("exclude: %v", err)
		}
		bo.Exclude = m
	}
	if o.compression != "" {
		m, err := compress.ParseMode(o.compression)
		if err != nil {
			return bo, usageErrorf("%v", err)
		}
		bo.Compression = &m
	}
	return bo, nil
}

func (g *globalOptions) runBackup(cmd *cobra.Command, o backupOptions, args []string) error {
	ctx := cmd.Context()
	start := time.Now()
	paths, command, err := backupSource(cmd, o, args)
	if err != nil {
		return err
	}
	bo, err := o.clientOptions(paths, command)
	if err != nil {
		return err
	}
	hooks := client.Hooks{Pre: o.preHook, Post: o.postHook, Out: os.Stderr}
	return hooks.Run(ctx, func() error {
		c, err := g.openOrCreateDefault(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		prog := &archiver.Progress{}
		bo.Progress = prog
		bo.OnFile = g.fileReporter(cmd.OutOrStdout(), o.verbose)
		stop := g.startProgress(o.progress, func() string { return backupProgressLine(start, prog) })
		stopStatus := g.startJSONStatus(cmd.OutOrStdout(), func() any { return backupStatus(start, prog) })
		res, err := c.Backup(ctx, bo)
		stopStatus()
		stop()
		if err != nil {
			return err
		}
		for _, e := range res.Errors {
			fmt.Fprintf(os.Stderr, "error: %v\n", e)
			if g.json {
				_ = printJSONLine(cmd.OutOrStdout(), errorJSON{MessageType: msgError, Error: errorMessageJSON{e.Err.Error()}, During: "backup", Item: e.Path})
			}
		}
		if err := g.printBackupSummary(cmd.OutOrStdout(), res.Snapshot); err != nil {
			return err
		}
		if len(res.Errors) > 0 {
			return fmt.Errorf("%w: %d source(s) missing or unreadable, snapshot %s written without them", errPartialBackup, len(res.Errors), res.Snapshot.ID.Short())
		}
		return nil
	})
}

func (g *globalOptions) printBackupSummary(w io.Writer, s *repository.Snapshot) error {
	sum := s.Summary
	if g.json {
		return printJSONLine(w, backupSummaryJSON{MessageType: msgSummary, SnapshotID: s.ID.String(), FilesNew: sum.FilesNew,
			FilesChanged: sum.FilesChanged, FilesUnmodified: sum.FilesUnmodified, DirsNew: sum.DirsNew,
			DirsChanged: sum.DirsChanged, DirsUnmodified: sum.DirsUnmodified, DataBlobs: sum.DataBlobs,
			TreeBlobs: sum.TreeBlobs, DataAdded: sum.DataAdded, DataAddedPacked: sum.DataAddedPacked,
			TotalFilesProcessed: sum.TotalFilesProcessed, TotalBytesProcessed: sum.TotalBytesProcessed,
			TotalDuration: sum.BackupEnd.Sub(sum.BackupStart).Seconds(), Errors: sum.Errors})
	}
	g.printf(w, "Files:       %d new, %d changed, %d unmodified\n", sum.FilesNew, sum.FilesChanged, sum.FilesUnmodified)
	g.printf(w, "Dirs:        %d new, %d changed, %d unmodified\n", sum.DirsNew, sum.DirsChanged, sum.DirsUnmodified)
	g.printf(w, "Added:       %s (%s stored)\n", formatBytes(sum.DataAdded), formatBytes(sum.DataAddedPacked))
	g.printf(w, "Processed:   %d files, %s in %s\n", sum.TotalFilesProcessed, formatBytes(sum.TotalBytesProcessed), sum.BackupEnd.Sub(sum.BackupStart).Round(time.Millisecond))
	g.printf(w, "snapshot %s saved\n", s.ID.Short())
	return nil
}
