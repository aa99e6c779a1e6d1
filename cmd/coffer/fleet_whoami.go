package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/spf13/cobra"
)

func newFleetWhoAmICommand(g *globalOptions, o *fleetOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the server takes this identity for: name, role, scope and certificate expiry",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var w fleetWhoAmIJSON
			if err := o.do(cmd.Context(), http.MethodGet, api.WhoAmIPath, nil, &w); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), w)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s, role %s, scope %s\n", w.Kind, w.Name, w.Role, scopeText(w.Role, w.Scope))
			if t, err := time.Parse(time.RFC3339, w.CertExpires); err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "certificate expires %s (renewed by the fleet commands after two thirds of its lifetime)\n", t.Local().Format(time.DateTime))
			}
			return nil
		},
	}
}

// scopeText prints a scope as the server's refusals name it.
func scopeText(role string, scope []string) string {
	switch {
	case role == api.RoleAdmin:
		return "everything"
	case len(scope) == 0 && role == api.RoleAuditor:
		return "the whole fleet"
	case len(scope) == 0:
		return "nothing"
	}
	return strings.Join(scope, ", ")
}
