// Package alert delivers fleet events (a backup failed or was missed, an
// agent went offline, ...) to mail, webhook and syslog channels, through a
// durable outbox with retries, so an unreachable channel never blocks a job.
package alert

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors callers branch on.
var (
	// ErrInvalid: an event or a channel's configuration is not acceptable;
	// the message names the field.
	ErrInvalid = errors.New("invalid alert")
	// ErrNoChannel: no channel has that name.
	ErrNoChannel = errors.New("no such alert channel")
	// ErrInsecure: the configuration or the server would send a secret
	// (an SMTP password) over a connection that is not encrypted, or
	// a secret file is readable by others.
	ErrInsecure = errors.New("refused as insecure")
	// ErrDelivery: a channel did not accept a message.
	ErrDelivery = errors.New("alert delivery failed")
)

// Kind is what happened.
type Kind string

// The kinds of event. Their spelling is stored and shown to users.
const (
	BackupSucceeded Kind = "backup-succeeded"
	BackupWarning   Kind = "backup-warning" // some files were unreadable
	BackupFailed    Kind = "backup-failed"
	BackupSkipped   Kind = "backup-skipped"
	BackupMissed    Kind = "backup-missed" // no successful backup within cadence plus grace
	AgentOffline    Kind = "agent-offline"
	CheckFailed     Kind = "check-failed"
	PruneDone       Kind = "prune-done"
	RestoreFinished Kind = "restore-finished"
	CertExpiring    Kind = "cert-expiring"
	TLSAuditFailed  Kind = "tls-audit-failed"
	ReplicationLag  Kind = "replication-lag"
	AuditLogStopped Kind = "audit-log-stopped" // no server can append to the audit log
	// Test is sent by Dispatcher.Test; channels never filter it out.
	Test Kind = "test"
)

// kinds maps each kind to its words in a mail subject and its syslog
// severity (RFC 5424: 3 error, 4 warning, 5 notice, 6 informational).
var kinds = map[Kind]struct {
	title    string
	severity int
}{
	BackupSucceeded: {"backup succeeded", 6},
	BackupWarning:   {"backup warning", 4},
	BackupFailed:    {"backup failed", 3},
	BackupSkipped:   {"backup skipped", 4},
	BackupMissed:    {"backup missed", 3},
	AgentOffline:    {"agent offline", 3},
	CheckFailed:     {"check failed", 3},
	PruneDone:       {"prune done", 6},
	RestoreFinished: {"restore finished", 5},
	CertExpiring:    {"certificate expiring", 4},
	TLSAuditFailed:  {"TLS self-audit failed", 3},
	ReplicationLag:  {"replication lag", 4},
	AuditLogStopped: {"audit log stopped", 3},
	Test:            {"test alert", 6},
}

// Kinds returns every kind, sorted.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ParseKind returns the kind spelled s, or an error listing the kinds.
func ParseKind(s string) (Kind, error) {
	if _, ok := kinds[Kind(s)]; ok {
		return Kind(s), nil
	}
	names := make([]string, 0, len(kinds))
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	return "", fmt.Errorf("%w: unknown event %q; known: %s", ErrInvalid, clip(s, 64), strings.Join(names, ", "))
}

// Title is the kind in words ("backup missed").
func (k Kind) Title() string {
	if m, ok := kinds[k]; ok {
		return m.title
	}
	return string(k)
}

// Limits on an event's strings. Longer values are cut by Normalize (the
// text an agent reports can be long; an alert is never refused for it).
const (
	MaxSummary     = 1024
	MaxDetailKey   = 64
	MaxDetailValue = 4096
	MaxDetails     = 32
	MaxNameLen     = 253
	MaxGroups      = 32
)

// Event is one thing that happened in the fleet. Client is empty for
// events of the server itself (cert-expiring, tls-audit-failed,
// replication-lag).
type Event struct {
	Kind    Kind              `json:"kind"`
	Client  string            `json:"client,omitempty"`
	Groups  []string          `json:"groups,omitempty"` // the client's groups
	Time    time.Time         `json:"time"`
	JobID   string            `json:"job,omitempty"`
	Summary string            `json:"summary,omitempty"` // one line
	Details map[string]string `json:"details,omitempty"`
}

// Validate checks the fields that make an event meaningful: a known kind
// and a time. Everything else is made safe by Normalize and rendering.
func (e Event) Validate() error {
	if _, ok := kinds[e.Kind]; !ok {
		_, err := ParseKind(string(e.Kind))
		return err
	}
	if e.Time.IsZero() {
		return fmt.Errorf("%w: event %s has no time", ErrInvalid, e.Kind)
	}
	return nil
}

// Normalize returns e with every string valid UTF-8 and within the limits
// above (cut, with "…" marking the cut; details beyond MaxDetails, or
// whose cut key is another's, dropped and counted in the detail
// "truncated"), and the time in UTC.
func (e Event) Normalize() Event {
	out := e
	out.Time = e.Time.UTC()
	out.Client = clip(e.Client, MaxNameLen)
	out.JobID = clip(e.JobID, MaxNameLen)
	out.Summary = clip(e.Summary, MaxSummary)
	if len(e.Groups) > 0 {
		out.Groups = make([]string, 0, min(len(e.Groups), MaxGroups))
		for _, g := range e.Groups[:min(len(e.Groups), MaxGroups)] {
			out.Groups = append(out.Groups, clip(g, MaxNameLen))
		}
	}
	if len(e.Details) == 0 {
		out.Details = nil
		return out
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out.Details = make(map[string]string, min(len(keys), MaxDetails+1))
	dropped := 0
	for _, k := range keys {
		ck := clip(k, MaxDetailKey)
		if _, dup := out.Details[ck]; dup || len(out.Details) == MaxDetails {
			dropped++ // beyond the limit, or its cut key is another's
			continue
		}
		out.Details[ck] = clip(e.Details[k], MaxDetailValue)
	}
	if dropped > 0 {
		out.Details["truncated"] = fmt.Sprintf("%d more details dropped", dropped)
	}
	return out
}

// clip returns s as valid UTF-8 of at most limit bytes, ending in "…" when
// it was cut.
func clip(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= limit {
		return s
	}
	cut := limit - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
