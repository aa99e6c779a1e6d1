package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coffer-backup/coffer/internal/atomicfile"
	"github.com/coffer-backup/coffer/internal/chunker"
	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/compress"
	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
	"github.com/spf13/cobra"
)

type initOptions struct {
	cipher          string
	compression     string
	chunkAvg        int
	recoveryKeyFile string
	kdf             kdfFlags
	// copyChunker takes the chunker parameters and the blob-ID and
	// chunker keys of the repository from names.
	copyChunker bool
	from        fromRepoFlags
}

func newInitCommand(g *globalOptions) *cobra.Command {
	var o initOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new encrypted repository at --repo (or COFFER_REPO, or the default
location). With --recovery-key-file, a recovery key is written to that file
(mode 0600); it opens the repository like a passphrase and should be kept offline.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			loc, _ := g.repoLocation()
			c, rk, err := g.initRepository(cmd, loc, o)
			if err != nil {
				return err
			}
			defer c.Close()
			r := c.Repository()
			if err := writeRecoveryKey(o.recoveryKeyFile, rk); err != nil {
				return err
			}
			if g.json {
				from, _ := r.SharedKeysFrom()
				return printJSON(cmd.OutOrStdout(), initJSON{ID: r.Config().ID, Location: loc, Cipher: r.Config().Cipher, SharedKeysFrom: from})
			}
			g.printf(cmd.OutOrStdout(), "created coffer repository %s at %s\n", r.Config().ID[:8], loc)
			if from, ok := r.SharedKeysFrom(); ok {
				g.printf(cmd.OutOrStdout(), "it uses the chunker and blob-ID keys of repository %s: copies between them need no re-chunking\n", from[:8])
			}
			if rk != nil {
				g.printf(cmd.OutOrStdout(), "recovery key written to %s: keep it offline; it opens the repository\n", o.recoveryKeyFile)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cipher, "cipher", "aes-256-gcm", "AEAD cipher: aes-256-gcm or chacha20-poly1305")
	f.StringVar(&o.compression, "compression", "auto", "default compression: auto, off or max")
	f.Var(newSizeFlag(&o.chunkAvg, chunker.DefaultParams.Avg), "chunk-size", "average chunk size, a power of two (\"1M\", \"512KiB\")")
	f.StringVar(&o.recoveryKeyFile, "recovery-key-file", "", "write a recovery key to this file (mode 0600)")
	o.kdf.register(f)
	f.BoolVar(&o.copyChunker, "copy-chunker-params", false, "use the chunker parameters and the blob-ID and chunker keys of --from-repo, so that the new repository deduplicates with it and copy needs no re-chunking (docs/security.md §4)")
	o.from.register(f)
	return cmd
}

// sharedKeys opens the repository of --from-repo when
// --copy-chunker-params asks for its keys, and returns them with its
// chunker parameters; nil without the flag.
func (g *globalOptions) sharedKeys(cmd *cobra.Command, o initOptions) (*repository.SharedKeys, chunker.Params, error) {
	if !o.copyChunker {
		if o.from != (fromRepoFlags{}) {
			return nil, chunker.Params{}, usageErrorf("--from-repo and its credential flags go with --copy-chunker-params")
		}
		return nil, chunker.Params{}, nil
	}
	if cmd.Flags().Changed("chunk-size") {
		return nil, chunker.Params{}, usageErrorf("--chunk-size and --copy-chunker-params exclude each other: the chunker comes from --from-repo")
	}
	src, err := o.from.open(cmd.Context(), g)
	if err != nil {
		return nil, chunker.Params{}, err
	}
	defer src.Close()
	r := src.Repository()
	return r.ShareKeys(), r.Config().Chunker, nil
}

func (g *globalOptions) initRepository(cmd *cobra.Command, loc string, o initOptions) (*client.Client, *keyring.RecoveryKey, error) {
	c, err := crypto.ParseCipher(o.cipher)
	if err != nil {
		return nil, nil, usageErrorf("%v", err)
	}
	mode, err := compress.ParseMode(o.compression)
	if err != nil {
		return nil, nil, usageErrorf("%v", err)
	}
	params := chunker.Params{Min: o.chunkAvg / 4, Avg: o.chunkAvg, Max: o.chunkAvg * 8}
	if err := params.Validate(); err != nil {
		return nil, nil, usageErrorf("--chunk-size: %v", err)
	}
	shared, sharedParams, err := g.sharedKeys(cmd, o)
	if err != nil {
		return nil, nil, err
	}
	if shared != nil {
		params = sharedParams
	}
	kdf, err := o.kdf.params()
	if err != nil {
		return nil, nil, err
	}
	if o.recoveryKeyFile != "" {
		if _, err := os.Lstat(o.recoveryKeyFile); err == nil {
			return nil, nil, fmt.Errorf("recovery key file %s already exists; refusing to overwrite it", o.recoveryKeyFile)
		}
	}
	if l, err := storage.ParseLocation(loc); err == nil && l.Scheme == storage.SchemeLocal && client.Exists(cmd.Context(), g.clientOptions(loc)) {
		// Said before the passphrase is asked for twice (a server is
		// asked only once, by the create itself).
		return nil, nil, fmt.Errorf("create repository %s: %w; it was left as it is: back up to it with --repo %s", loc, client.ErrRepositoryExists, loc)
	}
	pass, err := g.readPassword(cmd.Context(), "enter a passphrase for the new repository: ", true)
	if err != nil {
		return nil, nil, err
	}
	defer clear(pass)
	cl, rk, err := client.Init(cmd.Context(), g.clientOptions(loc), client.InitOptions{
		Passphrase: pass, Cipher: c, Chunker: params, Compression: mode, KDF: kdf, Recovery: o.recoveryKeyFile != "", Shared: shared,
	})
	if errors.Is(err, client.ErrRepositoryExists) {
		return nil, nil, fmt.Errorf("%w; it was left as it is: back up to it with --repo %s", err, loc)
	}
	return cl, rk, err
}

// writeRecoveryKey writes the key to path with mode 0600, never over an
// existing file.
func writeRecoveryKey(path string, rk *keyring.RecoveryKey) error {
	if rk == nil || path == "" {
		return nil
	}
	f, err := createRecoveryKeyFile(path)
	if err != nil {
		return err
	}
	return writeRecoveryKeyTo(f, rk)
}

// createRecoveryKeyFile creates path with mode 0600; an existing file is
// an error, never overwritten.
func createRecoveryKeyFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the user names the file
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("recovery key file %s already exists; refusing to overwrite it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("write recovery key: %w", err)
	}
	return f, nil
}

// writeRecoveryKeyTo writes the key to f, syncs and closes it.
func writeRecoveryKeyTo(f *os.File, rk *keyring.RecoveryKey) error {
	if _, err := fmt.Fprintln(f, rk.String()); err != nil {
		_ = f.Close()
		return fmt.Errorf("write recovery key: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("write recovery key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write recovery key: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(f.Name()))
}
