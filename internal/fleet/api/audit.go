package api

import "time"

// AuditPath lists the server's audit log: GET ?since=T&client=C&limit=N
// answers []AuditEntry, oldest first (docs/fleet.md, "Reading the log
// through the API"). T is RFC 3339; C narrows the listing to the entries
// whose target is client:C; N keeps the newest N (default
// DefaultAuditLimit, at most MaxAuditLimit).
const AuditPath = "/v1/fleet/audit"

// Bounds of an audit listing.
const (
	DefaultAuditLimit = 1000
	MaxAuditLimit     = 10000
)

// AuditActor is who acted in an audit entry.
type AuditActor struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// AuditEntry is one entry of the audit log as the API lists it: the
// fields of the log's line (docs/fleet.md, "Entries"), the chain hashes
// as lowercase hex.
type AuditEntry struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   AuditActor        `json:"actor"`
	Action  string            `json:"action"`
	Target  string            `json:"target"`
	Outcome string            `json:"outcome"`
	Details map[string]string `json:"details"`
	Prev    string            `json:"prev"`
	Hash    string            `json:"hash"`
}
