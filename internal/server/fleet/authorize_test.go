package fleet

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var testGroups = map[string]string{"web1": "g1", "web2": "g1", "db1": "g2"}

func groupOf(_ context.Context, client string) (string, error) { return testGroups[client], nil }

var allActions = []Action{ActionStatus, ActionJobs, ActionRunNow, ActionCancel, ActionRestore, ActionAudit, ActionTLSReport,
	ActionPolicyRead, ActionPolicyWrite, ActionUsers, ActionGroups, ActionEscrow, ActionReport, ActionRepository}

var allTargets = []string{"", "client:web1", "client:web2", "client:db1", "client:lone", "group:g1", "group:g2"}

// TestDecideTable checks roles × actions × targets against the rules
// written out independently of Decide's implementation.
func TestDecideTable(t *testing.T) {
	t.Parallel()
	principals := []Principal{
		{Kind: "user", Name: "root", Role: RoleAdmin},
		{Kind: "user", Name: "op", Role: RoleOperator, Scope: []string{"group:g1"}},
		{Kind: "user", Name: "op2", Role: RoleOperator, Scope: []string{"client:db1"}},
		{Kind: "user", Name: "aud", Role: RoleAuditor},
		{Kind: "user", Name: "aud2", Role: RoleAuditor, Scope: []string{"group:g2"}},
		{Kind: "client", Name: "web1", Role: RoleHost},
		{Kind: "user", Name: "web1", Role: RoleHost},    // a user claiming the host role
		{Kind: "client", Name: "web2", Role: RoleAdmin}, // a host claiming admin
		{Kind: "user", Name: "odd", Role: "superuser"},
	}
	inScope := func(p Principal, target string) bool {
		if target == "" {
			return false
		}
		if p.Role == RoleAuditor && len(p.Scope) == 0 {
			return true
		}
		if p.Role == RoleHost {
			return target == "client:"+p.Name
		}
		if slices.Contains(p.Scope, target) {
			return true
		}
		c, ok := strings.CutPrefix(target, "client:")
		return ok && testGroups[c] != "" && slices.Contains(p.Scope, "group:"+testGroups[c])
	}
	want := func(p Principal, a Action, target string) bool {
		switch {
		case p.Kind == "user" && p.Role == RoleAdmin:
			return true
		case p.Kind == "user" && p.Role == RoleOperator:
			allowed := slices.Contains([]Action{ActionStatus, ActionJobs, ActionRunNow, ActionCancel, ActionRestore}, a)
			return allowed && (inScope(p, target) || target == "" && (a == ActionStatus || a == ActionJobs))
		case p.Kind == "user" && p.Role == RoleAuditor:
			allowed := slices.Contains([]Action{ActionStatus, ActionJobs, ActionAudit, ActionTLSReport}, a)
			return allowed && (target == "" || inScope(p, target))
		case p.Kind == "client" && p.Role == RoleHost:
			return slices.Contains([]Action{ActionPolicyRead, ActionJobs, ActionReport, ActionRepository}, a) && inScope(p, target)
		}
		return false
	}
	ctx := context.Background()
	n := 0
	for _, p := range principals {
		for _, a := range allActions {
			for _, target := range allTargets {
				err := Decide(ctx, p, a, target, groupOf)
				if got := err == nil; got != want(p, a, target) {
					t.Errorf("%s %s on %q: allowed %v, want %v (%v)", p, a, target, got, !got, err)
				}
				if err != nil {
					n++
					if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), string(p.Role)) || !strings.Contains(err.Error(), "scope") {
						t.Errorf("%s %s on %q: refusal %q must wrap ErrForbidden and name role and scope", p, a, target, err)
					}
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("nothing refused: the table proves nothing")
	}
}

// TestDecideMonotone: widening a scope never takes a right away, and a
// principal outside the admin role never gets an action its role lacks,
// whatever its scope (random scopes).
func TestDecideMonotone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	entries := []string{"group:g1", "group:g2", "client:web1", "client:db1", "client:lone", "group:none"}
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		role := []Role{RoleOperator, RoleAuditor}[r.IntN(2)]
		var scope []string
		for _, e := range entries {
			if r.IntN(2) == 0 {
				scope = append(scope, e)
			}
		}
		if len(scope) == 0 {
			continue // an auditor's empty scope is the whole fleet
		}
		wider := append(slices.Clone(scope), entries[r.IntN(len(entries))])
		p, pw := Principal{Kind: "user", Name: "u", Role: role, Scope: scope}, Principal{Kind: "user", Name: "u", Role: role, Scope: wider}
		a, target := allActions[r.IntN(len(allActions))], allTargets[r.IntN(len(allTargets))]
		if Decide(ctx, p, a, target, groupOf) == nil && Decide(ctx, pw, a, target, groupOf) != nil {
			t.Fatalf("%v: widening %v to %v took %s on %q away", role, scope, wider, a, target)
		}
		if Decide(ctx, pw, a, target, groupOf) == nil && !slices.Contains(roleActions[role], a) {
			t.Fatalf("%v with scope %v may %s", role, wider, a)
		}
	}
}
