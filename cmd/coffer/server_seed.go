package main

import (
	"fmt"

	"github.com/coffer-backup/coffer/internal/server/seed"
	"github.com/coffer-backup/coffer/internal/wire"
	"github.com/spf13/cobra"
)

// newServerSeedCommand groups seed export and import.
func newServerSeedCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Ship the first copy for replication on a disk",
	}
	cmd.AddCommand(newSeedExportCommand(g), newSeedImportCommand(g))
	return cmd
}

func printSeedReport(g *globalOptions, cmd *cobra.Command, verb string, rep *seed.Report) error {
	out := cmd.OutOrStdout()
	if g.json {
		return printJSON(out, seedJSON{Objects: rep.Objects, Bytes: rep.Bytes, Written: rep.Written, PublicKey: rep.PublicKey, Fingerprint: rep.Fingerprint})
	}
	g.printf(out, "%s %d objects (%d bytes), %d written\n", verb, rep.Objects, rep.Bytes, rep.Written)
	if rep.PublicKey != "" {
		g.printf(out, "the manifest is signed with the key whose public half is %s (SHA-256 %s): give that file to the importer\n", rep.PublicKey, rep.Fingerprint)
	}
	return nil
}

func newSeedExportCommand(g *globalOptions) *cobra.Command {
	var (
		opts seed.ExportOptions
	)
	cmd := &cobra.Command{
		Use:   "export --dir DIR [--clients C,...] --to SEEDDIR",
		Short: "Write the stored objects, as the clients' ciphertext, to a directory to ship",
		Long: `Export writes every object of the selected clients to SEEDDIR as the
client's own ciphertext (the at-rest layer removed), in
objects/CLIENT/REPO/ in the repository layout, then manifest.json (each
object's size and SHA-256) and manifest.sig, its Ed25519 signature with the
server's seed key (DIR/seed.key, mode 0600, made on first use; its public
half is DIR/seed.pub). Run again, it keeps what is already written. It only
reads the state directory, so it can run beside the server.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(opts.Dir); err != nil {
				return err
			}
			if opts.To == "" {
				return usageErrorf("--to is required")
			}
			rep, err := seed.Export(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return printSeedReport(g, cmd, "exported", rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", "", "server state directory")
	f.StringSliceVar(&opts.Clients, "clients", nil, "export only these clients (default: all)")
	f.StringVar(&opts.To, "to", "", "the seed directory to write")
	return cmd
}

func newSeedImportCommand(g *globalOptions) *cobra.Command {
	var (
		opts   seed.ImportOptions
		pubKey string
	)
	cmd := &cobra.Command{
		Use:   "import --dir DIR --from SEEDDIR --public-key FILE [--as CLIENT]",
		Short: "Check a shipped seed and store its objects at this server",
		Long: `Import checks SEEDDIR's manifest signature with the exporting server's
public key (its seed.pub, given with --public-key), then every object
against the manifest, and only then stores them, sealed with this server's
at-rest key. A tampered seed is refused whole, naming the object.

--as CLIENT stores each repository where replication from the exporter puts
it: in the namespace of CLIENT, the name the exporter is enrolled under
here, as CLIENT--REPO. Without --as, each object stays in its own client's
namespace. The server must be stopped while importing. Afterwards the
usage the quotas count is counted again, as server scrub does.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireDir(opts.Dir); err != nil {
				return err
			}
			if opts.From == "" || pubKey == "" {
				return usageErrorf("--from and --public-key are required")
			}
			if opts.As != "" {
				if err := wire.ValidateClientName(opts.As); err != nil {
					return usageErrorf("--as: %v", err)
				}
			}
			pub, err := seed.LoadPublicKey(pubKey)
			if err != nil {
				return err
			}
			opts.PublicKey = pub
			rep, err := seed.Import(cmd.Context(), opts)
			if err != nil {
				return fmt.Errorf("seed import refused: %w", err)
			}
			// What the quotas count includes the imported objects.
			if _, err := recountUsage(cmd, opts.Dir); err != nil {
				return fmt.Errorf("seed imported; counting its usage failed (run server scrub): %w", err)
			}
			return printSeedReport(g, cmd, "imported", rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", "", "server state directory")
	f.StringVar(&opts.From, "from", "", "the seed directory")
	f.StringVar(&pubKey, "public-key", "", "the exporting server's seed.pub")
	f.StringVar(&opts.As, "as", "", "store the copies in this client's namespace, as replication to this server does")
	return cmd
}
