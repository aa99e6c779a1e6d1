package repository

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coffer-backup/coffer/internal/crypto"
	"github.com/coffer-backup/coffer/internal/storage"
)

// ErrLocked is returned when a conflicting lock is held.
var ErrLocked = errors.New("repository is locked")

// ErrLockNotWritten is returned by Lock when the lock object could not be
// stored (a full or read-only disk). Read-only commands go on without a
// lock, as with --no-lock, and say so.
var ErrLockNotWritten = errors.New("cannot write a lock")

// Lock timing; variables so tests can shorten them.
var (
	LockRefreshInterval = 5 * time.Minute
	LockStaleAfter      = 30 * time.Minute
)

// LockInfo is the content of a lock object.
type LockInfo struct {
	ID        ID        `json:"-"`
	Started   time.Time `json:"started"`
	Time      time.Time `json:"time"` // last refresh
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	User      string    `json:"user,omitempty"`
	Operation string    `json:"operation"`
	Exclusive bool      `json:"exclusive"`
	// Unreadable, when not nil, says why the lock object did not open or
	// decode; the other fields are then zero. Such a lock never goes stale
	// on its own: it conflicts only with exclusive locks, and `coffer
	// unlock` removes it.
	Unreadable error `json:"-"`
}

func (l *LockInfo) String() string {
	if l.Unreadable != nil {
		return fmt.Sprintf("unreadable lock %s (%v)", l.ID.Short(), l.Unreadable)
	}
	kind := "shared"
	if l.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock %s for %s by pid %d on %s (user %s), created %s", kind, l.ID.Short(), l.Operation, l.PID, l.Host, l.User, l.Started.Local().Format(time.RFC3339))
}

// Stale reports whether the lock's owner is gone: it names this host and a
// pid that does not exist, or it was not refreshed for LockStaleAfter.
func (l *LockInfo) Stale(now time.Time, host string) bool {
	if l.Unreadable != nil {
		return false
	}
	if now.Sub(l.Time) > LockStaleAfter {
		return true
	}
	if l.Host == host && l.PID > 0 {
		err := syscall.Kill(l.PID, 0)
		return errors.Is(err, syscall.ESRCH)
	}
	return false
}

// Hostname returns the name locks and snapshots record.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// LoadLocks loads every lock object; locks that vanish meanwhile are
// skipped. A lock that loads but does not open or decode is returned with
// Unreadable set (issue 10, item 7: one garbage object must not block
// every command); a failure to list or load is an error.
func (r *Repository) LoadLocks(ctx context.Context) ([]*LockInfo, error) {
	listed, err := r.listSized(ctx, storage.KindLocks)
	if err != nil {
		return nil, err
	}
	var out []*LockInfo
	for _, l := range listed {
		id := l.ID
		h := storage.Handle{Kind: storage.KindLocks, Name: id.String()}
		data, err := r.LoadObject(ctx, h, l.Size)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if errors.Is(err, ErrTooLarge) {
			out = append(out, &LockInfo{ID: id, Unreadable: err})
			continue
		}
		if err != nil {
			return nil, err // names the lock already
		}
		info := &LockInfo{ID: id}
		plain, err := crypto.OpenObject(crypto.KindLock, r.keys.lookup, r.id, h.String(), data)
		if err == nil {
			err = json.Unmarshal(plain, info)
		}
		if err != nil {
			*info = LockInfo{ID: id, Unreadable: err}
		}
		out = append(out, info)
	}
	return out, nil
}

// RemoveStaleLocks removes locks whose owners are gone and returns them.
// With unreadable, locks that do not open or decode are removed too.
func (r *Repository) RemoveStaleLocks(ctx context.Context, unreadable bool) ([]*LockInfo, error) {
	locks, err := r.LoadLocks(ctx)
	if err != nil {
		return nil, err
	}
	now, host := time.Now(), Hostname()
	var removed []*LockInfo
	for _, l := range locks {
		if l.Stale(now, host) || (unreadable && l.Unreadable != nil) {
			if err := r.RemoveLock(ctx, l.ID); err != nil {
				return removed, err
			}
			removed = append(removed, l)
		}
	}
	return removed, nil
}

// RemoveLock removes one lock object.
func (r *Repository) RemoveLock(ctx context.Context, id ID) error {
	err := r.st.Remove(ctx, storage.Handle{Kind: storage.KindLocks, Name: id.String()})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err // names the lock already
	}
	return nil
}

// HeldLock is a lock this process holds and refreshes.
type HeldLock struct {
	repo   *Repository
	mu     sync.Mutex
	info   LockInfo
	stop   chan struct{}
	done   chan struct{}
	closed bool
	lost   error
}

// Info returns the lock's current content.
func (h *HeldLock) Info() LockInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.info
}

