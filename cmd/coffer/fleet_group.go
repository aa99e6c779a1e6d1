package main

import (
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/spf13/cobra"
)

func newFleetGroupCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Group hosts: a group's policy applies to its members"}
	cmd.AddCommand(
		&cobra.Command{
			Use: "add G", Short: "Make an empty group", Args: usageArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				if !api.ValidName(args[0]) {
					return usageErrorf("invalid group name %q", args[0])
				}
				if err := o.do(cmd.Context(), http.MethodPost, api.GroupsPath, api.GroupAdd{Name: args[0]}, nil); err != nil {
					return err
				}
				g.printf(cmd.OutOrStdout(), "group %q added\n", args[0])
				return nil
			},
		},
		&cobra.Command{
			Use: "assign G CLIENT...", Short: "Put clients into a group (out of the one they were in)", Args: usageArgs(cobra.MinimumNArgs(2)),
			RunE: func(cmd *cobra.Command, args []string) error {
				for _, n := range args {
					if !api.ValidName(n) {
						return usageErrorf("invalid name %q", n)
					}
				}
				if err := o.do(cmd.Context(), http.MethodPost, api.GroupsPath+"/"+args[0]+"/members", api.GroupAssign{Clients: args[1:]}, nil); err != nil {
					return err
				}
				g.printf(cmd.OutOrStdout(), "assigned %s to group %q\n", strings.Join(args[1:], ", "), args[0])
				return nil
			},
		},
		&cobra.Command{
			Use: "list", Short: "List the groups and their members", Args: usageArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, _ []string) error {
				var groups []fleetGroupJSON
				if err := o.do(cmd.Context(), http.MethodGet, api.GroupsPath, nil, &groups); err != nil {
					return err
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), groups)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "GROUP\tMEMBERS")
				for _, gr := range groups {
					fmt.Fprintf(tw, "%s\t%s\n", gr.Name, strings.Join(gr.Members, ", "))
				}
				return tw.Flush()
			},
		},
	)
	return cmd
}
