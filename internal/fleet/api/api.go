// Package api holds the messages of the fleet's control connection, shared
// by the server (internal/server/fleet) and the agent (internal/agent).
//
// The agent holds one request open, GET StreamPath, on the port and
// certificate it backs up with. The server answers 200 and writes Messages
// down it, one JSON object a line: first the host's current signed policy,
// then a ping every PingInterval, and policy, job and cancel messages as
// soon as a change is committed. The agent posts each job's state changes
// to ReportPath, one Report per request; the server answers 204 once the
// report is stored, and the agent drops it from its queue only then.
//
// Every decoder here is strict: unknown fields, trailing data, oversized
// input and invalid values are refused, since both ends treat the other as
// untrusted (a host must not be able to forge another host's report, and a
// server the agent did not enrol with never gets this far).
package api

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Paths and limits of the control connection.
const (
	StreamPath = "/v1/agent/stream"
	ReportPath = "/v1/agent/report"

	// PingInterval is how often the server writes a ping; an agent that
	// hears nothing for OfflineAfter drops the stream and reconnects, and
	// the server counts a host offline after the same time without a stream.
	PingInterval = 15 * time.Second
	OfflineAfter = 3 * PingInterval

	// MaxMessage bounds one stream line and one report body.
	MaxMessage = 1 << 20

	// HeaderAgentVersion carries the agent's version on the stream request.
	HeaderAgentVersion = "Coffer-Agent-Version"
	// HeaderPolicyGeneration carries the generation of the agent's cached
	// policy (0: none), so the server can tell a stale agent.
	HeaderPolicyGeneration = "Coffer-Policy-Generation"

	maxText  = 4096  // error text, summaries
	maxFiles = 10000 // file names in one report
	maxName  = 4096  // one path
)

// ErrInvalid wraps every refusal of a message or report.
var ErrInvalid = errors.New("invalid fleet message")

// MessageType says what a Message carries.
type MessageType string

// The message types.
const (
	MsgPolicy MessageType = "policy" // Policy: a signed policy envelope
	MsgJob    MessageType = "job"    // Job: an ordered job to run
	MsgCancel MessageType = "cancel" // Cancel: the ID of a job to cancel
	MsgPing   MessageType = "ping"   // nothing else
)

// Message is one line of the control stream.
type Message struct {
	Type MessageType `json:"type"`
	// Time is the server's clock when it wrote the message.
	Time time.Time `json:"time"`
	// Policy is the signed envelope exactly as policy.Sign made it; the
	// agent verifies it with the pinned key before parsing (policy.Verify).
	Policy json.RawMessage `json:"policy,omitempty"`
	Job    *Job            `json:"job,omitempty"`
	Cancel string          `json:"cancel,omitempty"`
}

// JobKind is what a job does.
type JobKind string

// The job kinds.
const (
	KindBackup  JobKind = "backup"
	KindPrune   JobKind = "prune" // forget + prune under a grant
	KindCheck   JobKind = "check"
	KindRestore JobKind = "restore"
	// KindPolicy is not a job the server orders: a report of this kind
	// says the agent refused a policy (bad signature, another host's,
	// replayed, invalid). Its state is failed, its repository empty, its
	// error the reason; the agent keeps the policy it held.
	KindPolicy JobKind = "policy"
)

// JobState is where a job is in its life.
type JobState string

// The job states. Succeeded, Warning, Failed, Skipped, Missed and Cancelled
// are final.
const (
	StateQueued    JobState = "queued"
	StateRunning   JobState = "running"
	StateSucceeded JobState = "succeeded"
	StateWarning   JobState = "warning" // done, some files unreadable
	StateFailed    JobState = "failed"
	StateSkipped   JobState = "skipped" // outside its window, or another run of it still going
	StateMissed    JobState = "missed"  // set by the server: no success within cadence + grace
	StateCancelled JobState = "cancelled"
)

// Final reports whether no further state follows s.
func (s JobState) Final() bool {
	switch s {
	case StateSucceeded, StateWarning, StateFailed, StateSkipped, StateMissed, StateCancelled:
		return true
	}
	return false
}

// Job is a job the server orders (run-now, restore, prune with its grant,
// check). Scheduled jobs the agent starts itself have no Job message; the
// agent makes their IDs.
type Job struct {
	ID         string    `json:"id"`         // NewID's form
	Kind       JobKind   `json:"kind"`       // what to run
	Repository string    `json:"repository"` // the policy repository's name
	Created    time.Time `json:"created"`
	Check      *Check    `json:"check,omitempty"`
	Restore    *Restore  `json:"restore,omitempty"`
	Grant      *Grant    `json:"grant,omitempty"` // prune jobs only
}

