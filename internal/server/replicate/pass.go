package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/storage"
)

// ErrIncomplete is wrapped by the error of a pass that could not copy or
// verify every object; the objects it names are tried again next pass.
var ErrIncomplete = errors.New("replication incomplete")

// ErrMismatch is wrapped by the error about an object the target holds
// with other content than the primary's: a target that serves a different
// object than it acknowledged, or one that was changed there.
var ErrMismatch = errors.New("the target holds a different object")

// DB is the state database as a pass uses it.
type DB interface {
	ReplicaTarget(ctx context.Context, name string) (serverdb.ReplicaTarget, error)
	ReplicaStarted(ctx context.Context, name string, at time.Time) error
	ReplicaFinished(ctx context.Context, name string, at time.Time, passErr string) error
	ReplicaObjects(ctx context.Context, target, client, repo string) ([]serverdb.ReplicaObject, error)
	PutReplicaObject(ctx context.Context, o serverdb.ReplicaObject) error
	PutReplicaObjects(ctx context.Context, objs []serverdb.ReplicaObject) error
	RemoveReplicaObject(ctx context.Context, o serverdb.ReplicaObject) error
	// TryLock takes a lock among the servers sharing the database
	// (serverdb.ErrLockHeld if another holds it) and returns its release.
	TryLock(ctx context.Context, name string) (func(), error)
}

// PassOptions configure one pass.
type PassOptions struct {
	// Dir is the server's state directory.
	Dir string
	// Source is the primary's object tree.
	Source Source
	// DB is the state database.
	DB DB
	// ReadBack reads every object the target holds back and compares its
	// content hash with the primary's, besides the usual checks.
	ReadBack bool
	// Parallel, if positive, overrides the target's number of concurrent
	// object copies.
	Parallel int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives progress (default: discarded).
	Logger *slog.Logger
}

// ObjectError is one object a pass could not copy, verify or delete.
type ObjectError struct {
	Client, Repo, Object string
	Err                  error
}

func (e ObjectError) Error() string {
	return fmt.Sprintf("%s/%s %s: %v", e.Client, e.Repo, e.Object, e.Err)
}

// Report is what one pass did.
type Report struct {
	Target    string
	Repos     int
	Sent      int64 // objects copied and verified
	SentBytes int64
	Adopted   int64 // objects found at the target, verified and recorded
	Verified  int64 // objects read back (PassOptions.ReadBack)
	Deleted   int64 // objects deleted at the target after keep-deleted
	Kept      int64 // objects deleted at the primary that the target keeps for now
	Held      int64 // deletion records (forgets, condemned) not sent before keep-deleted
	Locked    int64 // objects deleted at the primary, past keep-deleted, whose object lock has not ended
	Extended  int64 // copies whose object-lock retention was extended
	Failed    []ObjectError
	Duration  time.Duration
}

// DefaultParallel is how many objects a pass copies at once unless the
// target says otherwise.
const DefaultParallel = 4

// MaxParallel bounds a target's concurrent copies.
const MaxParallel = 64

// pass is the state of one running pass.
type pass struct {
	opts     PassOptions
	cfg      serverdb.ReplicaTarget
	tgt      target
	th       *Throttle // shared by the workers
	now      func() time.Time
	log      *slog.Logger
	parallel int
	lockFor  time.Duration      // the retention of each copy; 0: no object lock
	names    map[string]RepoKey // target location → repository, to refuse two that map to one

	mu  sync.Mutex // guards rep while workers run
	rep *Report
}

// count updates the report under the pass's lock.
func (p *pass) count(f func(r *Report)) {
	p.mu.Lock()
	f(p.rep)
	p.mu.Unlock()
}

// renewBefore is how long before its retention ends a copy's retention
// is extended: a third of the lock.
func (p *pass) renewBefore() time.Duration { return p.lockFor / 3 }

// Run makes one pass of target name: every selected repository of the
// primary is brought to the target. It returns the report and, when any
// object failed, an error wrapping ErrIncomplete that names them; the
// outcome is recorded in the DB either way.
func Run(ctx context.Context, name string, opts PassOptions) (*Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := opts.DB.ReplicaTarget(ctx, name)
	if err != nil {
		return nil, err
	}
	// The state directory's lock (Lock) keeps one pass per directory;
	// servers sharing a database run from copies of it, so the database's
	// lock keeps one pass among them.
	release, err := opts.DB.TryLock(ctx, "replicate:"+name)
	if errors.Is(err, serverdb.ErrLockHeld) {
		return nil, fmt.Errorf("%w: %s (a pass runs on another server)", ErrBusy, name)
	}
	if err != nil {
		return nil, err
	}
	defer release()
	limit, err := ParseLimit(cfg.RateLimit)
	if err != nil {
		return nil, err
	}
	lockFor := time.Duration(cfg.LockDays) * 24 * time.Hour
	tgt, err := openTarget(cfg.Location, TargetDir(opts.Dir, name), lockFor, opts.Now)
	if err != nil {
		return nil, err
	}
	start := opts.Now()
	if err := opts.DB.ReplicaStarted(ctx, name, start); err != nil {
		return nil, err
	}
	p := &pass{opts: opts, cfg: cfg, tgt: tgt, th: NewThrottle(limit, opts.Now), now: opts.Now, log: opts.Logger,
		parallel: parallelOf(opts.Parallel, cfg.Parallel), lockFor: lockFor, rep: &Report{Target: name}, names: map[string]RepoKey{}}
	runErr := p.checkLock(ctx)
	if runErr == nil {
		runErr = p.run(ctx)
	}
	p.rep.Duration = opts.Now().Sub(start)
	if runErr == nil && len(p.rep.Failed) > 0 {
		runErr = p.failure()
	}
	msg := ""
	if runErr != nil {
		msg = runErr.Error()
	}
	if err := opts.DB.ReplicaFinished(context.WithoutCancel(ctx), name, opts.Now(), msg); err != nil && runErr == nil {
		runErr = err
	}
	return p.rep, runErr
}

