package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/coffer-backup/coffer/internal/bytesize"
	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/copier"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// fromRepoFlags name copy's source repository and its credential, as the
// global flags name the repository: --from-repo, --from-password-file,
// --from-password-command, --from-escrow-key, and the COFFER_FROM_*
// environment variables of the same names.
type fromRepoFlags struct {
	repo, passwordFile, passwordCommand, escrowKey string
}

func (f *fromRepoFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.repo, "from-repo", "", "source repository location (env COFFER_FROM_REPO)")
	fs.StringVar(&f.passwordFile, "from-password-file", "", "read the source repository's passphrase (or recovery key) from this file (env COFFER_FROM_PASSWORD_FILE)")
	fs.StringVar(&f.passwordCommand, "from-password-command", "", "run this command for the source repository's passphrase (env COFFER_FROM_PASSWORD_COMMAND)")
	fs.StringVar(&f.escrowKey, "from-escrow-key", "", "open the source repository with this escrow private key file (env COFFER_FROM_ESCROW_KEY_FILE)")
}

// options returns g with the source repository and its credential in
// place of the target's; other global flags (--cacert, limits) apply to both.
func (f *fromRepoFlags) options(g *globalOptions) (*globalOptions, error) {
	fg := *g
	fg.repo, fg.passwordFile, fg.passwordCommand, fg.escrowKey = f.repo, f.passwordFile, f.passwordCommand, f.escrowKey
	fg.credEnv = "COFFER_FROM_"
	if fg.repo == "" && fg.getenv("REPO") == "" {
		return nil, usageErrorf("no source repository: give --from-repo (or COFFER_FROM_REPO)")
	}
	return &fg, nil
}

// open opens the source repository.
func (f *fromRepoFlags) open(ctx context.Context, g *globalOptions) (*client.Client, error) {
	fg, err := f.options(g)
	if err != nil {
		return nil, err
	}
	c, err := fg.openRepo(ctx)
	if err != nil {
		return nil, fmt.Errorf("source repository: %w", err)
	}
	return c, nil
}

func newCopyCommand(g *globalOptions) *cobra.Command {
	var from fromRepoFlags
	var filter snapshotFilterFlags
	cmd := &cobra.Command{
		Use:   "copy --from-repo SOURCE [SNAPSHOT...]",
		Short: "Copy snapshots from another repository into this one",
		Long: `Copy snapshots (all, or those named by ID or "latest", narrowed by --host,
--tag and --path) from the repository --from-repo into --repo. Data the
target already holds is not copied again; a snapshot the target already
holds a copy of is skipped, so copy can be run again, and an interrupted
copy resumes. Each copy records the ID of the snapshot it copies
("original"). Unless the target was made with
init --copy-chunker-params --from-repo SOURCE, file contents are
re-chunked through the target's chunker.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			src, err := from.open(ctx, g)
			if err != nil {
				return err
			}
			defer src.Close()
			dst, err := g.openRepo(ctx)
			if err != nil {
				return err
			}
			defer dst.Close()
			return g.runCopy(ctx, cmd.OutOrStdout(), src, dst, client.CopyOptions{Snapshots: args, Filter: filter.filter()})
		},
	}
	from.register(cmd.Flags())
	filter.register(cmd.Flags())
	return cmd
}

func (g *globalOptions) runCopy(ctx context.Context, w io.Writer, src, dst *client.Client, o client.CopyOptions) error {
	o.Progress = &copier.Progress{}
	p := o.Progress
	start := time.Now()
	o.OnSnapshot = func(s, c *repository.Snapshot, existing repository.ID) {
		if g.json {
			_ = printJSONLine(w, copySnapshotJSON{MessageType: msgCopied, Source: s.ID.String(), Target: existing.String(), Skipped: c == nil})
			return
		}
		if c == nil {
			g.printf(w, "snapshot %s is in the target already (as %s): skipped\n", s.ID.Short(), existing.Short())
			return
		}
		g.printf(w, "snapshot %s of %s copied as %s\n", s.ID.Short(), s.Time.Local().Format("2006-01-02 15:04:05"), c.ID.Short())
	}
	stopStatus := g.startJSONStatus(w, func() any {
		return copyStatusJSON{MessageType: msgStatus, SecondsElapsed: time.Since(start).Seconds(), SnapshotsDone: p.Snapshots.Load(),
			SnapshotsTotal: p.Todo.Load(), TreesVisited: p.Trees.Load(), BlobsRead: p.Blobs.Load(), BytesRead: p.BytesRead.Load(),
			BlobsNew: p.BlobsNew.Load(), BytesAdded: p.BytesAdded.Load()}
	})
	stopProgress := g.startProgress(false, func() string {
		return fmt.Sprintf("copied %d of %d snapshots; read %s, added %s", p.Snapshots.Load(), p.Todo.Load(),
			bytesize.Format(int64(p.BytesRead.Load())), bytesize.Format(int64(p.BytesAdded.Load()))) // #nosec G115 -- byte counts
	})
	res, err := dst.Copy(ctx, src, o)
	stopProgress()
	stopStatus()
	if err != nil {
		return err
	}
	if g.json {
		return printJSONLine(w, copySummaryJSON{MessageType: msgSummary, SnapshotsCopied: len(res.Copied), SnapshotsSkipped: len(res.Skipped),
			Rechunked: res.Rechunked, BlobsNew: res.Stats.Blobs[repository.DataBlob] + res.Stats.Blobs[repository.TreeBlob],
			BytesAdded: res.Stats.BytesRaw, BytesStored: res.Stats.BytesPacked, Packs: res.Stats.Packs})
	}
	how := "blobs copied as they are"
	if res.Rechunked {
		how = "file contents re-chunked for the target (init --copy-chunker-params avoids it)"
	}
	g.printf(w, "copied %d snapshots, %d already there; added %s in %d packs (%s stored); %s\n", len(res.Copied), len(res.Skipped),
		bytesize.Format(int64(res.Stats.BytesRaw)), res.Stats.Packs, bytesize.Format(int64(res.Stats.BytesPacked)), how) // #nosec G115 -- byte counts
	return nil
}
