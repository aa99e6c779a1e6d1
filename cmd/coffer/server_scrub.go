package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/spf13/cobra"
)

// errBitRot is returned when scrub finds damaged objects: exit status 1.
var errBitRot = errors.New("damaged objects found")

func newServerScrubCommand(g *globalOptions) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "scrub --dir DIR [--json]",
		Short: "Verify every stored object and report bit rot",
		Long: `Scrub reads back every object the server stores and verifies it completely:
its header, its at-rest encryption and the hash of its content. It reports
each damaged object by path, client, repository and name, and files in the
object tree that are not objects. It only reads objects, so it can run
beside running servers; it then counts again what each client stores and
records it as the usage the servers' quotas count (setting right what a
server killed mid-upload left charged).

Exit status 1 means damaged objects were found.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			rep, err := server.ScrubDir(cmd.Context(), dir)
			if err != nil {
				return err
			}
			counted, err := recountUsage(cmd, dir)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				j := serverScrubJSON{Objects: rep.Objects, Bytes: rep.Bytes, Damaged: []serverScrubDamageJSON{}, Stray: rep.Stray, UsageCounted: counted}
				if j.Stray == nil {
					j.Stray = []string{}
				}
				for _, d := range rep.Damaged {
					j.Damaged = append(j.Damaged, serverScrubDamageJSON(d))
				}
				if err := printJSON(out, j); err != nil {
					return err
				}
			} else {
				for _, d := range rep.Damaged {
					fmt.Fprintf(out, "DAMAGED %s: client %s, repository %s, object %s: %s\n", d.Path, d.Client, d.Repo, d.Object, d.Reason)
				}
				for _, s := range rep.Stray {
					fmt.Fprintf(os.Stderr, "warning: %s is not an object\n", s)
				}
				g.printf(out, "%d objects verified (%d bytes), %d damaged; usage counted for %d clients\n", rep.Objects, rep.Bytes, len(rep.Damaged), counted)
			}
			if len(rep.Damaged) > 0 {
				return fmt.Errorf("%w: %d objects", errBitRot, len(rep.Damaged))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "server state directory")
	return cmd
}

// recountUsage records what each client stores, counted afresh, in the
// state directory's database.
func recountUsage(cmd *cobra.Command, dir string) (int, error) {
	db, err := state.OpenDB(cmd.Context(), dir)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return server.RecountUsage(cmd.Context(), dir, db)
}
