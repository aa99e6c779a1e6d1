package main

import (
	"fmt"
	"strings"

	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/spf13/cobra"
)

func newListCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:       "list blobs|packs|index|snapshots|keys|locks",
		Short:     "List objects in the repository",
		Args:      usageArgs(cobra.ExactArgs(1)),
		ValidArgs: []string{"blobs", "packs", "index", "snapshots", "keys", "locks"},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			repo := c.Repository()
			w := cmd.OutOrStdout()
			kinds := map[string]storage.Kind{"packs": storage.KindData, "index": storage.KindIndex,
				"snapshots": storage.KindSnapshots, "keys": storage.KindKeys, "locks": storage.KindLocks}
			if args[0] == "blobs" {
				if err := repo.LoadIndex(ctx); err != nil {
					return err
				}
				var werr error
				arr := &jsonArray{w: w}
				repo.Index().Each(func(l repository.BlobLocation, id repository.ID) bool {
					if g.json {
						werr = arr.add(listBlobJSON{Type: l.Type.String(), ID: id.String(), Size: l.RawLen, Pack: l.Pack.String()})
					} else {
						_, werr = fmt.Fprintf(w, "%s %s\n", l.Type, id)
					}
					return werr == nil
				})
				if werr == nil && g.json {
					werr = arr.close()
				}
				return werr
			}
			k, ok := kinds[args[0]]
			if !ok {
				return usageErrorf("list: unknown type %q (valid: %s)", args[0], strings.Join(cmd.ValidArgs, ", "))
			}
			arr := &jsonArray{w: w}
			err = repo.Storage().List(ctx, k, func(fi storage.FileInfo) error {
				if g.json {
					return arr.add(listFileJSON{ID: fi.Name, Size: fi.Size})
				}
				_, err := fmt.Fprintln(w, fi.Name)
				return err
			})
			if err == nil && g.json {
				err = arr.close()
			}
			return err
		},
	}
	return cmd
}
