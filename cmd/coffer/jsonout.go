package main

import (
	"encoding/json"
	"io"
	"time"

	"github.com/coffer-backup/coffer/internal/check"
	"github.com/coffer-backup/coffer/internal/fleet/api"
	"github.com/coffer-backup/coffer/internal/maintenance"
	"github.com/coffer-backup/coffer/internal/server/replicate"
	"github.com/coffer-backup/coffer/internal/serverdb"
	"github.com/coffer-backup/coffer/internal/snapdiff"
)

// The shapes of --json output, documented field by field in docs/json.md.
// Streaming commands (backup, restore, check) print JSON lines, each with
// a message_type; listings print one JSON document.

// Message types of JSON lines.
const (
	msgStatus  = "status"
	msgSummary = "summary"
	msgError   = "error"
	msgPhase   = "phase"
	msgCopied  = "snapshot"
)

// backupStatusJSON is a progress line of backup, printed every second.
type backupStatusJSON struct {
	MessageType    string  `json:"message_type"` // "status"
	SecondsElapsed float64 `json:"seconds_elapsed"`
	PercentDone    float64 `json:"percent_done"` // 0..1, of the bytes found so far
	TotalFiles     uint64  `json:"total_files"`
	FilesDone      uint64  `json:"files_done"`
	TotalBytes     uint64  `json:"total_bytes"`
	BytesDone      uint64  `json:"bytes_done"`
	ErrorCount     uint64  `json:"error_count"`
}

// backupSummaryJSON is the last line of a backup that wrote its snapshot.
type backupSummaryJSON struct {
	MessageType         string  `json:"message_type"` // "summary"
	SnapshotID          string  `json:"snapshot_id"`
	FilesNew            uint64  `json:"files_new"`
	FilesChanged        uint64  `json:"files_changed"`
	FilesUnmodified     uint64  `json:"files_unmodified"`
	DirsNew             uint64  `json:"dirs_new"`
	DirsChanged         uint64  `json:"dirs_changed"`
	DirsUnmodified      uint64  `json:"dirs_unmodified"`
	DataBlobs           uint64  `json:"data_blobs"`
	TreeBlobs           uint64  `json:"tree_blobs"`
	DataAdded           uint64  `json:"data_added"`
	DataAddedPacked     uint64  `json:"data_added_packed"`
	TotalFilesProcessed uint64  `json:"total_files_processed"`
	TotalBytesProcessed uint64  `json:"total_bytes_processed"`
	TotalDuration       float64 `json:"total_duration"` // seconds
	Errors              uint64  `json:"errors"`
}

// errorJSON reports one item a streaming command could not process.
type errorJSON struct {
	MessageType string           `json:"message_type"` // "error"
	Error       errorMessageJSON `json:"error"`
	During      string           `json:"during"` // "backup" or "restore"
	Item        string           `json:"item"`   // the path
}

type errorMessageJSON struct {
	Message string `json:"message"`
}

// restoreStatusJSON is a progress line of restore, printed every second.
type restoreStatusJSON struct {
	MessageType    string  `json:"message_type"` // "status"
	SecondsElapsed float64 `json:"seconds_elapsed"`
	FilesRestored  uint64  `json:"files_restored"`
	BytesRestored  uint64  `json:"bytes_restored"`
	FilesSkipped   uint64  `json:"files_skipped"`
	ErrorCount     uint64  `json:"error_count"`
	TotalFiles     uint64  `json:"total_files"` // selected so far by the walk
	TotalBytes     uint64  `json:"total_bytes"`
}

// restoreSummaryJSON is the last line of a restore.
type restoreSummaryJSON struct {
	MessageType   string `json:"message_type"` // "summary"
	SnapshotID    string `json:"snapshot_id"`
	FilesRestored uint64 `json:"files_restored"`
	BytesRestored uint64 `json:"bytes_restored"`
	FilesSkipped  uint64 `json:"files_skipped"`
	Errors        int    `json:"errors"`
	Verified      bool   `json:"verified"`
	// Safe is what restore --safe left out; absent without --safe.
	Safe *restoreSafeJSON `json:"safe,omitempty"`
}

// restoreSafeJSON counts what restore --safe left out (restorer.SafeCounts).
type restoreSafeJSON struct {
	DevicesSkipped uint64 `json:"devices_skipped"`
	SetIDCleared   uint64 `json:"setid_cleared"`
	XattrsDropped  uint64 `json:"xattrs_dropped"`
	FlagsCleared   uint64 `json:"flags_cleared"`
	OwnersChanged  uint64 `json:"owners_changed"`
}

