package main

import (
	"fmt"
	"time"

	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/spf13/cobra"
)

func newServerTrashCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trash",
		Short: "List and restore objects hosts deleted under a grant",
		Long: `What a host deletes under a prune job's grant goes to DIR/trash, sealed as
it was, for server run's --trash-days days (default 7) before it is gone.
list shows it; restore puts a client's objects back, so that a host that
pruned too much, or was compromised, loses nothing.`,
	}
	cmd.AddCommand(newServerTrashListCommand(g), newServerTrashRestoreCommand(g))
	return cmd
}

func trashEntriesJSON(entries []server.TrashEntry) []serverTrashEntryJSON {
	out := make([]serverTrashEntryJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, serverTrashEntryJSON{Client: e.Client, Repo: e.Repo, Object: e.Object, Deleted: e.Deleted, Size: e.Size})
	}
	return out
}

func newServerTrashListCommand(g *globalOptions) *cobra.Command {
	var dir, client, repo string
	cmd := &cobra.Command{
		Use:   "list --dir DIR [--client C [--repo R]] [--json]",
		Short: "List the objects in the trash",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			if repo != "" && client == "" {
				return usageErrorf("--repo needs --client")
			}
			entries, err := server.ListTrash(cmd.Context(), dir, client, repo)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, trashEntriesJSON(entries))
			}
			for _, e := range entries {
				fmt.Fprintf(out, "%s  %s/%s  %s  %d bytes\n", e.Deleted.Format(time.RFC3339), e.Client, e.Repo, e.Object, e.Size)
			}
			g.printf(out, "%d objects in the trash\n", len(entries))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "server state directory")
	cmd.Flags().StringVar(&client, "client", "", "only this client's objects")
	cmd.Flags().StringVar(&repo, "repo", "", "only this repository's objects (with --client)")
	return cmd
}

func newServerTrashRestoreCommand(g *globalOptions) *cobra.Command {
	var dir, client, repo string
	cmd := &cobra.Command{
		Use:   "restore --dir DIR --client C [--repo R] [--json]",
		Short: "Put a client's objects in the trash back",
		Long: `Restore moves a client's objects (of repository R, or of all its
repositories) from the trash back where they were, marks restored snapshots
as present again for retention, and audits each. It can run beside a running
server. Nothing to restore is an error.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(dir); err != nil {
				return err
			}
			if client == "" {
				return usageErrorf("--client is required")
			}
			db, err := state.OpenDB(cmd.Context(), dir)
			if err != nil {
				return err
			}
			defer db.Close()
			done, err := server.RestoreTrash(cmd.Context(), dir, db, client, repo, time.Now())
			out := cmd.OutOrStdout()
			if g.json && err == nil {
				return printJSON(out, trashEntriesJSON(done))
			}
			for _, e := range done {
				g.printf(out, "restored %s/%s %s\n", e.Client, e.Repo, e.Object)
			}
			if err != nil {
				return fmt.Errorf("after restoring %d objects: %w", len(done), err)
			}
			g.printf(out, "%d objects restored\n", len(done))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "server state directory")
	cmd.Flags().StringVar(&client, "client", "", "the client whose objects to restore")
	cmd.Flags().StringVar(&repo, "repo", "", "only this repository's objects")
	return cmd
}
