package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/coffer-backup/coffer/internal/auditlog"
	"github.com/coffer-backup/coffer/internal/escrowkey"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/fleet/policy"
	"github.com/coffer-backup/coffer/internal/server/fleet/control"
	"github.com/coffer-backup/coffer/internal/serverdb"
)

// Sentinel errors of policies.
var (
	// ErrNoPolicy: neither the client nor its group sets a policy (the
	// control connection's control.ErrNoPolicy: nothing to send).
	ErrNoPolicy = control.ErrNoPolicy
	// ErrInvalidSetting: a setting the policy would refuse; the message
	// names the flag and the policy field.
	ErrInvalidSetting = errors.New("invalid policy setting")
)

// RepositoryName is the one repository a fleet policy names; its location
// is left empty, the agent's default coffer://SERVER/<client>.
const RepositoryName = "main"

const escrowSetting = "escrow_public_key"

// Merge returns base with every field over sets replacing base's: a
// client's settings over its group's, or a change over stored settings.
func Merge(base, over api.PolicySettings) api.PolicySettings {
	out := base
	bv, ov := reflect.ValueOf(&out).Elem(), reflect.ValueOf(over)
	for i := 0; i < ov.NumField(); i++ {
		if !ov.Field(i).IsNil() {
			bv.Field(i).Set(ov.Field(i))
		}
	}
	return out
}

// Unset returns s with the fields named (JSON names, api.SettingNames)
// cleared; unknown names are ignored (api.DecodePolicySet refuses them).
func Unset(s api.PolicySettings, names []string) api.PolicySettings {
	v := reflect.ValueOf(&s).Elem()
	for i, n := range api.SettingNames() {
		if slices.Contains(names, n) {
			v.Field(i).SetZero()
		}
	}
	return s
}

func val[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// Build makes client's policy document from its effective settings; the
// caller sets Generation and Issued. ErrNoPolicy when s sets neither paths
// nor a schedule.
func Build(client string, s api.PolicySettings, escrow []byte) (*policy.Policy, error) {
	if s.Paths == nil && s.Schedule == nil {
		return nil, fmt.Errorf("%w %q", ErrNoPolicy, client)
	}
	r := policy.Repository{
		Name:          RepositoryName,
		Paths:         val(s.Paths),
		Excludes:      val(s.Excludes),
		ExcludeCaches: val(s.ExcludeCaches),
		Schedule:      val(s.Schedule),
		Window:        val(s.Window),
		Jitter:        val(s.Jitter),
		Timeout:       val(s.Timeout),
		Retry:         policy.Retry{Interval: val(s.RetryInterval), Factor: val(s.RetryBackoff), Attempts: val(s.RetryAttempts)},
		Keep: policy.Keep{Last: val(s.KeepLast), Hourly: val(s.KeepHourly), Daily: val(s.KeepDaily),
			Weekly: val(s.KeepWeekly), Monthly: val(s.KeepMonthly), Yearly: val(s.KeepYearly)},
		Grace: val(s.Grace),
	}
	r.Location = val(s.Location)
	if c, sub := val(s.CheckSchedule), val(s.ReadDataSubset); c != "" || sub != "" {
		r.Check = &policy.Check{Schedule: c, ReadDataSubset: sub}
	}
	if v := val(s.PruneSchedule); v != "" {
		r.Prune = &policy.Prune{Schedule: v}
	}
	if len(r.Excludes) == 0 {
		r.Excludes = nil
	}
	return &policy.Policy{
		Version:         policy.Version,
		Client:          client,
		Repositories:    []policy.Repository{r},
		RestoreRoot:     val(s.RestoreRoot),
		ReportFileNames: val(s.ReportFileNames),
		EscrowPublicKey: escrow,
	}, nil
}

// flagOf maps a policy field (without "repositories[N].") to the flag of
// fleet policy set that sets it.
var flagOf = map[string]string{
	"paths": "--paths", "excludes": "--exclude", "schedule": "--schedule", "window": "--window",
	"jitter": "--jitter", "timeout": "--timeout", "retry.interval": "--retry-interval",
	"retry": "--retry-interval/--retry-backoff/--retry-attempts", "keep.last": "--keep-last",
	"keep.hourly": "--keep-hourly", "keep.daily": "--keep-daily", "keep.weekly": "--keep-weekly",
	"keep.monthly": "--keep-monthly", "keep.yearly": "--keep-yearly", "check.schedule": "--check-schedule",
	"prune.schedule": "--prune-schedule", "grace": "--grace", "restore_root": "--restore-root",
	"escrow_public_key": "fleet escrow set", "location": "--location", "check.read_data_subset": "--read-data-subset",
}

var fieldRE = regexp.MustCompile(`^invalid policy: ((?:repositories\[\d+\]\.)?([a-z_.]+?)(?:\[\d+\])?): `)

// validateSettings checks settings as the policy would, filling what they
// leave to another level (paths, schedule; for one level's own settings,
// level, also the check schedule) with placeholders, and names the flag
// of the first bad field (ErrInvalidSetting).
func validateSettings(client string, s api.PolicySettings, escrow []byte, level bool) error {
	daily := "@daily"
	if s.Paths == nil {
		s.Paths = &[]string{"/"}
	}
	if s.Schedule == nil {
		s.Schedule = &daily
	}
	if val(s.ReadDataSubset) != "" && s.CheckSchedule == nil {
		if !level {
			return fmt.Errorf("%w: --read-data-subset needs a --check-schedule (the host's or its group's)", ErrInvalidSetting)
		}
		s.CheckSchedule = &daily
	}
	p, err := Build(client, s, escrow)
	if err != nil {
		return err
	}
	p.Generation, p.Issued = 1, time.Unix(1, 0)
	if err := p.Validate(); err != nil {
		return namedSettingError(err)
	}
	return nil
}

func namedSettingError(err error) error {
	m := fieldRE.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("%w: %w", ErrInvalidSetting, err)
	}
	field := strings.TrimPrefix(m[2], "repositories.")
	flag := flagOf[field]
	if flag == "" {
		flag = field
	}
	reason := strings.TrimPrefix(err.Error(), m[0])
	return fmt.Errorf("%w: %s (%s): %s", ErrInvalidSetting, flag, m[1], reason)
}

