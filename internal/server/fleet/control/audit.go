package control

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
)

// Auditor records an entry in the server's audit log (audit.Trail):
// once Record returns nil the entry is durable.
type Auditor interface {
	Record(ctx context.Context, e auditlog.Entry) error
}

// ServerActor is who orders what the server does on its own (a prune on
// a policy's prune schedule).
var ServerActor = auditlog.Actor{Name: "coffer", Role: auditlog.RoleServer}

// Audit actions of the jobs the server orders.
const (
	AuditRunNow  = "run-now" // a person ordered a backup, check or prune
	AuditRestore = "restore" // a person ordered a restore
	AuditPrune   = "prune"   // the server ordered a prune on its schedule
	AuditGrant   = "grant"   // a prune job's deletion grant
	AuditCancel  = "cancel"  // a person cancelled a job
)

// maxGrantNames bounds the snapshot names a grant's entry lists.
const maxGrantNames = 64

// record appends e to the audit log, if the control has one.
func (c *Control) record(ctx context.Context, e auditlog.Entry) error {
	if c.cfg.Audit == nil {
		return nil
	}
	if err := c.cfg.Audit.Record(ctx, e); err != nil {
		return fmt.Errorf("audit %s on %s: %w", e.Action, e.Target, err)
	}
	return nil
}

// orderEntries are the audit entries of an order: the order, and for a
// prune its grant.
func orderEntries(o Order, job api.Job) []auditlog.Entry {
	actor := o.Actor
	if actor == (auditlog.Actor{}) {
		actor = ServerActor
	}
	action := AuditRunNow
	switch {
	case job.Kind == api.KindRestore:
		action = AuditRestore
	case actor == ServerActor:
		action = AuditPrune
	}
	d := map[string]string{"job": job.ID, "kind": string(job.Kind), "repository": job.Repository}
	if job.Restore != nil {
		d["snapshot"], d["into"] = job.Restore.Snapshot, job.Restore.Target
		if len(job.Restore.Include) > 0 {
			d["include"] = clipJoin(job.Restore.Include)
		}
	}
	if job.Check != nil && job.Check.ReadDataSubset != "" {
		d["read_data_subset"] = job.Check.ReadDataSubset
	}
	target := "client:" + o.Client
	out := []auditlog.Entry{{Actor: actor, Action: action, Target: target, Outcome: auditlog.OutcomeOK, Details: d}}
	if g := job.Grant; g != nil {
		out = append(out, auditlog.Entry{Actor: actor, Action: AuditGrant, Target: target, Outcome: auditlog.OutcomeOK, Details: map[string]string{
			"job": job.ID, "repository": job.Repository, "snapshots": strconv.Itoa(len(g.Snapshots)), "names": clipJoin(g.Snapshots),
			"not_before": g.NotBefore.UTC().Format(time.RFC3339), "not_after": g.NotAfter.UTC().Format(time.RFC3339),
		}})
	}
	return out
}

// clipJoin joins names with commas, at most maxGrantNames of them, and
// says how many more there were.
func clipJoin(names []string) string {
	if len(names) <= maxGrantNames {
		return strings.Join(names, ",")
	}
	return strings.Join(names[:maxGrantNames], ",") + fmt.Sprintf(",… (%d more)", len(names)-maxGrantNames)
}
