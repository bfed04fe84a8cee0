package telemetry

import (
	"math"
	"strconv"
	"time"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
)

// Reason says how a run ended.
type Reason string

// Reasons of the run report.
const (
	ReasonExited   Reason = "exited"   // the child exited by itself
	ReasonSignaled Reason = "signaled" // the child died of a signal no policy sent
	ReasonPolicy   Reason = "policy"   // a policy stopped the child
	ReasonError    Reason = "error"    // prism-run failed, or could not start the child
	ReasonOOM      Reason = "oom"      // the kernel OOM-killed the child in its cgroup (exit 137)
	// ReasonNotReproducible: --verify-repro ran the command again with
	// the same seed and its result markers differed (exit 65).
	ReasonNotReproducible Reason = "not-reproducible"
)

// Reasons lists every Reason.
func Reasons() []Reason {
	return []Reason{ReasonExited, ReasonSignaled, ReasonPolicy, ReasonError, ReasonOOM, ReasonNotReproducible}
}

// Report is the JSON run report (--report): what the command line asked
// for, what was enforced, and what the run came to. The supervisor's run
// fills it as it goes; it is written whole, atomically, on every exit path
// (Write), also when prism-run fails before the child starts.
type Report struct {
	Version  string   `json:"prism_run_version"`
	Command  []string `json:"command"`
	Mission  string   `json:"mission,omitempty"`
	Policies []string `json:"policies,omitempty"`
	Seed     uint64   `json:"seed"`
	// Attempts counts the children started (1 without restarts).
	Attempts int `json:"attempts"`
	// AttemptLog is every attempt of the job, those of earlier
	// invocations on the same state included, oldest first.
	AttemptLog []Attempt `json:"attempt_log,omitempty"`
	// Recovery is what restarts, failover and retention did (absent
	// when the run had one attempt and deleted nothing).
	Recovery *Recovery `json:"recovery,omitempty"`
	// Enforced is the plan the run was held to, item by item, exactly as
	// --dry-run prints it (absent when no child started).
	Enforced []Enforced `json:"enforced,omitempty"`
	// NotEnforced are the settings asked for that this host could not
	// give (a strict run refuses them; otherwise each was one warning).
	NotEnforced []Gap `json:"not_enforced,omitempty"`

	RunID string    `json:"run_id"`
	PID   int       `json:"pid,omitempty"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// DurationSeconds is End less Start.
	DurationSeconds float64 `json:"duration_s"`
	// Host is what the run found of the machine.
	Host *HostFacts `json:"host,omitempty"`
	// Slurm is the Slurm job the run ran in (absent outside Slurm).
	Slurm   *SlurmFacts `json:"slurm,omitempty"`
	Exit    int         `json:"exit_code"`
	Reason  Reason      `json:"reason"`
	Signal  string      `json:"signal,omitempty"` // the signal the child died of
	Rule    string      `json:"rule,omitempty"`   // the rule that stopped the child
	Message string      `json:"message"`

	// Escalated: the child outlived SIGTERM by kill-after and got SIGKILL.
	Escalated bool `json:"escalated,omitempty"`
	// Killed: prism-run sent the child SIGKILL (an escalation, a kill
	// action, a second terminating signal).
	Killed bool `json:"killed,omitempty"`
	// Leftovers counts the descendants still running when the main child
	// ended, all of which were killed.
	Leftovers int `json:"leftovers_killed,omitempty"`

	// Peaks are the highest values the probes saw (memory_bytes,
	// gpu_memory_bytes, cpu_ratio, gpu_util, ...).
	Peaks map[string]Float `json:"peaks,omitempty"`

	Checkpoints      []Checkpoint          `json:"checkpoints"`
	Markers          map[string]MarkerStat `json:"markers"`
	MalformedMarkers int                   `json:"malformed_markers"`
	// FirstMalformed is why the first malformed marker line was, and its start.
	FirstMalformed string `json:"first_malformed_marker,omitempty"`
	// IdleRules are the rules whose metric never appeared in the run.
	IdleRules []string `json:"idle_rules,omitempty"`
	// MarkerNamesDropped counts the observations of names past the first
	// 1024, not kept in Markers.
	MarkerNamesDropped int `json:"marker_names_dropped,omitempty"`
	// Decisions are the rules' decisions, the first MaxDecisions and
	// every one that ended the run (AddDecision).
	Decisions []policies.Decision `json:"decisions"`
	// DecisionsDropped counts those past MaxDecisions, not kept.
	DecisionsDropped int `json:"decisions_dropped,omitempty"`
	// ViolationsDropped counts the decisions the violations log
	// (--violations) could not take: its queue was full, or its writer
	// had not finished when prism-run had to exit.
	ViolationsDropped int64 `json:"violations_dropped,omitempty"`
	// Alerts counts what the alert webhooks (--alert-webhook) got:
	// delivered, given up on after retries, dropped (a full queue, or
	// still waiting at the exit); one per alert and URL.
	Alerts *AlertCounts `json:"alerts,omitempty"`
	// HooksDropped and HooksFailed count the violations --on-violation's
	// program did not get (its queue was full, or the run ended first),
	// and its runs that failed (a non-zero exit, killed at its timeout).
	HooksDropped int64 `json:"on_violation_dropped,omitempty"`
	HooksFailed  int64 `json:"on_violation_failed,omitempty"`
	// RecordingDropped counts the observations the recording (--record)
	// could not take.
	RecordingDropped int64 `json:"recording_dropped,omitempty"`
	// Forwarded are the signals sent to prism-run, in order: forwarded to
	// the child's group, or acted on (SIGUSR1 a checkpoint request, a
	// --on-usr1/--on-term checkpoint-stop, SIGTSTP job control).
	Forwarded []string `json:"forwarded_signals,omitempty"`

	Cgroup *CgroupReport `json:"cgroup,omitempty"`

	CheckpointDir string `json:"checkpoint_dir,omitempty"`
	ControlFile   string `json:"control_file,omitempty"`
}

// MaxDecisions bounds the decisions a report keeps: a rule that trips
// on every line of a days-long run must not grow prism-run's memory and
// its report without end.
const MaxDecisions = 1000

// AddDecision records d: kept while fewer than MaxDecisions are, and
// always when its action ends the run (the verdict's reason is never
// dropped); otherwise counted in DecisionsDropped.
func (r *Report) AddDecision(d policies.Decision) {
	if len(r.Decisions) >= MaxDecisions && !d.Action.Ends() {
		r.DecisionsDropped++
		return
	}
	r.Decisions = append(r.Decisions, d)
}

// NewReport returns an empty report of a run that has not ended: reason
// error until the run says otherwise, and empty (not null) lists.
func NewReport(runID string, start time.Time) *Report {
	return &Report{
		RunID:       runID,
		Start:       start,
		Reason:      ReasonError,
		Markers:     map[string]MarkerStat{},
		Peaks:       map[string]Float{},
		Checkpoints: []Checkpoint{},
		Decisions:   []policies.Decision{},
	}
}

// Enforced is one item of what a run is held to: an rlimit, a cgroup
// file, an isolation, a rule.
type Enforced struct {
	What  string `json:"what"` // rlimit | cgroup | isolation | user | gpus | rule | timing
	Name  string `json:"name"`
	Value string `json:"value"`
}

// String is the item as --dry-run prints it.
func (e Enforced) String() string { return e.What + " " + e.Name + " = " + e.Value }

// Gap is a setting that could not be enforced, and why.
type Gap struct {
	Setting string `json:"setting"`
	Why     string `json:"why"`
}

// Checkpoint is one checkpoint the child acknowledged with a `checkpoint`
// marker.
type Checkpoint struct {
	Path string    `json:"path"`
	Time time.Time `json:"time"`
	// Rule is the rule whose request this acknowledged ("" when the child
	// checkpointed unasked).
	Rule string `json:"rule,omitempty"`
	// Attempt is the PRISM_RESTART_COUNT of the child that wrote it.
	Attempt int `json:"attempt"`
	// Abandoned: a rollback went back past it (it holds the bad state):
	// never resumed from, the first to go at retention.
	Abandoned bool `json:"abandoned,omitempty"`
	// Deleted: retention removed it (or it was gone when retention came
	// to it).
	Deleted bool `json:"deleted,omitempty"`
	// Kept: retention never deletes it: not an entry of the checkpoint
	// folder itself (nested, a dot name, outside it), or prism-run's own
	// state.
	Kept bool `json:"kept,omitempty"`
}

// Attempt is one child of a job: a start of the command (or of the
// fallback, or of the reproducibility check) and how it ended.
type Attempt struct {
	N     int    `json:"n"`      // its PRISM_RESTART_COUNT
	RunID string `json:"run_id"` // the invocation that started it
	// Role is "" for the command, "fallback" for the failover command,
	// "verify" for --verify-repro's second run.
	Role    string    `json:"role,omitempty"`
	Command []string  `json:"command,omitempty"` // when not the run's command
	PID     int       `json:"pid,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"` // zero: it never ended in this record
	// Exit is the code prism-run gave the attempt's end (the run's code had
	// it been the last: 75 or 124 after a policy stop, the child's own
	// otherwise); absent when unknown.
	Exit   *int   `json:"exit,omitempty"`
	Reason Reason `json:"reason,omitempty"`
	Signal string `json:"signal,omitempty"`
	Rule   string `json:"rule,omitempty"` // the rule that ended it
	// Resume is the checkpoint it was given (PRISM_RESUME).
	Resume string `json:"resume,omitempty"`
	// BackoffSeconds is how long prism-run waited before starting it.
	BackoffSeconds float64 `json:"backoff_s,omitempty"`
	// Counted: its end used the failure budget; Preempted: it was
	// stopped with its work saved, which does not.
	Counted   bool `json:"counted,omitempty"`
	Preempted bool `json:"preempted,omitempty"`
	// Next is what followed its end: why the next attempt started, or
	// why the run ended.
	Next string `json:"next,omitempty"`
}

// HostFacts are the machine a run ran on, as the run found it.
type HostFacts struct {
	Name string `json:"name"`
	// CgroupMode is the host's cgroup hierarchy: v1, v2 or none.
	CgroupMode string `json:"cgroup_mode"`
	// NVML says whether GPU sampling ran: "used", "not needed" (no rule
	// watches a GPU metric, or --gpus none), or why it could not.
	NVML string `json:"nvml"`
	// GPUs are the GPU indices sampled (absent: every GPU, or none).
	GPUs []int `json:"gpus,omitempty"`
}

// AlertCounts is what became of the alerts.
type AlertCounts struct {
	Sent    int64 `json:"sent"`
	Failed  int64 `json:"failed"`
	Dropped int64 `json:"dropped"`
}

// Recovery is what the run's recovery did. Restarts are this
// invocation's; failures and preemptions are the whole job's (earlier
// invocations on the same state included).
type Recovery struct {
	Restarts int `json:"restarts"` // children started again after the first (this invocation; the fallback is not one)
	// Failures counts the ends that used the failure budget, over the
	// whole job (earlier invocations included).
	Failures    int `json:"failures"`
	Preemptions int `json:"preemptions"`
	// Verdict is set when recovery ended the run: "restarts exhausted:
	// ...", "crash loop: ...", "not reproducible: ...".
	Verdict  string `json:"verdict,omitempty"`
	Failover bool   `json:"failover,omitempty"` // the fallback command ran
	// StateFile is the state a next invocation resumes from.
	StateFile string `json:"state_file,omitempty"`
	// Deleted are the checkpoints retention removed (keep); Refused those
	// it would not (outside the checkpoint folder).
	Deleted []string `json:"deleted,omitempty"`
	Refused []string `json:"refused,omitempty"`
}

// MarkerStat is what was seen of one marker name.
type MarkerStat struct {
	Count int       `json:"count"`
	Last  Float     `json:"last"`
	Text  string    `json:"text,omitempty"`
	Time  time.Time `json:"time"`
}

// Float is a float64 that survives JSON: encoding/json refuses NaN and
// ±Inf, and a diverging loss is exactly what a report must be able to show.
type Float float64

// MarshalJSON writes NaN and ±Inf as the strings "NaN", "+Inf", "-Inf".
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte(strconv.Quote(strconv.FormatFloat(v, 'g', -1, 64))), nil
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e18 {
		return strconv.AppendFloat(nil, v, 'f', -1, 64), nil // bytes read as bytes, not 2.178e+08
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// CgroupReport is what the run's cgroup enforced and measured.
type CgroupReport struct {
	Mode        string `json:"mode"`
	Path        string `json:"path"`
	MemoryLimit int64  `json:"memory_limit_bytes,omitempty"`
	MemoryPeak  uint64 `json:"memory_peak_bytes"`
	OOMKills    uint64 `json:"oom_kills"`
	PidsLimit   int64  `json:"pids_limit,omitempty"`
	// ForksRefused counts the forks the pids limit refused.
	ForksRefused uint64 `json:"forks_refused"`
	// OOMVictims are the processes killed, as the kernel log names them:
	// the first few of those it names (it rate-limits the line, 10 per
	// 5 s); empty when the log cannot be read (not root).
	OOMVictims []limits.OOMKill `json:"oom_victims,omitempty"`
}

// Write writes the report to path atomically (WriteJSONAtomic). An empty
// path writes nothing.
func (r *Report) Write(path string) error {
	if path == "" {
		return nil
	}
	return WriteJSONAtomic(path, r)
}