// targetName checks and splits "group:G" or "client:C".
func targetName(target string) (kind, name string, err error) {
	kind, name, ok := strings.Cut(target, ":")
	if !ok || (kind != "group" && kind != "client") || !api.ValidName(name) {
		return "", "", fmt.Errorf("%w: target %q: want group:NAME or client:NAME", api.ErrInvalid, target)
	}
	return kind, name, nil
}

func (f *Fleet) settings(ctx context.Context, target string) (api.PolicySettings, time.Time, error) {
	var s api.PolicySettings
	rec, err := f.store.PolicySettings(ctx, target)
	if errors.Is(err, serverdb.ErrNotFound) {
		return s, time.Time{}, nil
	}
	if err != nil {
		return s, time.Time{}, err
	}
	if err := json.Unmarshal([]byte(rec.Settings), &s); err != nil {
		return s, time.Time{}, fmt.Errorf("stored policy settings of %s: %w", target, err)
	}
	return s, rec.Updated, nil
}

func (f *Fleet) escrowKey(ctx context.Context) ([]byte, error) {
	v, err := f.store.FleetSetting(ctx, escrowSetting)
	if err != nil || v == "" {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(v)
}

// effective returns client's group and merged settings.
func (f *Fleet) effective(ctx context.Context, client string) (string, api.PolicySettings, error) {
	group, err := f.store.GroupOf(ctx, client)
	if err != nil {
		return "", api.PolicySettings{}, err
	}
	var gs api.PolicySettings
	if group != "" {
		if gs, _, err = f.settings(ctx, "group:"+group); err != nil {
			return "", api.PolicySettings{}, err
		}
	}
	cs, _, err := f.settings(ctx, "client:"+client)
	if err != nil {
		return "", api.PolicySettings{}, err
	}
	return group, Merge(gs, cs), nil
}

// Policy returns client's policy document in force: its group's settings
// overridden field by field by its own, the escrow key, and the
// generation, which rises whenever the content changes (ErrNoPolicy when
// nothing is set for it).
func (f *Fleet) Policy(ctx context.Context, client string) (*policy.Policy, error) {
	if !api.ValidName(client) {
		return nil, fmt.Errorf("%w: client name %q", api.ErrInvalid, client)
	}
	_, s, err := f.effective(ctx, client)
	if err != nil {
		return nil, err
	}
	escrow, err := f.escrowKey(ctx)
	if err != nil {
		return nil, err
	}
	p, err := Build(client, s, escrow)
	if err != nil {
		return nil, err
	}
	content, err := json.Marshal(p) // Generation and Issued still zero
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(content)
	gen, issued, err := f.store.PolicyGeneration(ctx, client, digest[:], f.now())
	if err != nil {
		return nil, err
	}
	p.Generation, p.Issued = gen, issued
	if err := p.Validate(); err != nil {
		return nil, namedSettingError(err)
	}
	return p, nil
}

// SignedPolicy returns client's policy in force signed with the policy key
// (the envelope policy.Verify reads) and its generation; ErrNoPolicy when
// nothing is set for the client.
func (f *Fleet) SignedPolicy(ctx context.Context, client string) ([]byte, uint64, error) {
	p, err := f.Policy(ctx, client)
	if err != nil {
		return nil, 0, err
	}
	signed, err := policy.Sign(f.key, p)
	if err != nil {
		return nil, 0, err
	}
	return signed, p.Generation, nil
}

// SetPolicy merges change into target's settings ("group:G" or
// "client:C") and clears the fields unset names (JSON names), refusing
// (ErrInvalidSetting, naming the flag) settings the policy would refuse,
// for the target and for every client it reaches; then audits the change
// and notifies OnPolicyChange.
func (f *Fleet) SetPolicy(ctx context.Context, by Principal, target string, change api.PolicySettings, unset []string) (api.PolicySettings, error) {
	kind, name, err := targetName(target)
	if err != nil {
		return api.PolicySettings{}, err
	}
	old, _, err := f.settings(ctx, target)
	if err != nil {
		return api.PolicySettings{}, err
	}
	merged := Unset(Merge(old, change), unset)
	escrow, err := f.escrowKey(ctx)
	if err != nil {
		return api.PolicySettings{}, err
	}
	if err := validateSettings("check", merged, escrow, true); err != nil {
		return api.PolicySettings{}, err
	}
	clients, err := f.reach(ctx, kind, name)
	if err != nil {
		return api.PolicySettings{}, err
	}
	for _, c := range clients {
		if err := f.validateReached(ctx, c, kind, merged, escrow); err != nil {
			return api.PolicySettings{}, fmt.Errorf("for client %s: %w", c, err)
		}
	}
	b, err := json.Marshal(merged)
	if err != nil {
		return api.PolicySettings{}, err
	}
	now := f.now()
	if err := f.store.PutPolicySettings(ctx, serverdb.PolicyRecord{Target: target, Settings: string(b), Updated: now}); err != nil {
		return api.PolicySettings{}, err
	}
	f.audit(ctx, by, serverdb.ActionFleetPolicy, target, string(b))
	f.notify(clients)
	return merged, nil
}

// validateReached checks client's effective settings once its group's
// (kind "group") or its own (kind "client") settings are merged.
func (f *Fleet) validateReached(ctx context.Context, client, kind string, merged api.PolicySettings, escrow []byte) error {
	group, err := f.store.GroupOf(ctx, client)
	if err != nil {
		return err
	}
	gs, cs := api.PolicySettings{}, merged
	if kind == "group" {
		gs = merged
		if cs, _, err = f.settings(ctx, "client:"+client); err != nil {
			return err
		}
	} else if group != "" {
		if gs, _, err = f.settings(ctx, "group:"+group); err != nil {
			return err
		}
	}
	return validateSettings(client, Merge(gs, cs), escrow, false)
}

// reach lists the clients a target's policy applies to.
func (f *Fleet) reach(ctx context.Context, kind, name string) ([]string, error) {
	if kind == "client" {
		return []string{name}, nil
	}
	groups, err := f.store.Groups(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if g.Name == name {
			return g.Members, nil
		}
	}
	return nil, nil
}

// SetEscrow puts an escrow public key ("age1…", coffer escrow keygen's
// format) into every policy, or takes it out ("").
func (f *Fleet) SetEscrow(ctx context.Context, by Principal, recipient string) error {
	value := ""
	if recipient != "" {
		key, err := escrowkey.Decode(recipient)
		if err != nil {
			return fmt.Errorf("%w: %w", api.ErrInvalid, err)
		}
		value = base64.StdEncoding.EncodeToString(key)
	}
	if err := f.store.SetFleetSetting(ctx, escrowSetting, value); err != nil {
		return err
	}
	f.audit(ctx, by, serverdb.ActionEscrow, "", recipient)
	clients, err := f.allClients(ctx)
	if err != nil {
		return err
	}
	f.notify(clients)
	return nil
}

// allClients lists every enrolled client and every group member.
func (f *Fleet) allClients(ctx context.Context) ([]string, error) {
	cs, err := f.store.Clients(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	groups, err := f.store.Groups(ctx)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		out = append(out, g.Members...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// audit records a change made by p to target (client:C, group:G,
// user:U, or an alert channel's name), detail saying what.
func (f *Fleet) audit(ctx context.Context, p Principal, action, target, detail string) {
	f.record(ctx, p, action, target, auditlog.OutcomeOK, detail)
}

// record appends what p did to the audit log (Config.Audit) with p as the
// actor; without one it logs a database event, as before the log.
// Failures are logged: the change or refusal has happened.
func (f *Fleet) record(ctx context.Context, p Principal, action, target, outcome, detail string) {
	var err error
	if f.auditor != nil {
		e := auditlog.Entry{Actor: p.actor(), Action: action, Target: target, Outcome: outcome, Details: map[string]string{}}
		if detail != "" {
			e.Details["detail"] = clip(detail)
		}
		err = f.auditor.Record(ctx, e)
	} else {
		who := p.Name
		if p.Kind == "user" {
			who = serverdb.UserRevocationName(p.Name)
		}
		if outcome == auditlog.OutcomeRefused {
			action = serverdb.ActionFleetRefused
		}
		err = f.store.LogEvent(ctx, serverdb.Event{Time: f.now(), Client: who, Object: target, Action: action, Detail: clip(detail)})
	}
	if err != nil {
		f.log.Error("audit log", "action", action, "target", target, "err", err)
	}
}
