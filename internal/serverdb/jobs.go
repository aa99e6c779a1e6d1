package serverdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrConflict: a record with that key exists already, or a change conflicts
// with the stored one.
var ErrConflict = errors.New("conflicting record")

// Job is one fleet job (a row of the jobs table, kept as the job's
// history). The fleet layer (internal/server/fleet/control) decides what is
// stored; the database only keeps it. Stats, Files and Spec are JSON the
// fleet layer wrote.
type Job struct {
	ID         string // 32 lowercase hex digits
	Client     string
	Kind       string // backup, prune, check, restore
	Repository string // the policy repository's name
	State      string // queued, running, succeeded, ...
	Scheduled  bool   // started by the agent from its policy
	Created    time.Time
	Updated    time.Time // the last state change the server stored
	Start, End time.Time
	Stats      []byte // the agent's figures (JSON), empty if none
	Snapshot   string
	Error      string
	Files      []byte // JSON list of file names, only when the policy allows them
	Spec       []byte // an ordered job as sent to the agent (JSON); empty for scheduled jobs
	OrderedBy  string // who ordered it ("user:NAME"), empty for scheduled jobs
	// CancelRequested: someone asked to cancel the job; the agent is told.
	CancelRequested bool
	// ServerSet: State was set by the server (failed at a restart,
	// cancelled before delivery, missed), not reported by the agent.
	ServerSet bool
}

// JobFilter selects jobs; zero fields select everything.
type JobFilter struct {
	Client     string
	Kind       string
	Repository string
	States     []string
	// Ordered selects jobs the server ordered (with a Spec) only.
	Ordered bool
	// CancelRequested selects jobs with a pending cancellation only.
	CancelRequested bool
	// Limit bounds the result (<= 0: no bound).
	Limit int
	// Oldest orders oldest first; the default is newest first.
	Oldest bool
}

const jobColumns = `id, client, kind, repository, state, scheduled, created, updated, start, end_time, stats, snapshot, error, files, spec, ordered_by, cancel_requested, server_set`

func jobArgs(j Job) []any {
	return []any{j.ID, j.Client, j.Kind, j.Repository, j.State, boolInt(j.Scheduled), nanos(j.Created), nanos(j.Updated),
		nanos(j.Start), nanos(j.End), string(j.Stats), j.Snapshot, j.Error, string(j.Files), string(j.Spec), j.OrderedBy,
		boolInt(j.CancelRequested), boolInt(j.ServerSet)}
}

func scanJob(r scanner) (Job, error) {
	var j Job
	var scheduled, cancel, serverSet, created, updated, start, end int64
	var stats, files, spec string
	err := r.Scan(&j.ID, &j.Client, &j.Kind, &j.Repository, &j.State, &scheduled, &created, &updated, &start, &end,
		&stats, &j.Snapshot, &j.Error, &files, &spec, &j.OrderedBy, &cancel, &serverSet)
	if err != nil {
		return Job{}, err
	}
	j.Scheduled, j.CancelRequested, j.ServerSet = scheduled != 0, cancel != 0, serverSet != 0
	j.Created, j.Updated, j.Start, j.End = fromNanos(created), fromNanos(updated), fromNanos(start), fromNanos(end)
	j.Stats, j.Files, j.Spec = bytesOrNil(stats), bytesOrNil(files), bytesOrNil(spec)
	return j, nil
}

