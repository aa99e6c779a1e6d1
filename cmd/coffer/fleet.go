package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/coffer-backup/coffer/internal/fleet/fleetclient"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/spf13/cobra"
)

// fleetOptions are the flags every fleet command shares.
type fleetOptions struct {
	identity string
	server   string
	// note prints an informational line unless --quiet.
	note func(format string, a ...any)
}

// client opens the fleet API client of the identity: --identity, else
// COFFER_IDENTITY, else the default identity directory.
func (o *fleetOptions) client() (*fleetclient.Client, error) {
	dir := o.identity
	if dir == "" {
		dir = identityDir()
	}
	c, err := fleetclient.Open(fleetclient.Options{Dir: dir, Server: o.server})
	if errors.Is(err, pki.ErrNoServerFile) {
		return nil, usageErrorf("%v; or pass --server HOST:PORT", err)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case c.RenewErr != nil:
		fmt.Fprintf(os.Stderr, "coffer: could not renew the certificate (valid until %s): %v\n", c.Expires.Local().Format(time.DateTime), c.RenewErr)
	case c.Renewed && o.note != nil:
		o.note("renewed the certificate, valid until %s", c.Expires.Local().Format(time.DateTime))
	}
	return c, nil
}

// do runs one request with a fresh client.
func (o *fleetOptions) do(ctx context.Context, method, path string, in, out any) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Do(ctx, method, path, in, out)
}

// newFleetCommand is the parent of the fleet administration commands; each
// subcommand lives in its own file and goes through the server's API.
func newFleetCommand(g *globalOptions) *cobra.Command {
	o := &fleetOptions{note: g.note}
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Administer a fleet through the server's API (status, jobs, restores, users, groups, policies)",
		Long: `The fleet commands talk to the server named in an identity directory
(--identity DIR, else $COFFER_IDENTITY, else ~/.config/coffer/identity) over
mutual TLS with that identity: the first administrator's is DIR/admin of the
server's state directory, made by coffer server init; people added with
coffer fleet user add enroll their own with coffer enroll. Every call passes
the server's role check; a refusal exits with code 14 and names the role and
the scope that fell short. There is no way around the API.`,
	}
	f := cmd.PersistentFlags()
	f.StringVar(&o.identity, "identity", "", "identity directory (default $COFFER_IDENTITY or ~/.config/coffer/identity)")
	f.StringVar(&o.server, "server", "", "the server, HOST:PORT (default: the identity's server file)")
	cmd.AddCommand(
		newFleetWhoAmICommand(g, o),
		newFleetUserCommand(g, o),
		newFleetGroupCommand(g, o),
		newFleetPolicyCommand(g, o),
		newFleetEscrowCommand(g, o),
		newFleetStatusCommand(g, o),
		newFleetJobsCommand(g, o),
		newFleetRunNowCommand(g, o),
		newFleetCancelCommand(g, o),
		newFleetRestoreCommand(g, o),
		newFleetAlertCommand(g, o),
		newFleetAuditCommand(g, o),
	)
	return cmd
}

// note prints an informational line on stderr unless --quiet.
func (g *globalOptions) note(format string, a ...any) {
	if !g.quiet {
		fmt.Fprintf(os.Stderr, format+"\n", a...)
	}
}
