package serverdb

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/pki"
)

// Fleet records: users (DB), and the groups, policy settings, policy
// generations and fleet-wide settings internal/server/fleet keeps here.

const userColumns = `name, role, scope, created, cert_serial, not_after`

func scanUser(r scanner) (User, error) {
	var (
		u                 User
		scope, serial     string
		created, notAfter int64
	)
	if err := r.Scan(&u.Name, &u.Role, &scope, &created, &serial, &notAfter); err != nil {
		return User{}, err
	}
	if err := json.Unmarshal([]byte(scope), &u.Scope); err != nil {
		return User{}, fmt.Errorf("%w: scope of user %q: %w", ErrInvalidRecord, u.Name, err)
	}
	if serial != "" {
		n, err := parseSerial(serial)
		if err != nil {
			return User{}, err
		}
		u.CertSerial = n
	}
	u.Created, u.NotAfter = fromNanos(created), fromNanos(notAfter)
	return u, nil
}

// User implements DB.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

// Users implements DB.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// AddUser implements DB.
func (s *Store) AddUser(ctx context.Context, u User, now time.Time) error {
	if err := pki.ValidateClientName(u.Name); err != nil {
		return fmt.Errorf("add user: %w: %w", ErrInvalidRecord, err)
	}
	if u.Role == "" || u.Created.IsZero() {
		return fmt.Errorf("add user %s: %w: needs a role and a creation time", u.Name, ErrInvalidRecord)
	}
	scope := u.Scope
	if scope == nil {
		scope = []string{}
	}
	sj, err := json.Marshal(scope)
	if err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `INSERT INTO users (name, role, scope, created) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO NOTHING`,
		u.Name, u.Role, string(sj), nanos(u.Created))
	if err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	} else if n == 0 {
		return fmt.Errorf("user %q: %w", u.Name, ErrExists)
	}
	detail := "role=" + u.Role + " scope=" + strings.Join(scope, ",")
	if err := insertEvent(ctx, tx, Event{Time: now, Client: UserRevocationName(u.Name), Action: ActionUserAdd, Detail: detail}); err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	return nil
}