// parallelOf is the number of concurrent copies: the pass's override,
// else the target's, else DefaultParallel; at most MaxParallel.
func parallelOf(override, target int) int {
	n := DefaultParallel
	switch {
	case override > 0:
		n = override
	case target > 0:
		n = target
	}
	return min(n, MaxParallel)
}

// checkLock refuses a pass to a target with object lock whose bucket
// does not have it enabled.
func (p *pass) checkLock(ctx context.Context) error {
	if p.lockFor == 0 {
		return nil
	}
	return p.tgt.checkLock(ctx)
}

// failure is the error naming the failed objects (the first ten).
func (p *pass) failure() error {
	var b strings.Builder
	for i, f := range p.rep.Failed {
		if i == 10 {
			fmt.Fprintf(&b, "; and %d more", len(p.rep.Failed)-10)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	err := fmt.Errorf("%w: %d objects failed: %s", ErrIncomplete, len(p.rep.Failed), b.String())
	for _, f := range p.rep.Failed {
		if errors.Is(f.Err, ErrMismatch) {
			return fmt.Errorf("%w (%w)", err, ErrMismatch)
		}
	}
	return err
}

func (p *pass) fail(k RepoKey, object string, err error) {
	p.log.Warn("replication", "target", p.cfg.Name, "client", k.Client, "repo", k.Repo, "object", object, "err", err)
	p.count(func(r *Report) {
		r.Failed = append(r.Failed, ObjectError{Client: k.Client, Repo: k.Repo, Object: object, Err: err})
	})
}

// run brings every repository over: those at the primary and those the
// target holds copies of (whose deletions may be due).
func (p *pass) run(ctx context.Context) error {
	repos, err := p.opts.Source.Repos(ctx, p.cfg.Clients)
	if err != nil {
		return err
	}
	recs, err := p.opts.DB.ReplicaObjects(ctx, p.cfg.Name, "", "")
	if err != nil {
		return err
	}
	byRepo := map[RepoKey][]serverdb.ReplicaObject{}
	for _, o := range recs {
		k := RepoKey{o.Client, o.Repo}
		byRepo[k] = append(byRepo[k], o)
	}
	seen := map[RepoKey]bool{}
	for _, k := range repos {
		seen[k] = true
	}
	for k := range byRepo {
		if !seen[k] {
			repos = append(repos, k)
		}
	}
	sort.Slice(repos, func(i, j int) bool { return repos[i].String() < repos[j].String() })
	for _, k := range repos {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.rep.Repos++
		if err := p.repo(ctx, k, byRepo[k]); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			p.fail(k, "", err)
		}
	}
	return nil
}

// held is what the target lists of one object.
type held struct {
	size int64
	tag  string
}

// stat is what the target reports of one object.
type stat struct {
	size        int64
	tag         string
	retainUntil time.Time // zero: not locked
}

// repo brings one repository over.
func (p *pass) repo(ctx context.Context, k RepoKey, recs []serverdb.ReplicaObject) error {
	where := p.tgt.where(k)
	if other, dup := p.names[where]; dup {
		return fmt.Errorf("%s and %s would both be copied to %s", other, k, where)
	}
	p.names[where] = k
	objs, err := p.opts.Source.objects(ctx, k)
	if err != nil {
		return err
	}
	_, hasConfig := objs[storage.Handle{Kind: storage.KindConfig, Name: "config"}]
	tr, err := p.tgt.open(ctx, k, hasConfig)
	if errors.Is(err, storage.ErrNoRepository) && !hasConfig {
		return p.forgetGone(ctx, k, recs)
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", where, err)
	}
	defer func() { _ = tr.close() }()
	have, err := listTarget(ctx, tr)
	if err != nil {
		return fmt.Errorf("list %s: %w", where, err)
	}
	rs := &repoSync{p: p, k: k, tr: tr, objs: objs, have: have, recs: map[storage.Handle]serverdb.ReplicaObject{}}
	for _, r := range recs {
		rs.recs[storage.Handle{Kind: storage.Kind(r.Kind), Name: r.Name}] = r
	}
	return rs.sync(ctx)
}

// forgetGone handles a repository whose copy the target does not have
// and the primary no longer has: what the DB records of it is dropped once
// its deletions are due.
func (p *pass) forgetGone(ctx context.Context, k RepoKey, recs []serverdb.ReplicaObject) error {
	rs := &repoSync{p: p, k: k, have: map[storage.Handle]held{}, objs: map[storage.Handle]objectInfo{}, recs: map[storage.Handle]serverdb.ReplicaObject{}}
	for _, r := range recs {
		rs.recs[storage.Handle{Kind: storage.Kind(r.Kind), Name: r.Name}] = r
	}
	return rs.deletions(ctx)
}

func listTarget(ctx context.Context, tr targetRepo) (map[storage.Handle]held, error) {
	have := map[storage.Handle]held{}
	for _, kind := range storage.Kinds {
		if !replicated(kind) {
			continue
		}
		err := tr.list(ctx, kind, func(name string, size int64, tag string) error {
			have[storage.Handle{Kind: kind, Name: name}] = held{size: size, tag: tag}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return have, nil
}
