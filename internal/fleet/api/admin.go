package api

import (
	"fmt"
	"time"
)

// Paths of the fleet administration API for jobs and status (users,
// groups and policies have their own). Every call is a person's
// certificate and passes the server's authorization.
const (
	StatusPath  = "/v1/fleet/status"  // GET: []HostStatus
	JobsPath    = "/v1/fleet/jobs"    // GET ?client=C&state=S&limit=N: []JobInfo; GET JobsPath/ID: JobInfo
	RunNowPath  = "/v1/fleet/run-now" // POST RunNow: 201 JobInfo
	RestorePath = "/v1/fleet/restore" // POST RestoreOrder: 201 JobInfo
	// CancelSuffix follows JobsPath/ID: POST cancels the job, 200 JobInfo.
	CancelSuffix = "/cancel"
)

// RPO states of a host.
const (
	RPOOk     = "ok"     // a backup succeeded within the schedule's cadence
	RPOLate   = "late"   // past its cadence, still within the grace
	RPOMissed = "missed" // no success within cadence + grace
	RPONone   = "none"   // the host has no policy with a schedule
)

// JobBrief is a job's outcome as status shows it.
type JobBrief struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"` // when it ended, or its last change
	State    JobState  `json:"state"`
	Snapshot string    `json:"snapshot,omitempty"`
}

// HostStatus is one host's line of the fleet status.
type HostStatus struct {
	Client   string    `json:"client"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	// LastBackup is the newest backup that ended, nil if none.
	LastBackup *JobBrief `json:"last_backup"`
	// LastSuccess is the newest backup that succeeded (or ended with a
	// warning), nil if none.
	LastSuccess *JobBrief `json:"last_success"`
	// NextRun is the earliest next scheduled backup of the host's
	// repositories, computed on the server's clock in UTC; zero without a
	// schedule.
	NextRun time.Time `json:"next_run,omitzero"`
	// RPO is the worst of the host's repositories: RPOOk, RPOLate,
	// RPOMissed or RPONone.
	RPO string `json:"rpo"`
	// RepositoryBytes is what the host stores on this server (as charged
	// against its quota), nil when the server has not counted it yet.
	RepositoryBytes *int64    `json:"repository_bytes"`
	LastCheck       *JobBrief `json:"last_check"`
	AgentVersion    string    `json:"agent_version,omitempty"`
	// AgentOutdated: the agent's version is older than the server's.
	AgentOutdated bool `json:"agent_outdated"`
	// PolicyGeneration is the generation of the host's current policy, 0
	// for none.
	PolicyGeneration uint64 `json:"policy_generation"`
	Revoked          bool   `json:"revoked"`
	// ReportsDropped counts the reports the host's agent dropped from its
	// full queue.
	ReportsDropped int64 `json:"reports_dropped"`
}

// JobInfo is a job as the administration API shows it.
type JobInfo struct {
	ID         string    `json:"id"`
	Client     string    `json:"client"`
	Kind       JobKind   `json:"kind"`
	Repository string    `json:"repository"`
	State      JobState  `json:"state"`
	Scheduled  bool      `json:"scheduled"`
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
	Start      time.Time `json:"start,omitzero"`
	End        time.Time `json:"end,omitzero"`
	Stats      *Stats    `json:"stats,omitempty"`
	Snapshot   string    `json:"snapshot,omitempty"`
	Error      string    `json:"error,omitempty"`
	Files      []string  `json:"files,omitempty"`
	OrderedBy  string    `json:"ordered_by,omitempty"`
	// CancelRequested: a cancellation was ordered and sent to the agent.
	CancelRequested bool     `json:"cancel_requested,omitempty"`
	Restore         *Restore `json:"restore,omitempty"`
}

// RunNow orders a job of kind backup, check or prune on a host; an empty
// Repository is the policy's first.
type RunNow struct {
	Client     string  `json:"client"`
	Kind       JobKind `json:"kind"`
	Repository string  `json:"repository,omitempty"`
	// ReadDataSubset is a check job's --read-data-subset.
	ReadDataSubset string `json:"read_data_subset,omitempty"`
}

// RestoreOrder orders a restore on a host, written by its agent under the
// policy's restore root.
type RestoreOrder struct {
	Client     string `json:"client"`
	Repository string `json:"repository,omitempty"`
	Restore
}

// DecodeRunNow decodes and checks a run-now request body.
func DecodeRunNow(body []byte) (*RunNow, error) {
	var r RunNow
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	switch r.Kind {
	case KindBackup, KindCheck, KindPrune:
	default:
		return nil, fmt.Errorf("%w: run-now: kind %q (backup, check or prune)", ErrInvalid, r.Kind)
	}
	if r.Repository != "" && !validRepo(r.Repository) {
		return nil, fmt.Errorf("%w: run-now: repository %q", ErrInvalid, r.Repository)
	}
	if r.ReadDataSubset != "" && r.Kind != KindCheck {
		return nil, fmt.Errorf("%w: run-now: read_data_subset is for check jobs", ErrInvalid)
	}
	if err := text("read_data_subset", r.ReadDataSubset, 64); err != nil {
		return nil, err
	}
	return &r, text("client", r.Client, 64)
}

// DecodeRestoreOrder decodes and checks a restore request body; the
// server checks the target against the host's restore root.
func DecodeRestoreOrder(body []byte) (*RestoreOrder, error) {
	var r RestoreOrder
	if err := decodeStrict(body, &r); err != nil {
		return nil, err
	}
	if r.Repository != "" && !validRepo(r.Repository) {
		return nil, fmt.Errorf("%w: restore: repository %q", ErrInvalid, r.Repository)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	if len(r.Include) == 0 {
		r.Include = nil // [] and none are the same order
	}
	return &r, text("client", r.Client, 64)
}
