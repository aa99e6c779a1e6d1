package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/bytesize"
	"github.com/coffer-backup/coffer/internal/server"
	"github.com/coffer-backup/coffer/internal/server/replicate"
	"github.com/coffer-backup/coffer/internal/server/state"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/spf13/cobra"
)

// newServerReplicateCommand groups the replication commands.
func newServerReplicateCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replicate",
		Short: "Copy the stored objects to a second server or an S3 bucket, without keys",
		Long: `Replication copies every client's objects, as the client's own ciphertext,
to a second coffer server or an S3 bucket (docs/replication.md). No
repository key is needed anywhere; the copy in S3 is a repository that
coffer restore opens with the host's key alone.`,
	}
	cmd.AddCommand(newReplicateAddCommand(g), newReplicateListCommand(g), newReplicateRemoveCommand(g),
		newReplicateStatusCommand(g), newReplicateRunCommand(g))
	return cmd
}

// openReplicationDB opens the state directory's database.
func openReplicationDB(ctx context.Context, dir string) (*serverdb.Store, error) {
	if err := requireDir(dir); err != nil {
		return nil, err
	}
	return state.OpenDB(ctx, dir)
}

// openReplication opens the state directory's database and objects; the
// caller closes both.
func openReplication(ctx context.Context, dir string) (*serverdb.Store, replicate.Source, error) {
	db, err := openReplicationDB(ctx, dir)
	if err != nil {
		return nil, replicate.Source{}, err
	}
	store, err := server.OpenObjectsDir(ctx, dir)
	if err != nil {
		_ = db.Close()
		return nil, replicate.Source{}, err
	}
	return db, replicate.Source{Store: store}, nil
}