// checkStatusJSON is a progress line of check: "status" every second
// while it runs, "phase" once as each phase ends, with its final counts.
// Counts of phases not reached yet are 0.
type checkStatusJSON struct {
	MessageType     string  `json:"message_type"` // "status" or "phase"
	Phase           string  `json:"phase"`        // "load_index", "list_packs", "walk_snapshots", "read_data"
	SecondsElapsed  float64 `json:"seconds_elapsed"`
	PercentDone     float64 `json:"percent_done"` // 0..1, of the phase; 0 for list_packs, which has no total
	IndexFilesDone  uint64  `json:"index_files_done"`
	IndexFilesTotal uint64  `json:"index_files_total"`
	PacksListed     uint64  `json:"packs_listed"`
	SnapshotsDone   uint64  `json:"snapshots_done"`
	SnapshotsTotal  uint64  `json:"snapshots_total"`
	TreesDone       uint64  `json:"trees_done"`
	PacksReadDone   uint64  `json:"packs_read_done"`
	PacksReadTotal  uint64  `json:"packs_read_total"`
	BytesReadDone   uint64  `json:"bytes_read_done"`
	BytesReadTotal  uint64  `json:"bytes_read_total"`
}

// checkSummaryJSON is check's result line: check.Result's fields beside
// the message type.
type checkSummaryJSON struct {
	MessageType string `json:"message_type"` // "summary"
	*check.Result
}

// diffChangeJSON is one changed path of diff.
type diffChangeJSON struct {
	MessageType string `json:"message_type"` // "change"
	snapdiff.Change
}

// diffStatsJSON is diff's last line.
type diffStatsJSON struct {
	MessageType    string `json:"message_type"` // "statistics"
	SourceSnapshot string `json:"source_snapshot"`
	TargetSnapshot string `json:"target_snapshot"`
	*snapdiff.Stats
}

// forgetByIDJSON is forget's document when snapshots are given by ID.
type forgetByIDJSON struct {
	Remove []forgetSnapJSON `json:"remove"`
	DryRun bool             `json:"dry_run"`
}

// initJSON is init's document.
type initJSON struct {
	ID       string `json:"id"`
	Location string `json:"location"`
	Cipher   string `json:"cipher"`
	// SharedKeysFrom is the repository whose chunker and blob-ID keys
	// init --copy-chunker-params took.
	SharedKeysFrom string `json:"shared_keys_from,omitempty"`
}

// keyRotateJSON is key rotate's document.
type keyRotateJSON struct {
	Term    uint32    `json:"term"`
	Created time.Time `json:"created"`
}

