// Command coffer is the client and storage server of coffer, an
// encrypted, deduplicated, verifiable backup system. Each command lives in
// its own file; logic lives in internal/ packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/spf13/cobra"
)

// newRootCommand builds the command tree with a fresh set of global options.
func newRootCommand() *cobra.Command {
	g := &globalOptions{
		// Argon2id's 64 MiB work area, on huge pages where the kernel
		// gives them only on request: see keyring.PrepareWorkArea.
		beforeKDF: keyring.PrepareWorkArea,
		// Argon2id just used 64 MiB. Collect it now, so the real work
		// reuses those pages instead of growing the heap past them
		// (raising the peak); they are not handed back to the kernel at
		// once, which would make that work fault every page in again (the
		// background scavenger returns what stays unused).
		afterUnlock: runtime.GC,
	}
	root := &cobra.Command{
		Use:           "coffer",
		Short:         "Encrypted, deduplicated, verifiable backups",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	g.register(root.PersistentFlags())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v", errUsage, err)
	})
	root.AddCommand(
		newAgentCommand(g),
		newBackupCommand(g),
		newCatCommand(g),
		newCheckCommand(g),
		newCopyCommand(g),
		newDiffCommand(g),
		newDumpCommand(g),
		newFindCommand(g),
		newFleetCommand(g),
		newEnrollCommand(g),
		newEscrowCommand(g),
		newForgetCommand(g),
		newGenerateCommand(),
		newInitCommand(g),
		newKeyCommand(g),
		newListCommand(g),
		newMountCommand(g),
		newLsCommand(g),
		newPruneCommand(g),
		newRestoreCommand(g),
		newServerCommand(g),
		newSnapshotsCommand(g),
		newStatsCommand(g),
		newTagCommand(g),
		newTLSCommand(),
		newUnlockCommand(g),
		newRepairCommand(g),
		newVersionCommand(g),
	)
	registerCompletions(root, g)
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv("GOGC") == "" {
		// Backups churn through chunk-sized buffers; collecting earlier
		// keeps peak memory near the live set.
		debug.SetGCPercent(40)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// A soft ceiling: above it the collector runs more often rather
		// than let the heap grow with its garbage. The live set of a backup
		// is well below it; a larger one still works, only collected harder.
		debug.SetMemoryLimit(96 << 20)
	}
	stopProfile := startProfile()
	cmd, err := newRootCommand().ExecuteContextC(ctx)
	stopProfile()
	if err != nil && (strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "required flag")) {
		err = fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: %v", context.Canceled, err)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%s interrupted (%w); %s", cmd.CommandPath(), err, interruptedNote(cmd.CommandPath()))
		}
		// A refusal of this client's certificate can come after the
		// repository opened (a revocation mid-command): explain it there too.
		fmt.Fprintf(os.Stderr, "coffer: %v\n", client.ExplainRemote(err))
	}
	os.Exit(exitCode(err))
}

// interruptedNote says, for a command stopped by SIGINT or SIGTERM, what
// the repository holds now: every command leaves it consistent, since
// nothing is referenced before it is complete.
func interruptedNote(command string) string {
	const consistent = "the repository is consistent"
	switch command {
	case "coffer backup":
		return consistent + ": no snapshot was written; data already uploaded will be reused by the next backup or removed by prune"
	case "coffer restore":
		return consistent + " and unchanged; the files restored so far are in the target: run the same restore again to finish (files already correct are skipped)"
	case "coffer forget":
		return consistent + ": the snapshots removed so far are gone, the rest are kept; run forget again to finish"
	case "coffer prune":
		return consistent + ": nothing in use was removed; run prune again to finish"
	case "coffer key add", "coffer key remove", "coffer key passwd", "coffer key rotate":
		return consistent + ": run `coffer key list` to see which key slots exist now"
	case "coffer copy":
		return consistent + ": the snapshots copied so far are complete; run the same copy again to finish (data already copied is not copied again)"
	case "coffer init":
		return "the repository may be incomplete: remove its directory and run init again"
	case "coffer check", "coffer snapshots", "coffer ls", "coffer cat", "coffer diff", "coffer dump", "coffer find",
		"coffer stats", "coffer list", "coffer mount":
		return consistent + " and unchanged"
	}
	return consistent + ": run the command again to finish"
}