// Check are a check job's options.
type Check struct {
	ReadDataSubset string `json:"read_data_subset,omitempty"`
}

// Restore are a restore job's options. Target must lie under the policy's
// restore root unless the agent allows restores in place; the agent checks.
type Restore struct {
	Snapshot string   `json:"snapshot"` // an ID, a unique prefix, or "latest"
	Target   string   `json:"target"`
	Include  []string `json:"include,omitempty"`
}

// Grant is a prune job's permission to delete: the snapshot objects the host
// may delete, and a window in which the server lets it delete packs and
// indexes. Outside it, append-only holds.
type Grant struct {
	Snapshots []string  `json:"snapshots"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
}

// Stats are a job's figures; zero where they do not apply.
type Stats struct {
	FilesNew       int64 `json:"files_new"`
	FilesChanged   int64 `json:"files_changed"`
	FilesUnchanged int64 `json:"files_unchanged"`
	BytesNew       int64 `json:"bytes_new"`
	BytesChanged   int64 `json:"bytes_changed"`
	BytesUnchanged int64 `json:"bytes_unchanged"`
	BytesAdded     int64 `json:"bytes_added"` // to the repository, after dedup and compression
	Errors         int64 `json:"errors"`      // files that could not be read
}

// Report is one state change of one job, posted by the agent.
type Report struct {
	Job        string    `json:"job"`
	Kind       JobKind   `json:"kind"`
	Repository string    `json:"repository"`
	State      JobState  `json:"state"`
	Scheduled  bool      `json:"scheduled"` // started by the agent from its policy
	Start      time.Time `json:"start,omitzero"`
	End        time.Time `json:"end,omitzero"`
	Snapshot   string    `json:"snapshot,omitempty"` // the snapshot a backup made
	Stats      Stats     `json:"stats"`
	Error      string    `json:"error,omitempty"`
	// Files lists names (e.g. unreadable files) only when the policy's
	// report_file_names allows it.
	Files []string `json:"files,omitempty"`
	// Dropped counts reports the agent's full queue dropped before this one.
	Dropped int64 `json:"dropped,omitempty"`
}

// NewID formats 16 random bytes as a job ID.
func NewID(random [16]byte) string { return hex.EncodeToString(random[:]) }

// ValidID reports whether s is a job ID: 32 lowercase hex digits.
func ValidID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validRepo mirrors the policy's repository name rule: 1-64 of a-z0-9_-.
func validRepo(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func validKind(k JobKind) bool {
	switch k {
	case KindBackup, KindPrune, KindCheck, KindRestore:
		return true
	}
	return false
}

func validState(s JobState) bool {
	return s == StateQueued || s == StateRunning || s.Final()
}

// text checks a free-text field: valid UTF-8, bounded, no NUL.
func text(field, s string, limit int) error {
	if len(s) > limit {
		return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, field, limit)
	}
	if !utf8.ValidString(s) || bytes.IndexByte([]byte(s), 0) >= 0 {
		return fmt.Errorf("%w: %s is not clean UTF-8", ErrInvalid, field)
	}
	return nil
}

// Validate checks a message's fields against its type.
func (m *Message) Validate() error {
	if m.Time.IsZero() {
		return fmt.Errorf("%w: message without a time", ErrInvalid)
	}
	has := [3]bool{len(m.Policy) > 0, m.Job != nil, m.Cancel != ""}
	want := [3]bool{m.Type == MsgPolicy, m.Type == MsgJob, m.Type == MsgCancel}
	switch m.Type {
	case MsgPolicy, MsgJob, MsgCancel, MsgPing:
	default:
		return fmt.Errorf("%w: message type %q", ErrInvalid, m.Type)
	}
	if has != want {
		return fmt.Errorf("%w: a %s message with the wrong fields", ErrInvalid, m.Type)
	}
	if m.Job != nil {
		return m.Job.Validate()
	}
	if m.Type == MsgCancel && !ValidID(m.Cancel) {
		return fmt.Errorf("%w: cancel: job ID %q", ErrInvalid, m.Cancel)
	}
	return nil
}

// Validate checks a job's fields.
func (j *Job) Validate() error {
	if !ValidID(j.ID) {
		return fmt.Errorf("%w: job ID %q", ErrInvalid, j.ID)
	}
	if !validKind(j.Kind) {
		return fmt.Errorf("%w: job kind %q", ErrInvalid, j.Kind)
	}
	if !validRepo(j.Repository) {
		return fmt.Errorf("%w: job repository %q", ErrInvalid, j.Repository)
	}
	if (j.Restore != nil) != (j.Kind == KindRestore) || (j.Grant != nil) != (j.Kind == KindPrune) ||
		(j.Check != nil && j.Kind != KindCheck) {
		return fmt.Errorf("%w: a %s job with the wrong options", ErrInvalid, j.Kind)
	}
	if j.Restore != nil {
		return j.Restore.validate()
	}
	if j.Grant != nil {
		return j.Grant.validate()
	}
	if j.Check != nil {
		return text("check.read_data_subset", j.Check.ReadDataSubset, 64)
	}
	return nil
}

func (r *Restore) validate() error {
	if r.Snapshot == "" || r.Target == "" || r.Target[0] != '/' {
		return fmt.Errorf("%w: restore needs a snapshot and an absolute target", ErrInvalid)
	}
	if len(r.Include) > 1024 {
		return fmt.Errorf("%w: restore: more than 1024 include patterns", ErrInvalid)
	}
	for _, s := range append([]string{r.Snapshot, r.Target}, r.Include...) {
		if err := text("restore", s, maxName); err != nil {
			return err
		}
	}
	return nil
}

func (g *Grant) validate() error {
	if g.NotBefore.IsZero() || !g.NotAfter.After(g.NotBefore) {
		return fmt.Errorf("%w: grant: its window is empty", ErrInvalid)
	}
	if len(g.Snapshots) > 100000 {
		return fmt.Errorf("%w: grant: more than 100000 snapshots", ErrInvalid)
	}
	for _, s := range g.Snapshots {
		if !ValidSnapshotName(s) {
			return fmt.Errorf("%w: grant: snapshot object name %q", ErrInvalid, s)
		}
	}
	return nil
}

// ValidSnapshotName reports whether s can name a snapshot object in a
// grant: 64 hex digits.
func ValidSnapshotName(s string) bool { return len(s) == 64 && isHex(s) }

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s)%2 == 0
}

// Validate checks a report's fields.
func (r *Report) Validate() error {
	if r.Kind == KindPolicy {
		return r.validatePolicy()
	}
	if !ValidID(r.Job) || !validKind(r.Kind) || !validRepo(r.Repository) || !validState(r.State) {
		return fmt.Errorf("%w: report: job %q, kind %q, repository %q, state %q", ErrInvalid, r.Job, r.Kind, r.Repository, r.State)
	}
	if r.State == StateMissed {
		return fmt.Errorf("%w: report: only the server marks a job missed", ErrInvalid)
	}
	if !r.End.IsZero() && r.End.Before(r.Start) {
		return fmt.Errorf("%w: report: ends before it starts", ErrInvalid)
	}
	if r.Snapshot != "" && (len(r.Snapshot) != 64 || !isHex(r.Snapshot)) {
		return fmt.Errorf("%w: report: snapshot %q", ErrInvalid, r.Snapshot)
	}
	if r.Dropped < 0 || r.Stats.anyNegative() {
		return fmt.Errorf("%w: report: negative count", ErrInvalid)
	}
	if len(r.Files) > maxFiles {
		return fmt.Errorf("%w: report: more than %d file names", ErrInvalid, maxFiles)
	}
	for _, f := range r.Files {
		if err := text("report file name", f, maxName); err != nil {
			return err
		}
	}
	return text("report error", r.Error, maxText)
}

// validatePolicy checks a report of a refused policy.
func (r *Report) validatePolicy() error {
	if !ValidID(r.Job) || r.Repository != "" || r.State != StateFailed || r.Error == "" {
		return fmt.Errorf("%w: a policy report has a job ID, no repository, state failed and an error", ErrInvalid)
	}
	return text("report error", r.Error, maxText)
}

func (s Stats) anyNegative() bool {
	return s.FilesNew < 0 || s.FilesChanged < 0 || s.FilesUnchanged < 0 || s.BytesNew < 0 ||
		s.BytesChanged < 0 || s.BytesUnchanged < 0 || s.BytesAdded < 0 || s.Errors < 0
}

// decodeStrict decodes exactly one JSON value of at most MaxMessage bytes
// into v, refusing unknown fields and trailing data.
func decodeStrict(data []byte, v any) error {
	if len(data) > MaxMessage {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(data), MaxMessage)
	}
	if !utf8.Valid(data) {
		// encoding/json would quietly mend it to U+FFFD.
		return fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the JSON value", ErrInvalid)
	}
	return nil
}

// DecodeMessage decodes and validates one stream line (without its newline).
func DecodeMessage(line []byte) (*Message, error) {
	var m Message
	if err := decodeStrict(line, &m); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// EncodeMessage validates m and encodes it as one line, newline included.
func EncodeMessage(m *Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// DecodeReport decodes and validates a report body.
func DecodeReport(body []byte) (*Report, error) {
	var r Report
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// EncodeReport validates r and encodes it.
func EncodeReport(r *Report) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(r)
}
