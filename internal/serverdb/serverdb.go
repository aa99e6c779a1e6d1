// Package serverdb is the coffer server's state database: enrolled clients,
// enrollment tokens, revocations, the audit log, refused TLS handshakes, and
// the alert channels and outbox.
//
// DB is the interface the server uses. Store implements it on SQLite (a
// pure-Go driver, a file in the state directory) or on PostgreSQL (pgx),
// which several servers can share (docs/server.md, "Several servers, one
// database"); both pass the same tests.
package serverdb

import (
	"context"
	"errors"
	"math/big"
	"time"

	"github.com/coffer-backup/coffer/internal/alert"
	"github.com/coffer-backup/coffer/internal/pki"
	"github.com/coffer-backup/coffer/internal/tlspolicy"
)

// DefaultFile is the database's file name inside the server's state directory.
const DefaultFile = "state.db"

// Sentinel errors callers branch on.
var (
	ErrNotFound      = errors.New("no such record")
	ErrSchemaTooNew  = errors.New("database schema is newer than this coffer")
	ErrInvalidRecord = errors.New("invalid record")
	// ErrRevoked: the client is revoked as a whole; it cannot renew.
	ErrRevoked = errors.New("client is revoked")
	// ErrSuperseded: the certificate is not the client's current one.
	ErrSuperseded = errors.New("certificate is not the client's current one")
	// ErrExists: a user or group of that name exists already.
	ErrExists = errors.New("record exists")
)

// Client is an enrolled client.
type Client struct {
	Name        string
	CertSerial  *big.Int  // serial of the most recently issued certificate
	NotAfter    time.Time // its expiry
	Created     time.Time // first enrollment
	LastContact time.Time // zero until the client's first request
	AllowDelete bool      // the admin allowed this client to delete objects
	QuotaBytes  int64     // 0: no quota
	RevokedAt   time.Time // zero unless every certificate of the client is revoked
	MaxObjects  int64     // cap on the client's objects; 0: the server's default
	MaxRepos    int64     // cap on the client's repositories; 0: the server's default
}

// Revoked reports whether the client as a whole is revoked.
func (c Client) Revoked() bool { return !c.RevokedAt.IsZero() }

// User is a person of the fleet: a role and a scope, and the certificate
// it enrolled with (nil CertSerial until it redeems its token).
type User struct {
	Name       string
	Role       string   // "admin", "operator" or "auditor"
	Scope      []string // "group:G" and "client:C" entries
	Created    time.Time
	CertSerial *big.Int
	NotAfter   time.Time
}

// UserRevocationName is the name a user's revoked serials are filed under
// in the revocations (and a user's events under): pki.UserTokenPrefix+name.
func UserRevocationName(name string) string { return pki.UserTokenPrefix + name }

// Revocation is one revoked certificate serial.
type Revocation struct {
	Serial    *big.Int
	Client    string
	RevokedAt time.Time
	Reason    string
}

// Event is one recorded server event. Each is also appended to the audit
// log in D/audit (internal/server/audit), which keeps it after the events
// table has pruned it.
type Event struct {
	ID     int64 // set when read; ignored when written
	Time   time.Time
	Client string
	Repo   string // empty for client-level events
	Object string // "kind/name", or empty
	Action string // see the Action constants
	Detail string
}

