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
)

// Reasons lists every Reason.
func Reasons() []Reason {
	return []Reason{ReasonExited, ReasonSignaled, ReasonPolicy, ReasonError, ReasonOOM}
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
	// Enforced is the plan the run was held to, item by item, exactly as
	// --dry-run prints it (absent when no child started).
	Enforced []Enforced `json:"enforced,omitempty"`
	// NotEnforced are the settings asked for that this host could not
	// give (a strict run refuses them; otherwise each was one warning).
	NotEnforced []Gap `json:"not_enforced,omitempty"`

	RunID   string    `json:"run_id"`
	PID     int       `json:"pid,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Exit    int       `json:"exit_code"`
	Reason  Reason    `json:"reason"`
	Signal  string    `json:"signal,omitempty"` // the signal the child died of
	Rule    string    `json:"rule,omitempty"`   // the rule that stopped the child
	Message string    `json:"message"`

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
	DecisionsDropped int      `json:"decisions_dropped,omitempty"`
	Forwarded        []string `json:"forwarded_signals,omitempty"`

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
