package main

import (
	"bufio"
	"io"
	"os"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/dump"
	"github.com/coffer-backup/coffer/internal/fsmeta"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

type dumpOptions struct {
	snaps   snapshotFilterFlags
	archive string
	target  string
}

func newDumpCommand(g *globalOptions) *cobra.Command {
	var o dumpOptions
	cmd := &cobra.Command{
		Use:   "dump SNAPSHOT PATH",
		Short: "Write a file of a snapshot to stdout, or a directory as an archive",
		Long: `Dump writes the file at PATH in the snapshot to standard output, byte for
byte. A directory is written as an archive (--archive tar, the default, or
zip) whose entry names are paths relative to the snapshot root; tar keeps
modes, owners, times to the nanosecond, symlinks, devices and extended
attributes in PAX headers. A snapshot of "backup --stdin --stdin-filename
NAME" holds the file /NAME. --target writes to a new file (mode 0600)
instead, which appears only once it is complete.`,
		Example: `  coffer dump latest /mydb.sql | psql mydb
  coffer dump --path /etc latest /etc > etc.tar`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error { return g.runDump(cmd, o, args) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.archive, "archive", "a", "tar", "archive format for a directory: tar or zip")
	f.StringVarP(&o.target, "target", "t", "", "write to this new file instead of standard output")
	o.snaps.register(f)
	return cmd
}

func (g *globalOptions) runDump(cmd *cobra.Command, o dumpOptions, args []string) error {
	format, err := dump.ParseFormat(o.archive)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ctx := cmd.Context()
	c, snaps, done, err := g.openReader(ctx, "dump")
	if err != nil {
		return err
	}
	defer done()
	repo := c.Repository()
	snap, err := repository.FindSnapshot(snaps, args[0], o.snaps.filter())
	if err != nil {
		return err
	}
	n, err := dump.Lookup(ctx, repo, snap.Tree, args[1])
	if err != nil {
		return err
	}
	write := func(w io.Writer) error {
		if n.Type == fsmeta.TypeFile {
			return dump.Content(ctx, repo, n, w)
		}
		return dump.Archive(ctx, repo, n, args[1], format, w)
	}
	if o.target != "" {
		return atomicfile.WriteFunc(o.target, 0o600, true, func(f *os.File) error {
			bw := bufio.NewWriterSize(f, 1<<20)
			if err := write(bw); err != nil {
				return err
			}
			return bw.Flush()
		})
	}
	bw := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	return bw.Flush()
}