func bytesOrNil(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func validJob(j Job) error {
	// A report of a refused policy (kind "policy") has no repository.
	if j.ID == "" || j.Client == "" || j.Kind == "" || j.Repository == "" && j.Kind != "policy" || j.State == "" || j.Created.IsZero() {
		return fmt.Errorf("%w: a job needs an ID, client, kind, repository (but a policy report), state and creation time", ErrInvalidRecord)
	}
	return nil
}

// InsertJob stores a new job; ErrConflict if its ID exists.
func (s *Store) InsertJob(ctx context.Context, j Job) error {
	if err := validJob(j); err != nil {
		return err
	}
	return insertJob(ctx, s.db, j)
}

func insertJob(ctx context.Context, x execer, j Job) error {
	res, err := x.ExecContext(ctx, `INSERT INTO jobs (`+jobColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`, jobArgs(j)...)
	if err != nil {
		return fmt.Errorf("insert job %s: %w", j.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("insert job %s: %w", j.ID, err)
	} else if n == 0 {
		return fmt.Errorf("insert job %s: %w: the ID exists", j.ID, ErrConflict)
	}
	return nil
}

// Job returns one job or ErrNotFound.
func (s *Store) Job(ctx context.Context, id string) (Job, error) {
	j, err := scanJob(s.db.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("read job %s: %w", id, err)
	}
	return j, nil
}

// UpdateJob reads job id and calls change with it (found false and the
// zero Job when there is none) inside one transaction, then stores the Job
// change returns in its place (inserting it if none was found); a nil Job
// stores nothing. An error from change rolls back and is returned as is.
// The stored job keeps id whatever change sets.
func (s *Store) UpdateJob(ctx context.Context, id string, change func(cur Job, found bool) (*Job, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update job %s: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	refused, err := updateJobTx(ctx, tx, id, change)
	if refused != nil {
		return refused
	}
	if err != nil {
		return err
	}
	return tx.Commit()
}

// JobUpdate is one change of UpdateJobs, as UpdateJob's arguments.
type JobUpdate struct {
	ID     string
	Change func(cur Job, found bool) (*Job, error)
}

// UpdateJobs applies updates in order, as UpdateJob would one by one, in
// one transaction: one commit, one sync to disk, for as many changes as
// arrive together (a fleet's agents reporting at the same minute). It
// returns each update's error: a change that fails, or returns an invalid
// job, leaves its job as it was and the others go ahead. When the
// database fails, nothing of the batch is kept and each update is tried
// again in a transaction of its own, so one cannot fail the others.
func (s *Store) UpdateJobs(ctx context.Context, updates []JobUpdate) []error {
	errs := make([]error, len(updates))
	if len(updates) == 0 {
		return errs
	}
	err := func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		for i, u := range updates {
			var dbErr error
			if errs[i], dbErr = updateJobTx(ctx, tx, u.ID, u.Change); dbErr != nil {
				return dbErr
			}
		}
		return tx.Commit()
	}()
	if err != nil {
		for i, u := range updates {
			errs[i] = s.UpdateJob(ctx, u.ID, u.Change)
		}
	}
	return errs
}

// updateJobTx is UpdateJob inside tx: refused is change's error or an
// invalid job (the transaction may go on), err a database failure.
func updateJobTx(ctx context.Context, tx *txn, id string, change func(cur Job, found bool) (*Job, error)) (refused, err error) {
	cur, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read job %s: %w", id, err)
	}
	next, err := change(cur, found)
	if err != nil || next == nil {
		return err, nil
	}
	next.ID = id
	if err := validJob(*next); err != nil {
		return err, nil
	}
	if found {
		if _, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE id = ?`, id); err != nil {
			return nil, fmt.Errorf("update job %s: %w", id, err)
		}
	}
	return nil, insertJob(ctx, tx, *next)
}

// Jobs returns the jobs f selects, newest first unless f.Oldest.
func (s *Store) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	var where []string
	var args []any
	if f.Client != "" {
		where, args = append(where, "client = ?"), append(args, f.Client)
	}
	if f.Kind != "" {
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	}
	if f.Repository != "" {
		where, args = append(where, "repository = ?"), append(args, f.Repository)
	}
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	if f.Ordered {
		where = append(where, "spec != ''")
	}
	if f.CancelRequested {
		where = append(where, "cancel_requested = 1")
	}
	q := `SELECT ` + jobColumns + ` FROM jobs`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ") // #nosec G202 -- fixed fragments; values are bound
	}
	if f.Oldest {
		q += " ORDER BY created, id"
	} else {
		q += " ORDER BY created DESC, id DESC"
	}
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...) // #nosec G202 -- the query is built from fixed fragments; values are bound
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// FailRunningJobs marks every job in state running failed by the server
// with reason as its error, and returns how many it marked. A server calls
// it at start: what was running when it stopped is not lost silently, and
// an agent's later report of the job replaces the mark.
func (s *Store) FailRunningJobs(ctx context.Context, reason string, now time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE jobs SET state = 'failed', error = ?, updated = ?, end_time = ?, server_set = 1 WHERE state = 'running'`,
		reason, nanos(now), nanos(now))
	if err != nil {
		return 0, fmt.Errorf("mark running jobs failed: %w", err)
	}
	return res.RowsAffected()
}

// Agent is what the server knows of a host's agent.
type Agent struct {
	Client    string
	Version   string    // as the agent announced it on its last stream
	Connected time.Time // when its last stream opened
	Dropped   int64     // reports its full queue dropped, as it counted them
}

// agentConnectedSQL records an agent's version and connection time.
const agentConnectedSQL = `INSERT INTO agents (client, version, connected) VALUES (?, ?, ?)
		ON CONFLICT(client) DO UPDATE SET version = excluded.version, connected = excluded.connected`

// AgentConnected records that client's agent of version opened a stream.
func (s *Store) AgentConnected(ctx context.Context, client, version string, now time.Time) error {
	_, err := s.db.ExecContext(ctx, agentConnectedSQL, client, version, nanos(now))
	if err != nil {
		return fmt.Errorf("record agent of %s: %w", client, err)
	}
	return nil
}

// AgentConn is one stream's connection, for AgentsConnected.
type AgentConn struct {
	Client, Version string
	Connected       time.Time
}

// AgentsConnected records many connections as AgentConnected, in one
// transaction, and returns an error for each. When the transaction fails
// each is tried again on its own.
func (s *Store) AgentsConnected(ctx context.Context, conns []AgentConn) []error {
	errs := make([]error, len(conns))
	if len(conns) == 0 {
		return errs
	}
	err := func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		for _, a := range conns {
			if _, err := tx.ExecContext(ctx, agentConnectedSQL, a.Client, a.Version, nanos(a.Connected)); err != nil {
				return err
			}
		}
		return tx.Commit()
	}()
	if err != nil {
		for i, a := range conns {
			errs[i] = s.AgentConnected(ctx, a.Client, a.Version, a.Connected)
		}
	}
	return errs
}

// AddDropped adds n to the count of reports client's agent dropped.
func (s *Store) AddDropped(ctx context.Context, client string, n int64) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO agents (client, dropped) VALUES (?, ?)
		ON CONFLICT(client) DO UPDATE SET dropped = agents.dropped + excluded.dropped`, client, n)
	if err != nil {
		return fmt.Errorf("record dropped reports of %s: %w", client, err)
	}
	return nil
}

