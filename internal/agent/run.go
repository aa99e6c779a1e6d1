package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coffer-backup/coffer/internal/archiver"
	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/client"
	"github.com/coffer-backup/coffer/internal/filter"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/keyring"
	"github.com/coffer-backup/coffer/internal/maintenance"
	"github.com/coffer-backup/coffer/internal/repository"
	"github.com/coffer-backup/coffer/internal/storage"
)

// maxReportedFiles bounds the file names in one report.
const maxReportedFiles = 1000

// pruneMaxUnused is the unused data prune tolerates, as `coffer prune`.
const pruneMaxUnused = "10%"

// Location returns where a policy repository lives: its location, or
// coffer://SERVER/NAME on the server the host enrolled with, NAME being
// the client's name with characters a repository name cannot hold ('.')
// replaced by '-'.
func Location(r policy.Repository, server, clientName string) string {
	if r.Location != "" {
		return r.Location
	}
	return "coffer://" + server + "/" + DefaultRepoName(clientName)
}

// DefaultRepoName is the repository name a client's policy repositories
// use on the server when they name no location.
func DefaultRepoName(clientName string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, clientName)
}

func (a *Agent) clientOptions(j *job) client.Options {
	state := filepath.Join(a.cfg.IdentityDir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		a.log.Warn("client state directory", "err", err)
	}
	source := a.cfg.SecretSource
	if a.cfg.Secret == nil {
		source = "the host key " + a.cfg.KeyFile
	}
	return client.Options{
		Location:    Location(j.spec, a.id.server, a.id.client),
		Credential:  client.Credential{Secret: a.secret(false), Source: source},
		StateDir:    state,
		IdentityDir: a.cfg.IdentityDir,
		BeforeKDF:   a.cfg.BeforeKDF,
		AfterUnlock: a.cfg.AfterUnlock,
		LimitUpload: a.cfg.LimitUpload, LimitDownload: a.cfg.LimitDownload,
		Warnf: func(format string, args ...any) {
			a.log.Warn(fmt.Sprintf(format, args...), "job", j.id, "repository", j.repo)
		},
		Infof: func(format string, args ...any) {
			a.log.Info(fmt.Sprintf(format, args...), "job", j.id, "repository", j.repo)
		},
	}
}

// secret returns the repositories' secret: Config.Secret, else the host
// key (made first when create is set and it does not exist).
func (a *Agent) secret(create bool) func(context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		if a.cfg.Secret != nil {
			return a.cfg.Secret(ctx)
		}
		return readHostKey(a.cfg.KeyFile, create)
	}
}

// open opens j's repository; with create, one that does not exist is made
// with the agent's secret: a recovery key (the host key) becomes its only
// slot, a passphrase a passphrase slot.
func (a *Agent) open(ctx context.Context, j *job, create bool) (*client.Client, error) {
	o := a.clientOptions(j)
	c, err := client.Open(ctx, o)
	if err == nil || !create || !errors.Is(err, storage.ErrNoRepository) {
		return c, err
	}
	secret, err := a.secret(true)(ctx)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	io := client.InitOptions{BeforeKDF: a.cfg.BeforeKDF}
	if rk, perr := keyring.ParseRecoveryKey(string(secret)); perr == nil {
		io.RecoveryKey = &rk
	} else {
		io.Passphrase = secret
	}
	c, _, err = client.Init(ctx, o, io)
	if errors.Is(err, client.ErrRepositoryExists) {
		return client.Open(ctx, o)
	}
	if err != nil {
		return nil, fmt.Errorf("create repository %s: %w", o.Location, err)
	}
	a.log.Info("repository created", "repository", j.repo, "location", o.Location, "key", o.Credential.Source)
	return c, nil
}

// ensureEscrow adds an escrow slot for the policy's escrow key unless the
// repository has one for it.
func (a *Agent) ensureEscrow(ctx context.Context, c *client.Client, j *job) error {
	if len(j.pol.EscrowPublicKey) == 0 {
		return nil
	}
	rcpt, err := keyring.EscrowRecipientFromBytes(j.pol.EscrowPublicKey)
	if err != nil {
		return fmt.Errorf("policy escrow key: %w", err)
	}
	r := c.Repository()
	slots, _, err := repository.LoadSlots(ctx, r.Storage())
	if err != nil {
		return err
	}
	for _, s := range slots {
		if s.Kind == keyring.SlotEscrow && s.Recipient == rcpt.String() {
			return nil
		}
	}
	s, err := r.AddEscrowSlot(ctx, rcpt)
	if err != nil {
		return fmt.Errorf("add escrow slot: %w", err)
	}
	a.log.Info("escrow slot added", "repository", j.repo, "slot", s.ID[:8], "escrow_key", rcpt.Fingerprint())
	return nil
}

// fileBytes sums the sizes of the files a backup stored, by status.
type fileBytes struct {
	new, changed, unchanged atomic.Int64
	hook                    func()
}

func (b *fileBytes) onFile(path string, s archiver.FileStatus) {
	if b.hook != nil {
		b.hook()
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return
	}
	switch s {
	case archiver.FileNew:
		b.new.Add(fi.Size())
	case archiver.FileChanged:
		b.changed.Add(fi.Size())
	default:
		b.unchanged.Add(fi.Size())
	}
}

