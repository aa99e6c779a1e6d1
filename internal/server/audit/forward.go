package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// Several servers sharing one database (PostgreSQL) keep one chain: one
// of them, the writer (serverdb.AuditWriter), runs the Trail; the others
// record their entries through a Forwarder, as events of action
// serverdb.ActionAuditEntry, which the writer's Trail appends as they are,
// in event order, like every other event.

// EventLogger is what a Forwarder needs of the database.
type EventLogger interface {
	LogEvent(ctx context.Context, e serverdb.Event) error
}

// Forwarder is the Auditor of a server that does not write the audit
// log: Record stores the entry in the database, durably, before it
// returns; the writing server appends it within its poll interval.
type Forwarder struct {
	DB  EventLogger
	Now func() time.Time // nil: time.Now
}

var _ Auditor = (*Forwarder)(nil)

// forwarded is an entry as a Forwarder stores it (the fields a caller
// sets; the log fills in the rest).
type forwarded struct {
	Actor   auditlog.Actor    `json:"actor"`
	Action  string            `json:"action"`
	Target  string            `json:"target"`
	Outcome string            `json:"outcome"`
	Details map[string]string `json:"details"`
}

// Record implements Auditor.
func (f *Forwarder) Record(ctx context.Context, e auditlog.Entry) error {
	if e.Action == auditlog.ActionCheckpoint || e.Action == auditlog.ActionRepaired {
		return fmt.Errorf("record audit entry: %w: action %q is the log's own", auditlog.ErrInvalidEntry, e.Action)
	}
	b, err := json.Marshal(forwarded{Actor: e.Actor, Action: e.Action, Target: e.Target, Outcome: e.Outcome, Details: e.Details})
	if err != nil {
		return fmt.Errorf("record audit entry: %w", err)
	}
	if len(b) > auditlog.MaxLineBytes {
		return fmt.Errorf("record audit entry: %w: %d bytes", auditlog.ErrInvalidEntry, len(b))
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	return f.DB.LogEvent(ctx, serverdb.Event{Time: now().UTC(), Client: e.Actor.Name, Action: serverdb.ActionAuditEntry, Detail: string(b)})
}

// entryOf is the entry to append for ev: a forwarded entry as it was
// recorded (with the event's ID added), else EventEntry. A forwarded
// entry that does not decode is an auditlog.ErrInvalidEntry.
func entryOf(ev serverdb.Event) (auditlog.Entry, error) {
	if ev.Action != serverdb.ActionAuditEntry {
		return EventEntry(ev), nil
	}
	var fw forwarded
	if err := json.Unmarshal([]byte(ev.Detail), &fw); err != nil {
		return auditlog.Entry{}, fmt.Errorf("%w: forwarded entry: %w", auditlog.ErrInvalidEntry, err)
	}
	if fw.Action == "" {
		return auditlog.Entry{}, fmt.Errorf("%w: forwarded entry without an action", auditlog.ErrInvalidEntry)
	}
	d := maps.Clone(fw.Details)
	if d == nil {
		d = map[string]string{}
	}
	if _, taken := d[detailEvent]; taken {
		return auditlog.Entry{}, errors.Join(auditlog.ErrInvalidEntry, fmt.Errorf("forwarded entry with its own %q detail", detailEvent))
	}
	d[detailEvent] = strconv.FormatInt(ev.ID, 10)
	return auditlog.Entry{Actor: fw.Actor, Action: fw.Action, Target: fw.Target, Outcome: fw.Outcome, Details: d}, nil
}