// keySlotJSON is one entry of key list's array.
type keySlotJSON struct {
	ID      string    `json:"id"`
	Current bool      `json:"current"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
	Host    string    `json:"host"`
	User    string    `json:"user"`
	// Escrow slots only: the public key they are sealed to and its
	// fingerprint.
	EscrowPublicKey   string `json:"escrow_public_key,omitempty"`
	EscrowFingerprint string `json:"escrow_fingerprint,omitempty"`
}

// listBlobJSON is one entry of list blobs' array.
type listBlobJSON struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Size uint32 `json:"size"` // plaintext bytes
	Pack string `json:"pack"`
}

// listFileJSON is one entry of list's array for the other types.
type listFileJSON struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// lsNodeJSON is one entry of ls's array.
type lsNodeJSON struct {
	Path  string    `json:"path"`
	Type  string    `json:"type"`
	Mode  uint32    `json:"mode"`
	Size  int64     `json:"size"`
	UID   uint32    `json:"uid"`
	GID   uint32    `json:"gid"`
	User  string    `json:"user"`
	Group string    `json:"group"`
	MTime time.Time `json:"mtime"`
}

// copyStatusJSON is a progress line of copy, printed every second.
type copyStatusJSON struct {
	MessageType    string  `json:"message_type"` // "status"
	SecondsElapsed float64 `json:"seconds_elapsed"`
	SnapshotsDone  uint64  `json:"snapshots_done"`
	SnapshotsTotal uint64  `json:"snapshots_total"`
	TreesVisited   uint64  `json:"trees_visited"`
	BlobsRead      uint64  `json:"blobs_read"`
	BytesRead      uint64  `json:"bytes_read"`
	BlobsNew       uint64  `json:"blobs_new"`
	BytesAdded     uint64  `json:"bytes_added"`
}

// copySnapshotJSON is copy's line for one source snapshot: copied, or
// skipped because the target holds it already.
type copySnapshotJSON struct {
	MessageType string `json:"message_type"` // "snapshot"
	Source      string `json:"source"`
	Target      string `json:"target"`
	Skipped     bool   `json:"skipped"`
}

// copySummaryJSON is the last line of a copy that finished.
type copySummaryJSON struct {
	MessageType      string `json:"message_type"` // "summary"
	SnapshotsCopied  int    `json:"snapshots_copied"`
	SnapshotsSkipped int    `json:"snapshots_skipped"`
	Rechunked        bool   `json:"rechunked"`
	BlobsNew         uint64 `json:"blobs_new"`
	BytesAdded       uint64 `json:"bytes_added"`
	BytesStored      uint64 `json:"bytes_stored"`
	Packs            uint64 `json:"packs"`
}

// snapshotJSON is one entry of snapshots' array.
type snapshotJSON struct {
	ID       string   `json:"id"`
	ShortID  string   `json:"short_id"`
	Time     string   `json:"time"`
	Hostname string   `json:"hostname"`
	Username string   `json:"username,omitempty"`
	Paths    []string `json:"paths"`
	Tags     []string `json:"tags,omitempty"`
	Tree     string   `json:"tree"`
	Parent   string   `json:"parent,omitempty"`
	Original string   `json:"original,omitempty"`
}

// statsJSON is stats' document.
type statsJSON struct {
	Mode string `json:"mode"`
	*maintenance.RepoStats
}

// versionJSON is version's document.
type versionJSON struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
}

// serverInitJSON is server init's document.
type serverInitJSON struct {
	Dir               string    `json:"dir"`
	CAFingerprint     string    `json:"ca_fingerprint"`
	ServerNames       []string  `json:"server_names"`
	ServerCertExpires time.Time `json:"server_cert_expires"`
	PolicyKeyID       string    `json:"policy_key_id"`
	AdminIdentity     string    `json:"admin_identity,omitempty"` // the first administrator's identity directory
	Storage           string    `json:"storage,omitempty"`        // the S3 location of the objects (--storage)
}

// serverTokenJSON is server token's document.
type serverTokenJSON struct {
	Client  string    `json:"client"`
	Token   string    `json:"token"`
	Expires time.Time `json:"expires"`
	// Replaces: the client exists and redeeming the token replaces it.
	Replaces bool `json:"replaces"`
}

// findMatchJSON is one entry found, in find's JSON document.
type findMatchJSON struct {
	Path        string    `json:"path"`
	Type        string    `json:"type"`
	Permissions string    `json:"permissions"`
	Mode        uint32    `json:"mode"`
	Size        int64     `json:"size"`
	UID         uint32    `json:"uid"`
	GID         uint32    `json:"gid"`
	User        string    `json:"user,omitempty"`
	Group       string    `json:"group,omitempty"`
	MTime       time.Time `json:"mtime"`
	ATime       time.Time `json:"atime"`
	CTime       time.Time `json:"ctime"`
}

// findSnapshotJSON is the entries found in one snapshot.
type findSnapshotJSON struct {
	Snapshot string          `json:"snapshot"`
	Hits     int             `json:"hits"`
	Matches  []findMatchJSON `json:"matches"`
}

// tagReplacementJSON is one snapshot tag rewrote: its old and new IDs.
type tagReplacementJSON struct {
	OldID string `json:"old_id"`
	NewID string `json:"new_id"`
}

// tagJSON is tag's document.
type tagJSON struct {
	ChangedSnapshots int                  `json:"changed_snapshots"`
	Replaced         []tagReplacementJSON `json:"replaced"`
}

// forgetSnapJSON is a snapshot in forget's JSON output.
type forgetSnapJSON struct {
	ID       string   `json:"id"`
	ShortID  string   `json:"short_id"`
	Time     string   `json:"time"`
	Hostname string   `json:"hostname"`
	Paths    []string `json:"paths"`
	Tags     []string `json:"tags,omitempty"`
}

// forgetGroupJSON is one group of forget's array (with a policy).
type forgetGroupJSON struct {
	GroupKey maintenance.GroupKey `json:"group_key"`
	Keep     []forgetSnapJSON     `json:"keep"`
	Remove   []forgetSnapJSON     `json:"remove"`
	Reasons  []forgetReasonJSON   `json:"reasons"`
}

// forgetReasonJSON is why forget keeps a snapshot: the rules it matches.
type forgetReasonJSON struct {
	Snapshot forgetSnapJSON `json:"snapshot"`
	Matches  []string       `json:"matches"`
}

// verboseStatusJSON is backup's JSON line for one file with -v.
type verboseStatusJSON struct {
	MessageType string `json:"message_type"` // "verbose_status"
	Action      string `json:"action"`       // "new", "modified" or "unchanged"
	Item        string `json:"item"`
}

// clientJSON is one client in the JSON output of server clients and client.
type clientJSON struct {
	Name         string     `json:"name"`
	CertSerial   string     `json:"cert_serial"`
	CertNotAfter time.Time  `json:"cert_not_after"`
	Created      time.Time  `json:"created"`
	LastContact  *time.Time `json:"last_contact"`
	AllowDelete  bool       `json:"allow_delete"`
	QuotaBytes   int64      `json:"quota_bytes"`
	MaxObjects   int64      `json:"max_objects"` // 0: the server's default
	MaxRepos     int64      `json:"max_repos"`   // 0: the server's default
	Revoked      bool       `json:"revoked"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
}

