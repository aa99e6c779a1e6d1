package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/fleet/api"
)

// ErrForbidden wraps every refusal of Authorize; its message names the
// role and the scope that fell short.
var ErrForbidden = errors.New("refused for lack of rights")

// Role is what a principal may do.
type Role string

// The roles (api.Role*).
const (
	RoleAdmin    Role = api.RoleAdmin    // everything
	RoleOperator Role = api.RoleOperator // status, jobs, run-now, cancel, restore: within its scope
	RoleAuditor  Role = api.RoleAuditor  // read-only: status, jobs, audit, TLS report
	RoleHost     Role = api.RoleHost     // a host: its own policy, jobs and repository
)

// Action is what a call does.
type Action string

// The actions Authorize knows.
const (
	ActionStatus      Action = "status"       // read the fleet's status
	ActionJobs        Action = "jobs"         // read jobs
	ActionRunNow      Action = "run-now"      // order a job
	ActionCancel      Action = "cancel"       // cancel a job
	ActionRestore     Action = "restore"      // order a restore
	ActionAudit       Action = "audit"        // read the audit log
	ActionTLSReport   Action = "tls-report"   // read the TLS report
	ActionPolicyRead  Action = "policy-read"  // read policies
	ActionPolicyWrite Action = "policy-write" // change policies
	ActionUsers       Action = "users"        // list, add and remove users
	ActionGroups      Action = "groups"       // list, add and fill groups
	ActionEscrow      Action = "escrow"       // set the escrow key
	ActionReport      Action = "report"       // a host reports its jobs
	ActionRepository  Action = "repository"   // use a repository (storage)
	ActionAlerts      Action = "alerts"       // list, add, remove and test alert channels
)

// Principal is an authenticated caller: a host ("client") or a person
// ("user") with its role and scope (entries "group:G" and "client:C").
type Principal struct {
	Kind  string // "client" or "user"
	Name  string
	Role  Role
	Scope []string
}

// actor is the principal as the audit log names it.
func (p Principal) actor() auditlog.Actor {
	return auditlog.Actor{Name: p.Name, Role: string(p.Role)}
}

// String names the principal for messages: `operator "alice"`.
func (p Principal) String() string {
	return fmt.Sprintf("%s %q", p.Role, p.Name)
}

// scopeText is the scope as refusals name it.
func (p Principal) scopeText() string {
	switch {
	case p.Role == RoleAdmin:
		return "everything"
	case p.Role == RoleHost:
		return "client:" + p.Name
	case len(p.Scope) == 0 && p.Role == RoleAuditor:
		return "the whole fleet"
	case len(p.Scope) == 0:
		return "nothing"
	}
	return strings.Join(p.Scope, ", ")
}

// roleActions lists what each role but admin may do.
var roleActions = map[Role][]Action{
	RoleOperator: {ActionStatus, ActionJobs, ActionRunNow, ActionCancel, ActionRestore},
	RoleAuditor:  {ActionStatus, ActionJobs, ActionAudit, ActionTLSReport},
	RoleHost:     {ActionPolicyRead, ActionJobs, ActionReport, ActionRepository},
}

// verbs phrase actions for refusals ("may not manage users").
var verbs = map[Action]string{
	ActionUsers: "manage users", ActionGroups: "manage groups", ActionPolicyRead: "read the policy of",
	ActionPolicyWrite: "change the policy of", ActionEscrow: "set the escrow key", ActionReport: "report jobs of",
	ActionRepository: "use the repositories of", ActionAudit: "read the audit log", ActionTLSReport: "read the TLS report",
	ActionStatus: "read the status of", ActionJobs: "read the jobs of", ActionAlerts: "manage alert channels",
}

func (a Action) verb() string {
	if v, ok := verbs[a]; ok {
		return v
	}
	return string(a)
}

// readOnly actions may be asked fleet-wide (target ""): the caller then
// shows only what InScope allows.
var readOnly = map[Action]bool{ActionStatus: true, ActionJobs: true, ActionAudit: true, ActionTLSReport: true}

// GroupLookup tells which group a client is in ("" for none).
type GroupLookup func(ctx context.Context, client string) (string, error)

// Decide is Authorize's rule without its side effects: nil when p may do
// action on target ("client:C", "group:G", or "" for the fleet as a
// whole), else an error wrapping ErrForbidden naming role and scope.
func Decide(ctx context.Context, p Principal, action Action, target string, groupOf GroupLookup) error {
	if p.Role == RoleAdmin && p.Kind == "user" {
		return nil
	}
	if !slices.Contains(roleActions[p.Role], action) || (p.Role == RoleHost) != (p.Kind == "client") {
		return fmt.Errorf("%w: %s (scope %s) may not %s: the %s role does not allow it", ErrForbidden, p, p.scopeText(), action.verb(), p.Role)
	}
	if target == "" {
		if readOnly[action] && p.Role != RoleHost {
			return nil
		}
		return fmt.Errorf("%w: %s (scope %s) may not %s the whole fleet", ErrForbidden, p, p.scopeText(), action.verb())
	}
	in, err := inScope(ctx, p, target, groupOf)
	if err != nil {
		return err
	}
	if !in {
		return fmt.Errorf("%w: %s (scope %s) may not %s %s: outside its scope", ErrForbidden, p, p.scopeText(), action.verb(), target)
	}
	return nil
}

// inScope reports whether target lies in p's scope.
func inScope(ctx context.Context, p Principal, target string, groupOf GroupLookup) (bool, error) {
	kind, name, _ := strings.Cut(target, ":")
	switch {
	case p.Role == RoleAdmin:
		return true, nil
	case p.Role == RoleHost:
		return target == "client:"+p.Name, nil
	case p.Role == RoleAuditor && len(p.Scope) == 0:
		return true, nil
	case slices.Contains(p.Scope, target):
		return true, nil
	case kind != "client":
		return false, nil
	}
	g, err := groupOf(ctx, name)
	if err != nil {
		return false, err
	}
	return g != "" && slices.Contains(p.Scope, "group:"+g), nil
}

// Authorize decides whether p may do action on target (Decide) and audits
// every refusal (an entry with p as actor, the action, the target, outcome
// refused and the reason as detail). It is the one gate of the fleet API: every handler calls it
// before it reads or changes anything.
func (f *Fleet) Authorize(ctx context.Context, p Principal, action Action, target string) error {
	err := Decide(ctx, p, action, target, f.store.GroupOf)
	if err == nil || !errors.Is(err, ErrForbidden) {
		return err
	}
	f.record(ctx, p, string(action), target, auditlog.OutcomeRefused, err.Error())
	f.log.Warn("fleet call refused", "principal", p.Name, "role", string(p.Role), "action", string(action), "target", target)
	return err
}

// InScope reports whether client lies in p's scope: what a fleet-wide
// listing may show p.
func (f *Fleet) InScope(ctx context.Context, p Principal, client string) (bool, error) {
	return inScope(ctx, p, "client:"+client, f.store.GroupOf)
}

func clip(s string) string {
	if len(s) > 512 {
		return s[:512]
	}
	return s
}
