package main

import (
	"fmt"
	"os"
	"time"

	"github.com/coffer-backup/coffer/internal/fusefs"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

type mountOptions struct {
	snaps      snapshotFilterFlags
	allowOther bool
	debug      bool
}

func newMountCommand(g *globalOptions) *cobra.Command {
	var o mountOptions
	cmd := &cobra.Command{
		Use:   "mount MOUNTPOINT",
		Short: "Browse snapshots through a read-only FUSE file system",
		Long: `Mount serves the repository's snapshots at MOUNTPOINT, read-only, until
Ctrl-C, SIGTERM or an unmount: snapshots/<time>/, hosts/<host>/<time>/,
tags/<tag>/<time>/ (each with a "latest" link) and ids/<short ID>/. Files
keep their modes, owners, times and sizes; their contents are read from
the repository as they are read. --host, --tag and --path choose which
snapshots appear. Mounting needs /dev/fuse and root (or fusermount).`,
		Example: `  coffer mount /mnt/coffer &
  cp /mnt/coffer/hosts/web01/latest/etc/nginx/nginx.conf .`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error { return g.runMount(cmd, o, args[0]) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.allowOther, "allow-other", false, "let other users read the mount (FUSE allow_other)")
	f.BoolVar(&o.debug, "debug-fuse", false, "log every FUSE request")
	o.snaps.register(f)
	return cmd
}

func (g *globalOptions) runMount(cmd *cobra.Command, o mountOptions, dir string) error {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usageErrorf("mount point %s is not a directory", dir)
	}
	ctx := cmd.Context()
	c, snaps, done, err := g.openReader(ctx, "mount")
	if err != nil {
		return err
	}
	defer done()
	sel, err := repository.SelectSnapshots(snaps, nil, o.snaps.filter())
	if err != nil {
		return err
	}
	fo := fusefs.Options{Location: time.Local, AllowOther: o.allowOther, Debug: o.debug}
	err = fusefs.Serve(ctx, dir, c.Repository(), sel, fo, func() {
		g.printf(os.Stderr, "serving %d snapshots at %s; quit with Ctrl-C or umount %s\n", len(sel), dir, dir)
	})
	if err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	g.printf(os.Stderr, "unmounted %s\n", dir)
	return nil
}