func (a *Agent) runBackup(ctx context.Context, j *job, r *api.Report) error {
	c, err := a.open(ctx, j, true)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := a.ensureEscrow(ctx, c, j); err != nil {
		a.log.Error("escrow slot", "repository", j.repo, "err", err)
	}
	var fb fileBytes
	if h := a.cfg.fileHook; h != nil {
		fb.hook = func() { h(ctx) }
	}
	bo := client.BackupOptions{Paths: j.spec.Paths, ExcludePatterns: j.spec.Excludes, ExcludeCaches: j.spec.ExcludeCaches,
		ProgramVersion: "coffer " + a.cfg.Version, OnFile: fb.onFile}
	if len(j.spec.Excludes) > 0 {
		if bo.Exclude, err = filter.New(j.spec.Excludes); err != nil {
			return fmt.Errorf("excludes: %w", err)
		}
	}
	res, err := c.Backup(ctx, bo)
	if err != nil {
		return err
	}
	s := res.Snapshot
	r.Snapshot = s.ID.String()
	if sum := s.Summary; sum != nil {
		r.Stats = api.Stats{FilesNew: clamp(sum.FilesNew), FilesChanged: clamp(sum.FilesChanged), FilesUnchanged: clamp(sum.FilesUnmodified),
			BytesAdded: clamp(sum.DataAddedPacked)}
	}
	r.Stats.BytesNew, r.Stats.BytesChanged, r.Stats.BytesUnchanged = fb.new.Load(), fb.changed.Load(), fb.unchanged.Load()
	r.Stats.Errors = int64(len(res.Errors))
	if len(res.Errors) > 0 {
		r.State = api.StateWarning
		r.Error = fmt.Sprintf("%d sources could not be read; snapshot %s written without them", len(res.Errors), s.ID.Short())
		if j.pol.ReportFileNames {
			for _, e := range res.Errors[:min(len(res.Errors), maxReportedFiles)] {
				r.Files = append(r.Files, clip(e.Path))
			}
		}
	}
	return nil
}

func clamp(n uint64) int64 { return int64(min(n, 1<<62)) } // #nosec G115 -- clamped

func (a *Agent) runCheck(ctx context.Context, j *job) error {
	subset := ""
	if j.spec.Check != nil {
		subset = j.spec.Check.ReadDataSubset
	}
	if j.order != nil && j.order.Check != nil {
		subset = j.order.Check.ReadDataSubset
	}
	var co check.Options
	if subset != "" {
		s, err := check.ParseSubset(subset)
		if err != nil {
			return fmt.Errorf("read_data_subset: %w", err)
		}
		co.ReadData, co.Subset = true, s
	}
	c, err := a.open(ctx, j, false)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Check(ctx, co, false)
	if err != nil {
		return err
	}
	return res.Err()
}

func (a *Agent) runRestore(ctx context.Context, j *job, r *api.Report) error {
	o := j.order.Restore
	root := j.pol.Root()
	if !a.cfg.AllowRestoreInPlace {
		if err := confine(root, o.Target); err != nil {
			return err
		}
	}
	ro := client.RestoreOptions{Snapshot: o.Snapshot, Target: o.Target, Safe: within(root, o.Target)}
	if len(o.Include) > 0 {
		m, err := filter.New(o.Include)
		if err != nil {
			return fmt.Errorf("include: %w", err)
		}
		ro.Include = m
	}
	c, err := a.open(ctx, j, false)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Restore(ctx, ro)
	if res != nil && res.Progress != nil {
		p := res.Progress
		r.Stats.FilesNew, r.Stats.BytesNew, r.Stats.FilesUnchanged = clamp(p.Files.Load()), clamp(p.Bytes.Load()), clamp(p.Skipped.Load())
	}
	if res != nil && res.Snapshot != nil {
		r.Snapshot = res.Snapshot.ID.String()
	}
	if err != nil {
		return err
	}
	if n := len(res.Errors); n > 0 {
		r.State, r.Stats.Errors = api.StateWarning, int64(n)
		r.Error = fmt.Sprintf("%d entries could not be restored", n)
		if j.pol.ReportFileNames {
			for _, e := range res.Errors[:min(n, maxReportedFiles)] {
				r.Files = append(r.Files, clip(e.Path))
			}
		}
	}
	return nil
}

// runPrune forgets the snapshots the grant names and prunes, inside the
// grant's window.
func (a *Agent) runPrune(ctx context.Context, j *job) error {
	g := j.order.Grant
	if now := time.Now(); now.Before(g.NotBefore) || now.After(g.NotAfter) {
		return fmt.Errorf("the deletion grant is valid from %s to %s, not now", g.NotBefore.Format(time.RFC3339), g.NotAfter.Format(time.RFC3339))
	}
	c, err := a.open(ctx, j, false)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(g.Snapshots) > 0 {
		snaps, err := c.LoadSnapshots(ctx)
		if err != nil {
			return err
		}
		granted := map[string]bool{}
		for _, s := range g.Snapshots {
			granted[s] = true
		}
		var ids []string
		for _, s := range snaps {
			if granted[s.ID.String()] {
				ids = append(ids, s.ID.String())
			}
		}
		if len(ids) > 0 {
			if _, err := c.Forget(ctx, client.ForgetOptions{IDs: ids}); err != nil {
				return err
			}
		}
	}
	mu, err := maintenance.ParseMaxUnused(pruneMaxUnused)
	if err != nil {
		return err
	}
	_, err = c.Prune(ctx, maintenance.PruneOptions{MaxUnused: mu})
	return err
}
