package api

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/coffer-backup/coffer/internal/fleet/policy"
)

// The fleet administration API (docs/fleet.md, "The administration API"):
// JSON over the same mutual-TLS port, for user certificates. Request
// bodies are decoded by the Decode functions below, strictly.
const (
	AdminPrefix     = "/v1/fleet/"
	WhoAmIPath      = "/v1/fleet/whoami"
	UsersPath       = "/v1/fleet/users"    // GET list, POST add; DELETE UsersPath/NAME
	GroupsPath      = "/v1/fleet/groups"   // GET list, POST add; POST GroupsPath/G/members
	PoliciesPath    = "/v1/fleet/policies" // GET list; GET and PUT PoliciesPath/{group,client}/NAME
	EscrowPath      = "/v1/fleet/escrow"   // PUT
	MaxAdminRequest = 256 << 10
	maxScope        = 256
	maxAssign       = 10000
)

// Roles of fleet users (and RoleHost, the role of a host certificate).
const (
	RoleAdmin    = "admin"
	RoleOperator = "operator"
	RoleAuditor  = "auditor"
	RoleHost     = "host"
)

// WhoAmI answers WhoAmIPath: the caller as the server sees it.
type WhoAmI struct {
	Kind  string   `json:"kind"` // "user" or "client"
	Name  string   `json:"name"`
	Role  string   `json:"role"`
	Scope []string `json:"scope"`
	// CertExpires is when the certificate of the call expires (RFC 3339);
	// the fleet commands renew it past two thirds of its lifetime.
	CertExpires string `json:"cert_expires,omitempty"`
}

// UserAdd is the body of POST UsersPath.
type UserAdd struct {
	Name  string   `json:"name"`
	Role  string   `json:"role"`
	Scope []string `json:"scope,omitempty"`
	// TTLSeconds is how long the enrollment token stays valid; 0: the
	// server's default (15 minutes).
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// UserToken answers UserAdd: the one-time enrollment token, printed once.
type UserToken struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Token   string `json:"token"`
	Expires string `json:"expires"` // RFC 3339
}

// User is one entry of GET UsersPath.
type User struct {
	Name     string   `json:"name"`
	Role     string   `json:"role"`
	Scope    []string `json:"scope"`
	Created  string   `json:"created"`
	Enrolled bool     `json:"enrolled"`
	// CertExpires is the certificate's expiry (RFC 3339), empty until enrolled.
	CertExpires string `json:"cert_expires,omitempty"`
}

// GroupAdd is the body of POST GroupsPath.
type GroupAdd struct {
	Name string `json:"name"`
}

// GroupAssign is the body of POST GroupsPath/G/members.
type GroupAssign struct {
	Clients []string `json:"clients"`
}

// Group is one entry of GET GroupsPath.
type Group struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Created string   `json:"created"`
}

// PolicySettings are the policy fields a group or a client sets; a field
// left out (nil) is not set here: a client's policy takes each field from
// its own settings, else from its group's. The names are those of
// internal/fleet/policy's document and of fleet policy set's flags.
type PolicySettings struct {
	Paths           *[]string        `json:"paths,omitempty"`
	Excludes        *[]string        `json:"excludes,omitempty"`
	ExcludeCaches   *bool            `json:"exclude_caches,omitempty"`
	Schedule        *string          `json:"schedule,omitempty"`
	Window          *string          `json:"window,omitempty"`
	Jitter          *policy.Duration `json:"jitter,omitempty"`
	Timeout         *policy.Duration `json:"timeout,omitempty"`
	RetryInterval   *policy.Duration `json:"retry_interval,omitempty"`
	RetryBackoff    *float64         `json:"retry_backoff,omitempty"`
	RetryAttempts   *int             `json:"retry_attempts,omitempty"`
	KeepLast        *int             `json:"keep_last,omitempty"`
	KeepHourly      *int             `json:"keep_hourly,omitempty"`
	KeepDaily       *int             `json:"keep_daily,omitempty"`
	KeepWeekly      *int             `json:"keep_weekly,omitempty"`
	KeepMonthly     *int             `json:"keep_monthly,omitempty"`
	KeepYearly      *int             `json:"keep_yearly,omitempty"`
	PruneSchedule   *string          `json:"prune_schedule,omitempty"`
	CheckSchedule   *string          `json:"check_schedule,omitempty"`
	Grace           *policy.Duration `json:"grace,omitempty"`
	RestoreRoot     *string          `json:"restore_root,omitempty"`
	ReportFileNames *bool            `json:"report_file_names,omitempty"`
	// Location is the policy repository's location (policy.Repository's);
	// empty: coffer://SERVER/<client>.
	Location *string `json:"location,omitempty"`
	// ReadDataSubset is what the scheduled check reads of the data
	// (check --read-data-subset); it needs a check schedule.
	ReadDataSubset *string `json:"read_data_subset,omitempty"`
}

