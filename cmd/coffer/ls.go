package main

import (
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/termesc"
	"github.com/spf13/cobra"
)

func newLsCommand(g *globalOptions) *cobra.Command {
	var sf snapshotFilterFlags
	var long, recursive bool
	cmd := &cobra.Command{
		Use:   "ls SNAPSHOT [PATH]",
		Short: "List the files of a snapshot",
		Args:  usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, snaps, done, err := g.openReader(ctx, "ls")
			if err != nil {
				return err
			}
			defer done()
			repo := c.Repository()
			snap, err := repository.FindSnapshot(snaps, args[0], sf.filter())
			if err != nil {
				return err
			}
			prefix := ""
			if len(args) == 2 {
				prefix = "/" + strings.Trim(args[1], "/")
			}
			w := cmd.OutOrStdout()
			arr := &jsonArray{w: w}
			err = repo.Walk(ctx, snap.Tree, func(p string, n *repository.Node) error {
				if prefix != "" && p != prefix && !strings.HasPrefix(p, prefix+"/") {
					if strings.HasPrefix(prefix, p+"/") {
						return nil
					}
					return repository.ErrSkipDir
				}
				err := error(nil)
				if !recursive && p != prefix {
					err = repository.ErrSkipDir // list PATH's entries, not theirs
				}
				if g.json {
					if aerr := arr.add(lsNodeJSON{Path: p, Type: string(n.Type), Mode: n.Mode, Size: n.Size,
						UID: n.UID, GID: n.GID, User: n.User, Group: n.Group, MTime: time.Unix(0, n.MTimeNs).UTC()}); aerr != nil {
						return aerr
					}
					return err
				}
				if long {
					fmt.Fprintf(w, "%s %8s %8s %12d %s %s\n", modeString(n), orID(n.User, n.UID), orID(n.Group, n.GID), n.Size,
						time.Unix(0, n.MTimeNs).Local().Format("2006-01-02 15:04:05"), termesc.Name(p))
					return err
				}
				fmt.Fprintln(w, termesc.Name(p))
				return err
			})
			if err == nil && g.json {
				err = arr.close()
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "long listing")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", true, "list everything below PATH (--recursive=false: PATH and its own entries only)")
	sf.register(cmd.Flags())
	return cmd
}

// orID is an owner's name for text output (escaped: it comes from the
// snapshot), or its number when the name is unknown.
func orID(name string, id uint32) string {
	if name != "" {
		return termesc.Name(name)
	}
	return fmt.Sprint(id)
}

func modeString(n *repository.Node) string {
	m := fs.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch n.Type {
	case "dir":
		m |= fs.ModeDir
	case "symlink":
		m |= fs.ModeSymlink
	case "fifo":
		m |= fs.ModeNamedPipe
	case "chardev":
		m |= fs.ModeDevice | fs.ModeCharDevice
	case "blockdev":
		m |= fs.ModeDevice
	case "socket":
		m |= fs.ModeSocket
	}
	return m.String()
}
