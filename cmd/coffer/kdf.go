package main

import (
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/spf13/pflag"
)

// kdfFlags set the Argon2id parameters of new passphrase slots.
type kdfFlags struct {
	time    uint32
	memory  uint32
	threads uint8
}

func (k *kdfFlags) register(f *pflag.FlagSet) {
	d := keyring.DefaultKDFParams()
	f.Uint32Var(&k.time, "kdf-time", d.Time, "Argon2id passes for new passphrase slots")
	f.Uint32Var(&k.memory, "kdf-memory", d.MemoryKiB, "Argon2id memory in KiB for new passphrase slots")
	f.Uint8Var(&k.threads, "kdf-threads", d.Threads, "Argon2id lanes for new passphrase slots")
}

func (k *kdfFlags) params() (keyring.KDFParams, error) {
	p := keyring.KDFParams{Time: k.time, MemoryKiB: k.memory, Threads: k.threads}
	if err := p.Validate(); err != nil {
		return p, usageErrorf("%v", err)
	}
	return p, nil
}
