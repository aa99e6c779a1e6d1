package main

import (
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/spf13/cobra"
)

func newFleetUserCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Add, list and remove the people who administer the fleet"}
	cmd.AddCommand(newFleetUserAddCommand(g, o), newFleetUserListCommand(g, o), newFleetUserRemoveCommand(g, o))
	return cmd
}

func newFleetUserAddCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	var (
		role  string
		scope []string
		ttl   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "add NAME --role admin|operator|auditor [--scope group:G | client:C ...] [--ttl 15m]",
		Short: "Add a person and print a one-time enrollment token for it",
		Long: `Add records a person with a role and prints a one-time enrollment token on
standard output. The person redeems it with coffer enroll --server HOST:PORT
--token-file FILE --identity DIR, as a host does, and gets a user
certificate: it opens no repository, and reaches the fleet API with the
rights of its role.

Roles: admin (everything), operator (status, jobs, run-now, cancel, restore,
within its scope), auditor (read-only status, jobs, audit, TLS report;
within its scope if it has one). A scope lists group:G and client:C; an
operator needs one, an admin takes none.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl < 0 || ttl > 30*24*time.Hour {
				return usageErrorf("--ttl must be between 0 and 720h")
			}
			req := api.UserAdd{Name: args[0], Role: role, Scope: scope, TTLSeconds: int64(ttl / time.Second)}
			if err := req.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			var tok fleetUserTokenJSON
			if err := o.do(cmd.Context(), http.MethodPost, api.UsersPath, req, &tok); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), tok)
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok.Token)
			g.note("one-time token for user %q (role %s), valid until %s\nthey run: coffer enroll --server HOST:PORT --token-file FILE --identity DIR", tok.Name, tok.Role, tok.Expires)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "", "admin, operator or auditor")
	f.StringSliceVar(&scope, "scope", nil, "group:G or client:C the user may act on (repeatable, comma-separated)")
	f.DurationVar(&ttl, "ttl", 0, "how long the token stays valid (default 15m, at most 720h)")
	return cmd
}

func newFleetUserListCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the fleet's users with their roles and scopes",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var users []fleetUserJSON
			if err := o.do(cmd.Context(), http.MethodGet, api.UsersPath, nil, &users); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), users)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tSCOPE\tCERTIFICATE")
			for _, u := range users {
				cert := "not enrolled"
				if u.Enrolled {
					cert = "until " + u.CertExpires
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, scopeText(u.Role, u.Scope), cert)
			}
			return tw.Flush()
		},
	}
}

func newFleetUserRemoveCommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a user and revoke its certificate",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !api.ValidName(args[0]) {
				return usageErrorf("invalid user name %q", args[0])
			}
			if err := o.do(cmd.Context(), http.MethodDelete, api.UsersPath+"/"+args[0], nil, nil); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), fleetRemovedJSON{Name: args[0], Removed: true})
			}
			g.printf(cmd.OutOrStdout(), "removed user %q; its certificate is revoked\n", args[0])
			return nil
		},
	}
}
