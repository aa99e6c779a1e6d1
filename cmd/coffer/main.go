// Command coffer is the client, agent and storage server of coffer, an
// encrypted, deduplicated, verifiable backup system. Each command lives in
// its own file; logic lives in internal/ packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// newRootCommand builds the command tree with a fresh set of global options.
func newRootCommand() *cobra.Command {
	g := &globalOptions{}
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
		newBackupCommand(g),
		newCatCommand(g),
		newCheckCommand(g),
		newDiffCommand(g),
		newEnrollCommand(g),
		newForgetCommand(g),
		newInitCommand(g),
		newKeyCommand(g),
		newListCommand(g),
		newLsCommand(g),
		newPruneCommand(g),
		newRestoreCommand(g),
		newServerCommand(g),
		newSnapshotsCommand(g),
		newStatsCommand(g),
		newTLSCommand(),
		newUnlockCommand(g),
		newVersionCommand(),
	)
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
	err := newRootCommand().ExecuteContext(ctx)
	stopProfile()
	if err != nil && (strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "required flag")) {
		err = fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: %v", context.Canceled, err)
		}
		fmt.Fprintf(os.Stderr, "coffer: %v\n", err)
	}
	os.Exit(exitCode(err))
}