// PolicySet is the body of PUT PoliciesPath/KIND/NAME: the settings to
// set and the fields to unset (their JSON names, SettingNames), so that
// the other level (the group's, or nothing) decides them again. A field
// may not be both set and unset.
type PolicySet struct {
	PolicySettings
	Unset []string `json:"unset,omitempty"`
}

// SettingNames lists the JSON names of PolicySettings' fields, in order.
func SettingNames() []string {
	t := reflect.TypeOf(PolicySettings{})
	out := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		out = append(out, name)
	}
	return out
}

// IsSet reports whether the field of s called name (a JSON name) is set.
func (s PolicySettings) IsSet(name string) bool {
	v := reflect.ValueOf(s)
	for i, n := range SettingNames() {
		if n == name {
			return !v.Field(i).IsNil()
		}
	}
	return false
}

// PolicyEntry is one entry of GET PoliciesPath, and the answer of GET and
// PUT PoliciesPath/KIND/NAME.
type PolicyEntry struct {
	Target   string         `json:"target"` // "group:G" or "client:C"
	Settings PolicySettings `json:"settings"`
	Updated  string         `json:"updated,omitempty"`
	// Group is a client's group ("" for none or for a group's entry).
	Group string `json:"group,omitempty"`
	// Effective is a client's policy document in force, as signed; absent
	// for a group or a client with nothing to run.
	Effective *policy.Policy `json:"effective,omitempty"`
	// Signed is that document's signed envelope (policy.Verify reads it).
	Signed string `json:"signed,omitempty"`
}

// EscrowSet is the body of PUT EscrowPath: an X25519 public key in
// coffer escrow keygen's format ("age1..."), or "" to stop escrow.
type EscrowSet struct {
	PublicKey string `json:"public_key"`
}

// ValidName is the rule for user, group and client names: the client rule
// (1-63 of a-z0-9._-, starting with a letter or digit, no "..").
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 63 || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')) {
			return false
		}
	}
	return true
}

// ValidScope checks one scope entry: "group:G" or "client:C".
func ValidScope(s string) error {
	kind, name, ok := strings.Cut(s, ":")
	if !ok || (kind != "group" && kind != "client") || !ValidName(name) {
		return fmt.Errorf("%w: scope %q: want group:NAME or client:NAME", ErrInvalid, s)
	}
	return nil
}

// Validate checks a UserAdd: the name, the role (admin, operator or
// auditor), the scope (an operator needs one; an admin takes none: its
// scope is everything) and the token lifetime (0 to 30 days).
func (u *UserAdd) Validate() error {
	if !ValidName(u.Name) {
		return fmt.Errorf("%w: user name %q: 1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", ErrInvalid, u.Name)
	}
	switch u.Role {
	case RoleAdmin:
		if len(u.Scope) > 0 {
			return fmt.Errorf("%w: an admin's scope is everything; give no --scope", ErrInvalid)
		}
	case RoleOperator:
		if len(u.Scope) == 0 {
			return fmt.Errorf("%w: an operator needs a --scope (group:G or client:C)", ErrInvalid)
		}
	case RoleAuditor:
	default:
		return fmt.Errorf("%w: role %q: want admin, operator or auditor", ErrInvalid, u.Role)
	}
	if len(u.Scope) > maxScope {
		return fmt.Errorf("%w: %d scope entries, at most %d", ErrInvalid, len(u.Scope), maxScope)
	}
	for _, s := range u.Scope {
		if err := ValidScope(s); err != nil {
			return err
		}
	}
	if u.TTLSeconds < 0 || u.TTLSeconds > 30*24*3600 {
		return fmt.Errorf("%w: token lifetime %ds: want 0 to 30 days", ErrInvalid, u.TTLSeconds)
	}
	return nil
}