// Agents returns every agent the server has seen, by client name.
func (s *Store) Agents(ctx context.Context) (map[string]Agent, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT client, version, connected, dropped FROM agents`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := map[string]Agent{}
	for rows.Next() {
		var a Agent
		var connected int64
		if err := rows.Scan(&a.Client, &a.Version, &connected, &a.Dropped); err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		a.Connected = fromNanos(connected)
		out[a.Client] = a
	}
	return out, rows.Err()
}

// Watch is the missed-backup watch of one repository of a host's policy.
type Watch struct {
	Client, Repository string
	Since              time.Time // when the server first saw the repository in the host's policy
	LastMissed         time.Time // the deadline of the last missed backup recorded, zero if none
}

// Watches returns every watch, keyed by client and then repository.
func (s *Store) Watches(ctx context.Context) (map[string]map[string]Watch, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT client, repository, since, last_missed FROM rpo_watch`)
	if err != nil {
		return nil, fmt.Errorf("list missed-backup watches: %w", err)
	}
	defer func() { _ = rows.Close() }()
	out := map[string]map[string]Watch{}
	for rows.Next() {
		var w Watch
		var since, last int64
		if err := rows.Scan(&w.Client, &w.Repository, &since, &last); err != nil {
			return nil, fmt.Errorf("list missed-backup watches: %w", err)
		}
		w.Since, w.LastMissed = fromNanos(since), fromNanos(last)
		if out[w.Client] == nil {
			out[w.Client] = map[string]Watch{}
		}
		out[w.Client][w.Repository] = w
	}
	return out, rows.Err()
}

// StartWatch records that the server watches client's repository from
// since on; an existing watch is kept as it is.
func (s *Store) StartWatch(ctx context.Context, client, repository string, since time.Time) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO rpo_watch (client, repository, since) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		client, repository, nanos(since))
	if err != nil {
		return fmt.Errorf("watch %s/%s: %w", client, repository, err)
	}
	return nil
}

// RecordMissed stores job (state missed) and moves the watch's LastMissed
// to deadline, in one transaction; ErrConflict when LastMissed is at or
// past deadline already (another server or loop recorded it).
func (s *Store) RecordMissed(ctx context.Context, job Job, deadline time.Time) error {
	if err := validJob(job); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record missed backup of %s: %w", job.Client, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `UPDATE rpo_watch SET last_missed = ? WHERE client = ? AND repository = ? AND last_missed < ?`,
		nanos(deadline), job.Client, job.Repository, nanos(deadline))
	if err != nil {
		return fmt.Errorf("record missed backup of %s: %w", job.Client, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("record missed backup of %s/%s: %w: recorded already or not watched", job.Client, job.Repository, ErrConflict)
	}
	if err := insertJob(ctx, tx, job); err != nil {
		return err
	}
	return tx.Commit()
}