func newReplicateAddCommand(g *globalOptions) *cobra.Command {
	var (
		dir, tokenFile, cacert, keep, alertLag string
		s                                      replicate.Settings
	)
	cmd := &cobra.Command{
		Use:   "add --dir DIR --name NAME --to coffer://HOST:PORT|s3:... [--clients C,...] [--schedule EXPR] [--limit RATE] [--window HH:MM-HH:MM] [--keep-deleted DURATION] [--lock-days N] [--parallel N] [--alert-lag DURATION]",
		Short: "Add a replication target",
		Long: `Add records a replication target.

coffer://HOST:PORT: a second coffer server. Its admin issues a token for a
client name that stands for this server (coffer server token --client NAME);
--token-file gives it, and the primary enrolls there now, keeping the
identity in DIR/replicate/NAME (the key mode 0600). Each repository is copied
to the repository CLIENT--REPO of that client (dots in CLIENT become _).

s3:https://HOST[:PORT]/BUCKET[/PREFIX]: each repository is written in the
repository layout under PREFIX/CLIENT/REPO. The AWS_* credentials of this
command's environment are kept in DIR/replicate/NAME (mode 0600); without
them, passes use the environment of the process that runs them.

--schedule EXPR (as the fleet's schedules: "every 1h", "daily 02:30", cron)
makes the running server replicate on its own, within --window if given.
--limit paces the transfer: "20MiB/s", or by time of day
"08:00-18:00=5MiB/s,*=50MiB/s" (the server's local time), shared by the
--parallel copies a pass makes at once (default 4). What the primary
deletes is deleted at the target only after --keep-deleted (default 30d).

--lock-days N (s3: only) writes each copy with an object-lock retention in
compliance mode until N days later, and each pass extends the retention of
what the primary still holds when a third of it is left. The bucket must
have object lock enabled (a missing bucket is created with it); one
without is refused. A copy the primary deleted is deleted at the target
once both --keep-deleted and its retention have passed.

--alert-lag DURATION: the running server raises the replication-lag alert
when the target falls further behind (default 24h).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if s.Name == "" || s.Location == "" {
				return usageErrorf("--name and --to are required")
			}
			s.KeepDeleted = replicate.DefaultKeepDeleted
			if keep != "" {
				d, err := replicate.ParseKeep(keep)
				if err != nil {
					return usageErrorf("--keep-deleted: %v", err)
				}
				s.KeepDeleted = d
			}
			if alertLag != "" {
				d, err := replicate.ParseKeep(alertLag)
				if err != nil {
					return usageErrorf("--alert-lag: %v", err)
				}
				s.AlertLag = d
			}
			if err := s.Check(); err != nil {
				return usageErrorf("%v", err)
			}
			db, _, err := openReplication(cmd.Context(), dir)
			if err != nil {
				return err
			}
			defer db.Close()
			opts := replicate.AddOptions{CACertFile: cacert, Getenv: os.Getenv}
			if strings.HasPrefix(s.Location, "coffer:") {
				if opts.Token, err = enrollToken("", tokenFile); err != nil {
					return err
				}
			}
			if err := replicate.Add(cmd.Context(), dir, db, s, opts); err != nil {
				return err
			}
			g.printf(cmd.OutOrStdout(), "replication target %s added: %s\n", s.Name, s.Location)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "server state directory")
	f.StringVar(&s.Name, "name", "", "the target's name")
	f.StringVar(&s.Location, "to", "", "coffer://HOST:PORT or s3:https://HOST/BUCKET[/PREFIX]")
	f.StringSliceVar(&s.Clients, "clients", nil, "replicate only these clients (default: all)")
	f.StringVar(&s.Schedule, "schedule", "", "when the running server replicates (default: only replicate run)")
	f.StringVar(&s.Limit, "limit", "", "transfer rate limit, e.g. 20MiB/s or 08:00-18:00=5MiB/s,*=50MiB/s")
	f.StringVar(&s.Window, "window", "", "scheduled passes run only in this window, e.g. 22:00-06:00")
	f.StringVar(&keep, "keep-deleted", "", "how long the target keeps what the primary deleted (default 30d)")
	f.StringVar(&tokenFile, "token-file", "", "coffer:// targets: file holding the enrollment token (or COFFER_TOKEN)")
	f.StringVar(&cacert, "cacert", "", "s3: targets: PEM file of the CA of an https endpoint")
	f.IntVar(&s.LockDays, "lock-days", 0, "s3: targets: lock each copy (object lock, compliance mode) for N days, extended while the primary holds it")
	f.IntVar(&s.Parallel, "parallel", 0, "objects copied at once (default 4)")
	f.StringVar(&alertLag, "alert-lag", "", "raise replication-lag when the target is further behind (default 24h)")
	return cmd
}

func newReplicateListCommand(g *globalOptions) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "list --dir DIR [--json]",
		Short: "List the replication targets",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, _, err := openReplication(cmd.Context(), dir)
			if err != nil {
				return err
			}
			defer db.Close()
			targets, err := db.ReplicaTargets(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				j := []replicaTargetJSON{}
				for _, t := range targets {
					j = append(j, toReplicaTargetJSON(t))
				}
				return printJSON(out, j)
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tTARGET\tCLIENTS\tSCHEDULE\tLIMIT\tWINDOW\tKEEP DELETED\tLOCK\tPARALLEL")
			for _, t := range targets {
				lock := "-"
				if t.LockDays > 0 {
					lock = fmt.Sprintf("%dd", t.LockDays)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", t.Name, t.Location, orDash(strings.Join(t.Clients, ","), "all"),
					orDash(t.Schedule, "-"), orDash(t.RateLimit, "unlimited"), orDash(t.Window, "-"), t.KeepDeleted, lock, parallelOf(t.Parallel))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "server state directory")
	return cmd
}

// parallelOf is a target's number of concurrent copies, its default
// filled in.
func parallelOf(n int) int {
	if n <= 0 {
		return replicate.DefaultParallel
	}
	return n
}

func orDash(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

func newReplicateRemoveCommand(g *globalOptions) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "remove --dir DIR NAME",
		Short: "Remove a replication target (what it holds stays there)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, _, err := openReplication(cmd.Context(), dir)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := replicate.Remove(cmd.Context(), dir, db, args[0]); err != nil {
				return err
			}
			g.printf(cmd.OutOrStdout(), "replication target %s removed\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "server state directory")
	return cmd
}

func newReplicateStatusCommand(g *globalOptions) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "status --dir DIR [NAME...] [--json]",
		Short: "Show each target's lag, what is pending, the last success and the last error",
		Long: `Status shows, for each target (or those named), the lag (the age of the
oldest object the target does not hold yet), the objects and bytes pending,
what the target holds, what it keeps of the primary's deletions, the last
complete pass and the last error. Pending objects are counted from the
object tree now, so status can run beside the server and a pass.`,
		Args: usageArgs(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, src, err := openReplication(cmd.Context(), dir)
			if err != nil {
				return err
			}
			defer db.Close()
			names := args
			if len(names) == 0 {
				targets, err := db.ReplicaTargets(cmd.Context())
				if err != nil {
					return err
				}
				for _, t := range targets {
					names = append(names, t.Name)
				}
			}
			var all []replicate.Status
			now := time.Now()
			for _, n := range names {
				st, err := replicate.StatusOf(cmd.Context(), src, db, n, now)
				if err != nil {
					return err
				}
				all = append(all, st)
			}
			if g.json {
				j := []replicaStatusJSON{}
				for _, st := range all {
					j = append(j, toReplicaStatusJSON(st))
				}
				return printJSON(cmd.OutOrStdout(), j)
			}
			printReplicaStatus(cmd.OutOrStdout(), all)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "server state directory")
	return cmd
}

func printReplicaStatus(out io.Writer, all []replicate.Status) {
	when := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.Local().Format(time.DateTime)
	}
	for i, st := range all {
		if i > 0 {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "%s → %s\n", st.Name, st.Location)
		lag := "none"
		if st.PendingObjects > 0 {
			lag = st.Lag.Round(time.Second).String()
		}
		fmt.Fprintf(out, "  lag:           %s\n", lag)
		fmt.Fprintf(out, "  pending:       %d objects, %s\n", st.PendingObjects, bytesize.Format(st.PendingBytes))
		fmt.Fprintf(out, "  replicated:    %d objects, %s\n", st.Replicated, bytesize.Format(st.ReplicatedBytes))
		fmt.Fprintf(out, "  kept deleted:  %d objects (deleted at the primary, kept %s)\n", st.KeptDeleted, st.KeepDeleted)
		if st.LockDays > 0 {
			fmt.Fprintf(out, "  object lock:   %d days; %d deleted objects wait for their lock; earliest lock end %s\n", st.LockDays, st.LockedDeleted, when(st.EarliestRetention))
		}
		fmt.Fprintf(out, "  last success:  %s\n", when(st.LastSuccess))
		if st.LastError != "" {
			fmt.Fprintf(out, "  last error:    %s: %s\n", when(st.LastErrorAt), st.LastError)
		}
	}
}

func newReplicateRunCommand(g *globalOptions) *cobra.Command {
	var (
		dir      string
		readBack bool
		parallel int
	)
	cmd := &cobra.Command{
		Use:   "run --dir DIR NAME [--read-back] [--parallel N] [--json]",
		Short: "Run one replication pass now and wait for it to complete",
		Long: `Run makes one pass of the target now, beside a running server or not:
it copies what the target lacks, verifies each copy (size and the target's
ETag or digest) before recording it, and applies the primary's deletions
older than the target's keep-deleted time. A pass the server is running
is waited for first. Killed at any point, the next pass resumes: copies
found at the target are verified and kept. --read-back also reads every
copy back and compares its content hash with the primary's.

Exit status 0 means every object is at the target and verified; 1 that
some failed, each named (a target that serves other content than the
primary's is named as holding a different object).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			db, src, err := openReplication(cmd.Context(), dir)
			if err != nil {
				return err
			}
			defer db.Close()
			if _, err := db.ReplicaTarget(cmd.Context(), args[0]); err != nil {
				return err
			}
			unlock, err := replicate.Lock(cmd.Context(), dir, args[0], true)
			if err != nil {
				return err
			}
			defer unlock()
			rep, err := replicate.Run(cmd.Context(), args[0], replicate.PassOptions{Dir: dir, Source: src, DB: db, ReadBack: readBack, Parallel: parallel})
			if rep != nil {
				if g.json {
					if perr := printJSON(cmd.OutOrStdout(), toReplicaRunJSON(rep)); perr != nil {
						return perr
					}
				} else {
					g.printf(cmd.OutOrStdout(), "%s: %d objects sent (%s), %d found there and verified, %d read back, %d deleted, %d kept after deletion at the primary, %d held by their lock, %d locks extended, %d failed, in %s\n",
						rep.Target, rep.Sent, bytesize.Format(rep.SentBytes), rep.Adopted, rep.Verified, rep.Deleted, rep.Kept, rep.Locked, rep.Extended, len(rep.Failed), rep.Duration.Round(time.Millisecond))
				}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "server state directory")
	cmd.Flags().BoolVar(&readBack, "read-back", false, "also read every copy back from the target and compare its content")
	cmd.Flags().IntVar(&parallel, "parallel", 0, "objects copied at once (default: the target's)")
	return cmd
}