// DecodeUserAdd decodes and validates a POST UsersPath body.
func DecodeUserAdd(body []byte) (*UserAdd, error) {
	var u UserAdd
	if err := decodeStrict(body, &u); err != nil {
		return nil, err
	}
	if err := u.Validate(); err != nil {
		return nil, err
	}
	return &u, nil
}

// DecodeGroupAdd decodes and validates a POST GroupsPath body.
func DecodeGroupAdd(body []byte) (*GroupAdd, error) {
	var g GroupAdd
	if err := decodeStrict(body, &g); err != nil {
		return nil, err
	}
	if !ValidName(g.Name) {
		return nil, fmt.Errorf("%w: group name %q: 1-63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", ErrInvalid, g.Name)
	}
	return &g, nil
}

// DecodeGroupAssign decodes and validates a members body: 1 to 10000
// client names.
func DecodeGroupAssign(body []byte) (*GroupAssign, error) {
	var g GroupAssign
	if err := decodeStrict(body, &g); err != nil {
		return nil, err
	}
	if len(g.Clients) == 0 || len(g.Clients) > maxAssign {
		return nil, fmt.Errorf("%w: %d clients, want 1 to %d", ErrInvalid, len(g.Clients), maxAssign)
	}
	for _, c := range g.Clients {
		if !ValidName(c) {
			return nil, fmt.Errorf("%w: client name %q", ErrInvalid, c)
		}
	}
	return &g, nil
}

// DecodePolicySet decodes a PUT PoliciesPath/KIND/NAME body: settings
// as DecodePolicySettings, and unset names each a known field, once, not
// also set (errors name the field).
func DecodePolicySet(body []byte) (*PolicySet, error) {
	if len(body) > MaxAdminRequest {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(body), MaxAdminRequest)
	}
	var s PolicySet
	if err := decodeStrict(body, &s); err != nil {
		return nil, err
	}
	known := SettingNames()
	for i, name := range s.Unset {
		switch {
		case !slices.Contains(known, name):
			return nil, fmt.Errorf("%w: unset: unknown field %q (fields: %s)", ErrInvalid, name, strings.Join(known, ", "))
		case slices.Contains(s.Unset[:i], name):
			return nil, fmt.Errorf("%w: unset: field %q twice", ErrInvalid, name)
		case s.PolicySettings.IsSet(name):
			return nil, fmt.Errorf("%w: field %q both set and unset", ErrInvalid, name)
		}
	}
	return &s, nil
}

// DecodePolicySettings decodes a PUT PoliciesPath/KIND/NAME body. The
// values are checked by the server against the policy's own rules
// (policy.Validate), which name the field.
func DecodePolicySettings(body []byte) (*PolicySettings, error) {
	if len(body) > MaxAdminRequest {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(body), MaxAdminRequest)
	}
	var s PolicySettings
	if err := decodeStrict(body, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DecodeEscrowSet decodes a PUT EscrowPath body; the key is parsed by the
// server.
func DecodeEscrowSet(body []byte) (*EscrowSet, error) {
	var e EscrowSet
	if err := decodeStrict(body, &e); err != nil {
		return nil, err
	}
	if len(e.PublicKey) > 256 {
		return nil, fmt.Errorf("%w: escrow public key of %d bytes", ErrInvalid, len(e.PublicKey))
	}
	return &e, nil
}