// Audit actions written by coffer.
const (
	ActionDelete        = "delete"         // an object is about to be deleted
	ActionDeleteRefused = "delete-refused" // a deletion was refused (append-only, outside a grant)
	ActionTrashRestore  = "trash-restore"  // an object came back from the trash (server trash restore)
	ActionTrashPurge    = "trash-purge"    // the trash's older deletions were removed for good
	ActionCreateRepo    = "create-repo"
	ActionEnroll        = "enrol" // stored in audit logs: the spelling of the first databases
	ActionRevoke        = "revoke"
	ActionPolicy        = "policy"        // allow-delete, quota or count limits changed
	ActionEnrollRefused = "enrol-refused" // stored in audit logs, as ActionEnroll
	ActionRenew         = "renew"
	ActionToken         = "token"         // an enrollment token was issued
	ActionSelfScan      = "tls-self-scan" // detail: the scan's SNI marker
	ActionAlert         = "alert"         // the TLS self-audit found the server weaker than its policy
	// Fleet actions; Client is "user:NAME" for a person.
	ActionUserAdd      = "user-add"      // a person was added (detail: role and scope)
	ActionUserRemove   = "user-remove"   // a person was removed, its certificate revoked
	ActionGroup        = "fleet-group"   // a group was made or clients assigned to it
	ActionFleetPolicy  = "fleet-policy"  // a group's or client's backup policy changed
	ActionEscrow       = "fleet-escrow"  // the escrow public key changed
	ActionFleetRefused = "fleet-refused" // a fleet API call was refused for lack of rights
	ActionAlertChannel = "fleet-alert"   // an alert channel was added, replaced or removed (detail: what)
	// ActionAuditEntry: an audit log entry recorded by a server that does
	// not write the log (servers sharing a database): Detail is the
	// entry's JSON, which the writing server appends as it is.
	ActionAuditEntry = "audit-entry"
)

// AuditHead is the audit log's chain head as the database keeps it, so
// that entries cut off the end of the log are detected (auditlog.Head),
// and the ID of the last event appended to the log.
type AuditHead struct {
	Seq     uint64
	Hash    [32]byte
	EventID int64
}

// ReasonSuperseded is the revocation reason of a serial replaced by a
// renewal or a new enrollment.
const ReasonSuperseded = "superseded"

