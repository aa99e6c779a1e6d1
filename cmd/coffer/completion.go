package main

import (
	"context"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/dump"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/spf13/cobra"
)

// registerCompletions adds completion of flag values and snapshot
// arguments to every command below root: cobra's own `completion`
// command then offers them in bash, zsh, fish and PowerShell.
func registerCompletions(root *cobra.Command, g *globalOptions) {
	fixed := map[string][]string{
		"cipher":      {crypto.AES256GCM.String(), crypto.ChaCha20Poly1305.String()},
		"compression": {compress.Auto.String(), compress.Off.String(), compress.Max.String()},
		"archive":     {string(dump.Tar), string(dump.Zip)},
	}
	snaps := g.completeSnapshots
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for name, vals := range fixed {
			if c.Flags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(vals, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		for _, name := range []string{"snapshot", "parent"} {
			if c.Flags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, snaps)
			}
		}
		if strings.Contains(c.Use, "SNAPSHOT") && c.ValidArgsFunction == nil && c.ValidArgs == nil {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if len(args) > 0 && !strings.Contains(cmd.Use, "SNAPSHOT...") {
					return nil, cobra.ShellCompDirectiveDefault // PATH and the like
				}
				return snaps(cmd, args, toComplete)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeSnapshots offers "latest" and the IDs of the repository's
// snapshots, newest first. It reads the repository only when the
// passphrase comes from a file, a command or the environment: completion
// never prompts, takes no lock and records nothing.
func (g *globalOptions) completeSnapshots(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	out := []cobra.Completion{"latest\tthe newest snapshot"}
	loc, _ := g.repoLocation()
	o := g.clientOptions(loc)
	if o.Credential.Source == "the terminal" {
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	o.StateDir, o.Warnf, o.Infof, o.AfterUnlock = "", nil, nil, nil
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Open(ctx, o)
	if err != nil {
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	defer func() { _ = c.Close() }()
	snaps, _, err := c.Repository().LoadSnapshots(ctx)
	if err != nil {
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		out = append(out, cobra.CompletionWithDesc(s.ID.Short(), snapshotDescription(s)))
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
}

func snapshotDescription(s *repository.Snapshot) string {
	d := s.Time.Local().Format("2006-01-02 15:04") + " " + s.Hostname + " " + strings.Join(s.Paths, ",")
	if len(s.Tags) > 0 {
		d += " [" + strings.Join(s.Tags, ",") + "]"
	}
	return d
}
