package fleet

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/coffer-backup/coffer/internal/fleet/api"
)

func TestAuditQueryRefusesBadInput(t *testing.T) {
	t.Parallel()
	for _, q := range []string{"since=yesterday", "since=2026-12-05", "limit=0", "limit=10001", "limit=x", "limit=-1"} {
		if _, _, err := auditQuery(httptest.NewRequest("GET", api.AuditPath+"?"+q, nil)); !errors.Is(err, api.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", q, err)
		}
	}
	since, limit, err := auditQuery(httptest.NewRequest("GET", api.AuditPath+"?since=2026-12-05T10:00:00Z&limit=5", nil))
	if err != nil || limit != 5 || since.Format("2006-01-02T15") != "2026-12-05T10" {
		t.Fatalf("%v %d %v", since, limit, err)
	}
	if _, limit, err := auditQuery(httptest.NewRequest("GET", api.AuditPath, nil)); err != nil || limit != api.DefaultAuditLimit {
		t.Fatalf("default limit %d %v", limit, err)
	}
	if _, err := auditTarget(httptest.NewRequest("GET", api.AuditPath+"?client=..", nil)); !errors.Is(err, api.ErrInvalid) {
		t.Fatalf("client ..: %v", err)
	}
}

// TestAuditVisibility: a scoped auditor sees the entries on the clients
// and groups of its scope only; an admin and an unscoped auditor all.
func TestAuditVisibility(t *testing.T) {
	t.Parallel()
	f := &Fleet{store: groupStore{}}
	ctx := context.Background()
	targets := []string{"", "client:web1", "client:web2", "client:db1", "group:g1", "group:g2", "user:alice"}
	cases := []struct {
		p    Principal
		want map[string]bool
	}{
		{Principal{Kind: "user", Name: "root", Role: RoleAdmin}, nil},
		{Principal{Kind: "user", Name: "aud", Role: RoleAuditor}, nil},
		{Principal{Kind: "user", Name: "aud2", Role: RoleAuditor, Scope: []string{"group:g1"}},
			map[string]bool{"client:web1": true, "client:web2": true, "group:g1": true}},
		{Principal{Kind: "user", Name: "aud3", Role: RoleAuditor, Scope: []string{"client:db1"}},
			map[string]bool{"client:db1": true}},
	}
	for _, c := range cases {
		sees := f.auditVisibility(ctx, c.p)
		for _, target := range targets {
			got, err := sees(target)
			if err != nil {
				t.Fatal(err)
			}
			if want := c.want == nil || c.want[target]; got != want {
				t.Errorf("%s sees %q: %v, want %v", c.p, target, got, want)
			}
		}
	}
}

// groupStore answers GroupOf from testGroups; nothing else is called.
type groupStore struct{ Store }

func (groupStore) GroupOf(ctx context.Context, client string) (string, error) {
	return groupOf(ctx, client)
}
