package audit

import (
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// Actors and roles of the entries made from the database's events
// (docs/fleet.md, "Audit log").
const (
	// RoleHost is a client host acting with its certificate (or, for a
	// refused enrollment, claiming a name).
	RoleHost = "host"
	// ActorLocal is the administrator running `coffer server` commands
	// on the server with access to its state directory, role RoleAdmin.
	ActorLocal = "local"
	RoleAdmin  = "admin"
	// ActorServer is the server itself (role auditlog.RoleServer).
	ActorServer = "coffer"
)

// Detail keys of the entries made from events.
const (
	detailEvent     = "event"      // the event's ID in the database
	detailEventTime = "event_time" // when it happened, RFC 3339 in UTC
	detailRepo      = "repo"
	detailObject    = "object"
	detailDetail    = "detail" // the event's own detail text
)

// maxField bounds each text field taken from an event; the log refuses
// lines over auditlog.MaxLineBytes.
const maxField = 1024

// EventEntry is the audit entry of one database event: the actor is the
// client for what a host did (enrol, renew, create-repo, delete,
// delete-refused, enrol-refused), ActorLocal for what `coffer server`
// commands did (token, revoke, policy, trash-restore), the server for its TLS self-scans
// and alerts and for the fleet's events (user-add, user-remove,
// fleet-group, fleet-policy, fleet-escrow, fleet-alert; fleet-refused is refused), whose
// detail names who acted. The target is "client:NAME" when the event names
// a client, "user:NAME" when it names a person.
// Text is made valid UTF-8 and cut to 1 KiB a field, so that a name an
// unauthenticated peer claimed can always be recorded.
func EventEntry(ev serverdb.Event) auditlog.Entry {
	e := auditlog.Entry{
		Action:  clean(ev.Action),
		Outcome: auditlog.OutcomeOK,
		Details: map[string]string{
			detailEvent:     strconv.FormatInt(ev.ID, 10),
			detailEventTime: ev.Time.UTC().Format(time.RFC3339Nano),
		},
	}
	if e.Action == "" {
		e.Action = "event"
	}
	client := clean(ev.Client)
	switch {
	case strings.HasPrefix(client, pki.UserTokenPrefix):
		e.Target = client // a person: "user:NAME"
	case client != "":
		e.Target = "client:" + client
	}
	for k, v := range map[string]string{detailRepo: ev.Repo, detailObject: ev.Object, detailDetail: ev.Detail} {
		if v != "" {
			e.Details[k] = clean(v)
		}
	}
	switch ev.Action {
	case serverdb.ActionEnroll, serverdb.ActionRenew, serverdb.ActionCreateRepo, serverdb.ActionDelete:
		e.Actor = auditlog.Actor{Name: client, Role: RoleHost}
	case serverdb.ActionDeleteRefused, serverdb.ActionEnrollRefused:
		e.Actor = auditlog.Actor{Name: client, Role: RoleHost}
		e.Outcome = auditlog.OutcomeRefused
	case serverdb.ActionToken, serverdb.ActionRevoke, serverdb.ActionPolicy, serverdb.ActionTrashRestore:
		e.Actor = auditlog.Actor{Name: ActorLocal, Role: RoleAdmin}
	case serverdb.ActionFleetRefused:
		e.Actor = auditlog.Actor{Name: ActorServer, Role: auditlog.RoleServer}
		e.Outcome = auditlog.OutcomeRefused
	case serverdb.ActionAlert:
		e.Actor = auditlog.Actor{Name: ActorServer, Role: auditlog.RoleServer}
		e.Outcome = auditlog.OutcomeFailed
	default:
		e.Actor = auditlog.Actor{Name: ActorServer, Role: auditlog.RoleServer}
	}
	if e.Action == auditlog.ActionCheckpoint || e.Action == auditlog.ActionRepaired {
		e.Action = "event:" + e.Action // the log's own actions are not an event's
	}
	return e
}

// unrecordable is the entry for an event the log refused even after
// EventEntry's cleaning: it says so, with the event's ID.
func unrecordable(ev serverdb.Event, err error) auditlog.Entry {
	return auditlog.Entry{
		Actor:   auditlog.Actor{Name: ActorServer, Role: auditlog.RoleServer},
		Action:  "event-unrecordable",
		Outcome: auditlog.OutcomeFailed,
		Details: map[string]string{detailEvent: strconv.FormatInt(ev.ID, 10), "error": clean(err.Error())},
	}
}

// clean makes s valid UTF-8 of at most maxField bytes.
func clean(s string) string {
	if len(s) > maxField {
		s = s[:maxField]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