// DB is the server's state. Implementations are safe for concurrent use,
// also by several processes sharing one database (the running server and
// admin commands). Times are stored with nanosecond precision in UTC.
type DB interface {
	// PutClient records an enrollment or renewal: it inserts the client, or
	// updates its certificate serial and expiry, clearing a client-wide
	// revocation (a new token was issued on purpose). Policy fields
	// (AllowDelete, QuotaBytes) and Created of an existing client are kept.
	PutClient(ctx context.Context, c Client) error
	// EnrollClient records an enrollment like PutClient and, in the same
	// transaction, revokes the client's previous certificate serial (reason
	// ReasonSuperseded) and logs an ActionEnroll event.
	EnrollClient(ctx context.Context, c Client, now time.Time) error
	// RenewClient replaces the certificate of client name, whose current
	// serial must be old (ErrSuperseded otherwise), by newSerial expiring at
	// notAfter, revokes old (ReasonSuperseded) and logs an ActionRenew event,
	// in one transaction. A revoked client cannot renew (ErrRevoked); an
	// unknown one is ErrNotFound.
	RenewClient(ctx context.Context, name string, old, newSerial *big.Int, notAfter, now time.Time) error
	// Client returns one client or ErrNotFound.
	Client(ctx context.Context, name string) (Client, error)
	// Clients returns all clients ordered by name.
	Clients(ctx context.Context) ([]Client, error)
	// SetAllowDelete and SetQuota change a client's policy (ErrNotFound if
	// there is no such client) and log an ActionPolicy event.
	SetAllowDelete(ctx context.Context, name string, allow bool, now time.Time) error
	SetQuota(ctx context.Context, name string, bytes int64, now time.Time) error
	// SetCountLimits sets a client's caps on objects and repositories (0:
	// the server's default), like SetQuota.
	SetCountLimits(ctx context.Context, name string, maxObjects, maxRepos int64, now time.Time) error
	// Touch records a client's last contact (never moving it backwards).
	Touch(ctx context.Context, name string, at time.Time) error
	// TouchAll records the last contacts of many clients, as Touch, in one
	// transaction.
	TouchAll(ctx context.Context, contacts map[string]time.Time) error

	// RevokeClient revokes every certificate of a client: it marks the client
	// revoked and adds its current serial to the revocations, in one
	// transaction, and logs an ActionRevoke event.
	RevokeClient(ctx context.Context, name string, now time.Time, reason string) error
	// Revoke adds one serial to the revocations (idempotent).
	Revoke(ctx context.Context, r Revocation) error
	// Revocations returns every revoked serial.
	Revocations(ctx context.Context) ([]Revocation, error)

	// User returns one fleet user or ErrNotFound; Users all, by name.
	User(ctx context.Context, name string) (User, error)
	Users(ctx context.Context) ([]User, error)
	// AddUser records a new user without a certificate (ErrExists if the
	// name is taken) and logs an ActionUserAdd event.
	AddUser(ctx context.Context, u User, now time.Time) error
	// EnrollUser records the certificate a user enrolled with, revoking the
	// one it replaces (ReasonSuperseded), and logs an ActionEnroll event; a
	// user removed since its token was issued is ErrNotFound.
	EnrollUser(ctx context.Context, name string, serial *big.Int, notAfter, now time.Time) error
	// RenewUser replaces the certificate old of user name with newSerial,
	// as RenewClient does for a client (ErrNotFound for a removed user,
	// ErrSuperseded when old is not its current certificate).
	RenewUser(ctx context.Context, name string, old, newSerial *big.Int, notAfter, now time.Time) error
	// RemoveUser deletes a user, revokes its certificate and logs an
	// ActionUserRemove event, in one transaction; ErrNotFound if none.
	RemoveUser(ctx context.Context, name string, now time.Time, reason string) error

	// Tokens is the enrollment token store (single-use redemption).
	Tokens() pki.TokenStore

	// Snapshot stamps and deletion grants (stamps.go): StampSnapshot
	// records a snapshot object's arrival on the server clock, Stamps lists
	// a repository's, SetStampDeleted marks one deleted (or back), PutGrant records a prune job's grant and
	// ActiveGrants returns those whose window holds now.
	StampSnapshot(ctx context.Context, client, repo, name string, at time.Time) (Stamp, error)
	Stamps(ctx context.Context, client, repo string) ([]Stamp, error)
	SetStampDeleted(ctx context.Context, client, repo, name string, at time.Time) error
	PutGrant(ctx context.Context, g Grant) error
	ActiveGrants(ctx context.Context, client, repo string, now time.Time) ([]Grant, error)

	// Usage and quotas (usage.go): Usage returns a client's recorded
	// usage (ErrNotFound if none), SetUsage replaces it with a count,
	// InitUsage records a count unless one is recorded and returns the
	// recorded one, and AddUsage changes it by a delta within limits
	// (ErrOverLimit), atomically across the servers sharing the database.
	Usage(ctx context.Context, client string) (Usage, error)
	SetUsage(ctx context.Context, u Usage) error
	InitUsage(ctx context.Context, u Usage) (Usage, error)
	AddUsage(ctx context.Context, client string, d Usage, lim UsageLimits) (Usage, error)

	// LogEvent records an event; Events returns those at or after since,
	// oldest first, at most limit of them (limit <= 0: all); EventsAfter
	// returns those whose ID is above after, in ID order (the audit log's
	// feed).
	LogEvent(ctx context.Context, e Event) error
	Events(ctx context.Context, since time.Time, limit int) ([]Event, error)
	EventsAfter(ctx context.Context, after int64, limit int) ([]Event, error)

	// AuditHead returns the audit log's kept chain head and the ID of the
	// last event appended to the log (zero values before the first);
	// SetAuditHead replaces them. Only the server appending to the log
	// writes them.
	AuditHead(ctx context.Context) (AuditHead, error)
	SetAuditHead(ctx context.Context, h AuditHead) error
	// SwapAuditHead replaces the kept head old by h in one transaction,
	// or fails with ErrConflict when the kept head is no longer old
	// (another server appended to the log since): two writers can never
	// both extend the chain from one head. The audit trail stores its
	// heads through it.
	SwapAuditHead(ctx context.Context, old, h AuditHead) error

	// LogRefusal records a refused handshake or request; Refusals returns
	// those at or after since, oldest first. RefusalLog adapts the database
	// to tlspolicy's listener and the server's request checks.
	LogRefusal(ctx context.Context, r tlspolicy.RefusalRecord) error
	Refusals(ctx context.Context, since time.Time) ([]tlspolicy.RefusalRecord, error)
	RefusalLog() tlspolicy.RefusalLog

	// The alert channels and the outbox of their undelivered events
	// (alerts.go).
	alert.Store

	Close() error
}