// Lock takes a lock for operation. Stale locks are removed first. A shared
// lock conflicts with exclusive locks; an exclusive one with any lock.
func (r *Repository) Lock(ctx context.Context, operation string, exclusive bool) (*HeldLock, error) {
	if _, err := r.RemoveStaleLocks(ctx, false); err != nil {
		return nil, err
	}
	if err := r.checkConflicts(ctx, ID{}, exclusive); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	info := LockInfo{Started: now, Time: now, Host: Hostname(), PID: os.Getpid(), Operation: operation, Exclusive: exclusive}
	if u, err := user.Current(); err == nil {
		info.User = u.Username
	}
	id, err := r.SaveSealed(ctx, storage.KindLocks, crypto.KindLock, info)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLockNotWritten, err)
	}
	info.ID = id
	// Another process may have locked between our check and our write.
	if err := r.checkConflicts(ctx, id, exclusive); err != nil {
		_ = r.RemoveLock(context.WithoutCancel(ctx), id)
		return nil, err
	}
	h := &HeldLock{repo: r, info: info, stop: make(chan struct{}), done: make(chan struct{})}
	// The refresh loop must outlive the request context: it runs until
	// Unlock closes h.stop, so it keeps ctx's values but not its cancellation.
	go h.refreshLoop(context.WithoutCancel(ctx))
	return h, nil
}

func (r *Repository) checkConflicts(ctx context.Context, own ID, exclusive bool) error {
	locks, err := r.LoadLocks(ctx)
	if err != nil {
		return err
	}
	now, host := time.Now(), Hostname()
	var conflicts []string
	for _, l := range locks {
		if l.ID == own || l.Stale(now, host) {
			continue
		}
		if l.Unreadable != nil && !exclusive && own.IsNull() {
			r.warnf("%s is ignored by shared locks; `coffer unlock` removes it", l)
		}
		if exclusive || l.Exclusive {
			conflicts = append(conflicts, l.String()+": "+l.StaleHint(now, host))
		}
	}
	if len(conflicts) > 0 {
		return fmt.Errorf("%w by %s", ErrLocked, strings.Join(conflicts, "; "))
	}
	return nil
}

// StaleHint says when a live lock stops blocking and how to remove it
// sooner (issue 10, item 19: plain `unlock` removes only stale locks).
func (l *LockInfo) StaleHint(now time.Time, host string) string {
	switch {
	case l.Unreadable != nil:
		return "`coffer unlock` removes it"
	case l.Host == host:
		return fmt.Sprintf("process %d is running on this host; if it is not that coffer process (its pid was reused), `coffer unlock --remove-all` removes the lock", l.PID)
	}
	at := l.Time.Add(LockStaleAfter)
	return fmt.Sprintf("if its owner on %s is gone, the lock goes stale at %s (%s from now), or `coffer unlock --remove-all` removes it now",
		l.Host, at.Local().Format(time.RFC3339), at.Sub(now).Round(time.Second))
}

func (h *HeldLock) refreshLoop(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(LockRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			_ = h.Refresh(ctx)
		}
	}
}

// ErrLockLost is returned when this process's lock went stale (it was
// suspended or could not refresh for LockStaleAfter) or was removed by
// someone else: a prune may have deleted data it relies on, so it must not
// write a snapshot.
var ErrLockLost = errors.New("repository lock was lost")

// Valid reports ErrLockLost if the lock went stale or vanished since it was
// last refreshed. Writers call it before committing a snapshot.
func (h *HeldLock) Valid(ctx context.Context) error {
	h.mu.Lock()
	info := h.info
	lost := h.lost
	h.mu.Unlock()
	if lost != nil {
		return lost
	}
	if age := time.Since(info.Time); age > LockStaleAfter {
		return fmt.Errorf("%w: not refreshed for %s (was the machine suspended?); run the operation again", ErrLockLost, age.Round(time.Second))
	}
	_, err := h.repo.st.Stat(ctx, storage.Handle{Kind: storage.KindLocks, Name: info.ID.String()})
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: lock %s was removed by another process; run the operation again", ErrLockLost, info.ID.Short())
	}
	return err
}

// Refresh replaces the lock object with one carrying the current time.
func (h *HeldLock) Refresh(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.lost != nil {
		return nil
	}
	if age := time.Since(h.info.Time); age > LockStaleAfter {
		// Others may already have treated us as gone; never resurrect.
		h.lost = fmt.Errorf("%w: not refreshed for %s (was the machine suspended?); run the operation again", ErrLockLost, age.Round(time.Second))
		return h.lost
	}
	info := h.info
	info.Time = time.Now().UTC()
	id, err := h.repo.SaveSealed(ctx, storage.KindLocks, crypto.KindLock, info)
	if err != nil {
		return err
	}
	old := h.info.ID
	info.ID = id
	h.info = info
	return h.repo.RemoveLock(ctx, old)
}

// Unlock stops refreshing and removes the lock.
func (h *HeldLock) Unlock(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	id := h.info.ID
	h.mu.Unlock()
	close(h.stop)
	<-h.done
	return h.repo.RemoveLock(context.WithoutCancel(ctx), id)
}