// serverScrubDamageJSON is one damaged object server scrub found.
type serverScrubDamageJSON struct {
	Path   string `json:"path"`
	Client string `json:"client"`
	Repo   string `json:"repo"`
	Object string `json:"object"`
	Reason string `json:"reason"`
}

// serverTrashEntryJSON is one object of server trash list's and
// restore's arrays.
type serverTrashEntryJSON struct {
	Client  string    `json:"client"`
	Repo    string    `json:"repo"`
	Object  string    `json:"object"`
	Deleted time.Time `json:"deleted"`
	Size    int64     `json:"size"`
}

// serverScrubJSON is server scrub's document.
type serverScrubJSON struct {
	Objects int                     `json:"objects"`
	Bytes   int64                   `json:"bytes"`
	Damaged []serverScrubDamageJSON `json:"damaged"`
	Stray   []string                `json:"stray"`
	// UsageCounted is how many clients' usage scrub counted and recorded.
	UsageCounted int `json:"usage_counted"`
}

// jsonArray writes a JSON array one element at a time, so that a long
// listing is one document without being held in memory.
type jsonArray struct {
	w   io.Writer
	n   int
	err error
}

func (a *jsonArray) add(v any) error {
	if a.err != nil {
		return a.err
	}
	sep := ",\n"
	if a.n == 0 {
		sep = "[\n"
	}
	b, err := json.Marshal(v)
	if err == nil {
		_, err = io.WriteString(a.w, sep+"  "+string(b))
	}
	a.n++
	a.err = err
	return err
}

func (a *jsonArray) close() error {
	if a.err != nil {
		return a.err
	}
	if a.n == 0 {
		_, a.err = io.WriteString(a.w, "[]\n")
		return a.err
	}
	_, a.err = io.WriteString(a.w, "\n]\n")
	return a.err
}