// EnrollUser implements DB.
func (s *Store) EnrollUser(ctx context.Context, name string, serial *big.Int, notAfter, now time.Time) error {
	text, err := serialText(serial)
	if err != nil {
		return fmt.Errorf("enroll user %s: %w", name, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("enroll user %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	var previous string
	err = tx.QueryRowContext(ctx, `SELECT cert_serial FROM users WHERE name = ?`, name).Scan(&previous)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("enroll user %q: %w (removed since its token was issued?)", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("enroll user %s: %w", name, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE users SET cert_serial = ?, not_after = ? WHERE name = ?`, text, nanos(notAfter), name); err != nil {
		return fmt.Errorf("enroll user %s: %w", name, err)
	}
	if previous != "" && previous != text {
		if err := supersede(ctx, tx, previous, UserRevocationName(name), now); err != nil {
			return fmt.Errorf("enroll user %s: %w", name, err)
		}
	}
	if err := insertEvent(ctx, tx, Event{Time: now, Client: UserRevocationName(name), Action: ActionEnroll, Detail: "serial=" + text}); err != nil {
		return fmt.Errorf("enroll user %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("enroll user %s: %w", name, err)
	}
	return nil
}

// RemoveUser implements DB.
func (s *Store) RemoveUser(ctx context.Context, name string, now time.Time, reason string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	defer func() { _ = tx.Rollback() }()
	var serial string
	err = tx.QueryRowContext(ctx, `DELETE FROM users WHERE name = ? RETURNING cert_serial`, name).Scan(&serial)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("remove user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	if serial != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO revocations (serial, client, revoked_at, reason) VALUES (?, ?, ?, ?) ON CONFLICT(serial) DO NOTHING`,
			serial, UserRevocationName(name), nanos(now), reason); err != nil {
			return fmt.Errorf("remove user %s: %w", name, err)
		}
	}
	// Unredeemed tokens of the user die with it.
	if _, err := tx.ExecContext(ctx, `UPDATE tokens SET used_at = ? WHERE client = ? AND used_at IS NULL`, nanos(now), UserRevocationName(name)); err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	if err := insertEvent(ctx, tx, Event{Time: now, Client: UserRevocationName(name), Action: ActionUserRemove, Detail: reason}); err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	return nil
}

// Group is a named set of clients; a client is in at most one group.
type Group struct {
	Name    string
	Created time.Time
	Members []string // client names, sorted
}

// AddGroup records a new, empty group (ErrExists if the name is taken).
func (s *Store) AddGroup(ctx context.Context, name string, now time.Time) error {
	if err := pki.ValidateClientName(name); err != nil {
		return fmt.Errorf("add group: %w: %w", ErrInvalidRecord, err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO fleet_groups (name, created) VALUES (?, ?) ON CONFLICT(name) DO NOTHING`, name, nanos(now))
	if err != nil {
		return fmt.Errorf("add group %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("add group %s: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("group %q: %w", name, ErrExists)
	}
	return nil
}

// AssignGroup puts clients into group, moving them out of the group they
// were in, in one transaction; an unknown group is ErrNotFound.
func (s *Store) AssignGroup(ctx context.Context, group string, clients []string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("assign to group %s: %w", group, err)
	}
	defer func() { _ = tx.Rollback() }()
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM fleet_groups WHERE name = ?`, group).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("group %q: %w", group, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("assign to group %s: %w", group, err)
	}
	for _, c := range clients {
		if err := pki.ValidateClientName(c); err != nil {
			return fmt.Errorf("assign to group %s: %w: %w", group, ErrInvalidRecord, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_members (client, grp) VALUES (?, ?) ON CONFLICT(client) DO UPDATE SET grp = excluded.grp`, c, group); err != nil {
			return fmt.Errorf("assign %s to group %s: %w", c, group, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("assign to group %s: %w", group, err)
	}
	return nil
}

// Groups returns every group with its members, by name.
func (s *Store) Groups(ctx context.Context) ([]Group, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT g.name, g.created, COALESCE(m.client, '') FROM fleet_groups g LEFT JOIN fleet_members m ON m.grp = g.name ORDER BY g.name, m.client`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Group
	for rows.Next() {
		var (
			name, client string
			created      int64
		)
		if err := rows.Scan(&name, &created, &client); err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, Group{Name: name, Created: fromNanos(created), Members: []string{}})
		}
		if client != "" {
			g := &out[len(out)-1]
			g.Members = append(g.Members, client)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	return out, nil
}

// GroupOf returns the group client is in, or "" when it is in none.
func (s *Store) GroupOf(ctx context.Context, client string) (string, error) {
	var g string
	err := s.db.QueryRowContext(ctx, `SELECT grp FROM fleet_members WHERE client = ?`, client).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("group of %s: %w", client, err)
	}
	return g, nil
}

// PolicyRecord is the stored policy settings of one target ("group:G" or
// "client:C"), as the JSON internal/server/fleet writes.
type PolicyRecord struct {
	Target   string
	Settings string
	Updated  time.Time
}

// PutPolicySettings stores the settings of target, replacing what was there.
func (s *Store) PutPolicySettings(ctx context.Context, rec PolicyRecord) error {
	if rec.Target == "" || rec.Updated.IsZero() || !json.Valid([]byte(rec.Settings)) {
		return fmt.Errorf("store policy settings: %w", ErrInvalidRecord)
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO fleet_policies (target, settings, updated) VALUES (?, ?, ?)
		ON CONFLICT(target) DO UPDATE SET settings = excluded.settings, updated = excluded.updated`, rec.Target, rec.Settings, nanos(rec.Updated))
	if err != nil {
		return fmt.Errorf("store policy settings of %s: %w", rec.Target, err)
	}
	return nil
}

// PolicySettings returns the settings of target, or ErrNotFound.
func (s *Store) PolicySettings(ctx context.Context, target string) (PolicyRecord, error) {
	rec := PolicyRecord{Target: target}
	var updated int64
	err := s.db.QueryRowContext(ctx, `SELECT settings, updated FROM fleet_policies WHERE target = ?`, target).Scan(&rec.Settings, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return PolicyRecord{}, fmt.Errorf("policy of %s: %w", target, ErrNotFound)
	}
	if err != nil {
		return PolicyRecord{}, fmt.Errorf("policy of %s: %w", target, err)
	}
	rec.Updated = fromNanos(updated)
	return rec, nil
}

// PolicyRecords returns every stored policy setting, by target.
func (s *Store) PolicyRecords(ctx context.Context) ([]PolicyRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT target, settings, updated FROM fleet_policies ORDER BY target`)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []PolicyRecord
	for rows.Next() {
		var (
			rec     PolicyRecord
			updated int64
		)
		if err := rows.Scan(&rec.Target, &rec.Settings, &updated); err != nil {
			return nil, fmt.Errorf("list policies: %w", err)
		}
		rec.Updated = fromNanos(updated)
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return out, nil
}

// PolicyGeneration returns the generation and issue time of client's
// policy whose content has digest: the stored one if its digest matches,
// else the next generation (1 for the first), issued at now and stored, in
// one transaction, so concurrent callers agree and a generation never
// goes back.
func (s *Store) PolicyGeneration(ctx context.Context, client string, digest []byte, now time.Time) (uint64, time.Time, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("policy generation of %s: %w", client, err)
	}
	defer func() { _ = tx.Rollback() }()
	var (
		gen    int64
		stored []byte
		issued int64
	)
	err = tx.QueryRowContext(ctx, `SELECT generation, digest, issued FROM fleet_generations WHERE client = ?`, client).Scan(&gen, &stored, &issued)
	switch {
	case err == nil && bytes.Equal(stored, digest):
		return uint64(gen), fromNanos(issued), nil // #nosec G115 -- stored from a positive uint64 below 2^63
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return 0, time.Time{}, fmt.Errorf("policy generation of %s: %w", client, err)
	}
	gen++
	if _, err := tx.ExecContext(ctx, `INSERT INTO fleet_generations (client, generation, digest, issued) VALUES (?, ?, ?, ?)
		ON CONFLICT(client) DO UPDATE SET generation = excluded.generation, digest = excluded.digest, issued = excluded.issued`,
		client, gen, digest, nanos(now)); err != nil {
		return 0, time.Time{}, fmt.Errorf("policy generation of %s: %w", client, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, time.Time{}, fmt.Errorf("policy generation of %s: %w", client, err)
	}
	return uint64(gen), fromNanos(nanos(now)), nil // #nosec G115 -- positive
}

// FleetSetting returns a fleet-wide setting, "" when unset.
func (s *Store) FleetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM fleet_settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("fleet setting %s: %w", key, err)
	}
	return v, nil
}

// SetFleetSetting stores a fleet-wide setting.
func (s *Store) SetFleetSetting(ctx context.Context, key, value string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO fleet_settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("fleet setting %s: %w", key, err)
	}
	return nil
}