// replicaTargetJSON is one target of server replicate list.
type replicaTargetJSON struct {
	Name               string     `json:"name"`
	Location           string     `json:"location"`
	Clients            []string   `json:"clients"`
	Schedule           string     `json:"schedule"`
	Limit              string     `json:"limit"`
	Window             string     `json:"window"`
	KeepDeletedSeconds int64      `json:"keep_deleted_seconds"`
	LockDays           int        `json:"lock_days"`
	Parallel           int        `json:"parallel"`
	AlertLagSeconds    int64      `json:"alert_lag_seconds"`
	Created            time.Time  `json:"created"`
	LastStart          *time.Time `json:"last_start"`
	LastSuccess        *time.Time `json:"last_success"`
	LastError          string     `json:"last_error"`
	LastErrorAt        *time.Time `json:"last_error_at"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toReplicaTargetJSON(t serverdb.ReplicaTarget) replicaTargetJSON {
	clients := t.Clients
	if clients == nil {
		clients = []string{}
	}
	return replicaTargetJSON{Name: t.Name, Location: t.Location, Clients: clients, Schedule: t.Schedule, Limit: t.RateLimit,
		Window: t.Window, KeepDeletedSeconds: int64(t.KeepDeleted / time.Second), LockDays: t.LockDays, Parallel: parallelOf(t.Parallel),
		AlertLagSeconds: int64(t.AlertLag / time.Second), Created: t.Created,
		LastStart: optTime(t.LastStart), LastSuccess: optTime(t.LastSuccess), LastError: t.LastError, LastErrorAt: optTime(t.LastErrorAt)}
}

// replicaStatusJSON is one target of server replicate status.
type replicaStatusJSON struct {
	replicaTargetJSON
	LagSeconds      int64      `json:"lag_seconds"`
	OldestPending   *time.Time `json:"oldest_pending"`
	PendingObjects  int64      `json:"pending_objects"`
	PendingBytes    int64      `json:"pending_bytes"`
	Replicated      int64      `json:"replicated_objects"`
	ReplicatedBytes int64      `json:"replicated_bytes"`
	KeptDeleted     int64      `json:"kept_deleted_objects"`
	LockedDeleted   int64      `json:"locked_deleted_objects"`
	HeldRecords     int64      `json:"held_deletion_records"`
	EarliestLockEnd *time.Time `json:"earliest_lock_end"`
}

func toReplicaStatusJSON(s replicate.Status) replicaStatusJSON {
	return replicaStatusJSON{replicaTargetJSON: toReplicaTargetJSON(s.ReplicaTarget), LagSeconds: int64(s.Lag / time.Second),
		OldestPending: optTime(s.OldestPending), PendingObjects: s.PendingObjects, PendingBytes: s.PendingBytes,
		Replicated: s.Replicated, ReplicatedBytes: s.ReplicatedBytes, KeptDeleted: s.KeptDeleted, LockedDeleted: s.LockedDeleted, HeldRecords: s.HeldRecords,
		EarliestLockEnd: optTime(s.EarliestRetention)}
}

// replicaRunJSON is server replicate run's report.
type replicaRunJSON struct {
	Target     string            `json:"target"`
	Repos      int               `json:"repos"`
	Sent       int64             `json:"sent_objects"`
	SentBytes  int64             `json:"sent_bytes"`
	Adopted    int64             `json:"adopted_objects"`
	Verified   int64             `json:"read_back_objects"`
	Deleted    int64             `json:"deleted_objects"`
	Kept       int64             `json:"kept_deleted_objects"`
	Held       int64             `json:"held_deletion_records"`
	Locked     int64             `json:"locked_deleted_objects"`
	Extended   int64             `json:"extended_locks"`
	Failed     []replicaFailJSON `json:"failed"`
	DurationMS int64             `json:"duration_ms"`
}

// replicaFailJSON is one object a pass could not bring over.
type replicaFailJSON struct {
	Client string `json:"client"`
	Repo   string `json:"repo"`
	Object string `json:"object"`
	Error  string `json:"error"`
}

func toReplicaRunJSON(r *replicate.Report) replicaRunJSON {
	j := replicaRunJSON{Target: r.Target, Repos: r.Repos, Sent: r.Sent, SentBytes: r.SentBytes, Adopted: r.Adopted, Verified: r.Verified,
		Deleted: r.Deleted, Kept: r.Kept, Held: r.Held, Locked: r.Locked, Extended: r.Extended, Failed: []replicaFailJSON{}, DurationMS: r.Duration.Milliseconds()}
	for _, f := range r.Failed {
		j.Failed = append(j.Failed, replicaFailJSON{Client: f.Client, Repo: f.Repo, Object: f.Object, Error: f.Err.Error()})
	}
	return j
}

// seedJSON is server seed export's and import's report.
type seedJSON struct {
	Objects     int64  `json:"objects"`
	Bytes       int64  `json:"bytes"`
	Written     int64  `json:"written"`
	PublicKey   string `json:"public_key,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
}

// The fleet commands print the fleet API's own shapes (internal/fleet/api),
// documented in docs/json.md.
type (
	fleetWhoAmIJSON    = api.WhoAmI
	fleetUserTokenJSON = api.UserToken
	fleetUserJSON      = api.User
	fleetGroupJSON     = api.Group
	fleetAlertJSON     = api.AlertChannel
	fleetAlertTestJSON = api.AlertTestResult
	fleetPolicyJSON    = api.PolicyEntry
	// fleetJobJSON is a job (fleet run-now, restore, cancel; an element
	// of fleet jobs).
	fleetJobJSON = api.JobInfo
	// fleetJobsJSON is fleet jobs' list.
	fleetJobsJSON = []api.JobInfo
	// fleetAuditJSON is fleet audit's list, oldest first.
	fleetAuditJSON = []api.AuditEntry
)

// fleetHostJSON is one host of fleet status --json: the API's
// api.HostStatus, with last_seen and next_run always present (null when
// the host was never seen or has no schedule), so every object has at
// least client, online, last_seen, last_backup, next_run and rpo.
type fleetHostJSON struct {
	api.HostStatus
	LastSeen *time.Time `json:"last_seen"`
	NextRun  *time.Time `json:"next_run"`
}

func newFleetHostJSON(h api.HostStatus) fleetHostJSON {
	out := fleetHostJSON{HostStatus: h}
	if !h.LastSeen.IsZero() {
		out.LastSeen = &h.LastSeen
	}
	if !h.NextRun.IsZero() {
		out.NextRun = &h.NextRun
	}
	return out
}

// fleetRemovedJSON is fleet user remove's --json output.
type fleetRemovedJSON struct {
	Name    string `json:"name"`
	Removed bool   `json:"removed"`
}
