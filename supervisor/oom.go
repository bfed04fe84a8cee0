package supervisor

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/telemetry"
)

// oomReportEvery bounds the OOM violation records: a job whose workers
// are OOM-killed in a loop (stress-ng's --vm restarts them ten times a
// second) gets one record at the first kill and then at most one per
// interval, counting the kills since the last, instead of a flood.
const oomReportEvery = 10 * time.Second

// maxOOMVictims bounds the victims a report lists: a job whose workers
// die in a loop would otherwise grow it without end (oom_kills counts all).
const maxOOMVictims = 32

// oomWatch is the run's OOM accounting: the memory peak and the kernel's
// OOM kills in the run's cgroup, which processes they hit (from the
// kernel log), and the rate-limited violation records.
type oomWatch struct {
	cg      limits.Cgroup
	killLog KillLog // nil: kills are counted, not named
	rep     *telemetry.CgroupReport
	log     zerolog.Logger

	base, seen uint64    // the cgroup's oom_kill count at the start, and last read
	logged     uint64    // the count the last record covered
	named      int       // the victims named in records so far
	loggedAt   time.Time // when that record was made
	closed     bool      // the cgroup has been removed

	// The count and the victims named when the main child was last seen
	// alive (markLive): kills after that may have been its.
	liveCount uint64
	liveNamed int
}

func newOOMWatch(cg limits.Cgroup, kl KillLog, rep *telemetry.CgroupReport, log zerolog.Logger) *oomWatch {
	w := &oomWatch{cg: cg, killLog: kl, rep: rep, log: log}
	if u, err := cg.Usage(); err == nil {
		w.base, w.seen, w.liveCount = u.OOMKills, u.OOMKills, u.OOMKills
	}
	return w
}

// poll reads the cgroup at time now. It returns the running kill count as
// an observation for the rules when it rose (nil otherwise), and a
// violation record when one is due; final flushes the kills a
// rate-limited record has not covered yet.
func (w *oomWatch) poll(now time.Time, final bool) (*policies.Observation, *policies.Decision) {
	u, err := w.cg.Usage()
	if err != nil {
		return nil, nil
	}
	r := w.rep
	r.MemoryPeak = max(r.MemoryPeak, u.MemoryPeak, u.MemoryCurrent)
	var obs *policies.Observation
	if u.OOMKills > w.seen {
		w.seen = u.OOMKills
		w.readVictims()
		r.OOMKills = u.OOMKills - w.base
		obs = &policies.Observation{Time: now, Source: policies.SourceProbe, Name: policies.NameOOMKills, Value: float64(r.OOMKills)}
	}
	pending := r.OOMKills - w.logged
	if pending == 0 || !(final || w.logged == 0 || now.Sub(w.loggedAt) >= oomReportEvery) {
		return obs, nil
	}
	w.logged, w.loggedAt = r.OOMKills, now
	d := &policies.Decision{Time: now, Rule: "oom", Kind: "oom", Severity: policies.SeverityHigh,
		Action: policies.ActionLog, Reason: w.reason(pending)}
	w.named = len(r.OOMVictims)
	return obs, d
}

func (w *oomWatch) reason(pending uint64) string {
	r := w.rep
	reason := fmt.Sprintf("the kernel OOM-killed %d process(es) in the run's cgroup (limit %d bytes, peak %d bytes)",
		pending, r.MemoryLimit, r.MemoryPeak)
	if pending != r.OOMKills {
		reason += fmt.Sprintf("; %d since the run began", r.OOMKills)
	}
	switch named := r.OOMVictims[w.named:]; {
	case len(named) > 0:
		reason += victimList(named)
	case w.killLog != nil && len(r.OOMVictims) < maxOOMVictims:
		reason += "; the kernel log named none (it rate-limits that line, host-wide)"
	}
	return reason
}

// markLive records that the main child was alive after the last poll
// read the count.
func (w *oomWatch) markLive() { w.liveCount, w.liveNamed = w.seen, len(w.rep.OOMVictims) }

// blames says whether the evidence points at the kernel's OOM killer for
// the death of pid: the kernel log names it, or the count rose after pid
// was last seen alive and the log (when it can be read) named nobody else
// for those kills. A worker's OOM kill earlier in the run is not
// evidence.
func (w *oomWatch) blames(pid int) bool {
	for _, k := range w.rep.OOMVictims {
		if k.PID == pid {
			return true
		}
	}
	if w.seen <= w.liveCount {
		return false
	}
	return w.killLog == nil || len(w.rep.OOMVictims) == w.liveNamed
}

// readVictims takes the run's OOM kills from the kernel log.
func (w *oomWatch) readVictims() {
	if w.killLog == nil {
		return
	}
	r := w.rep
	name := path.Base(r.Path)
	for _, k := range w.killLog.OOMKills() {
		if k.InCgroup(name) && len(r.OOMVictims) < maxOOMVictims {
			r.OOMVictims = append(r.OOMVictims, k)
		}
	}
}

// victimList names up to three victims for a log line. The kernel
// rate-limits the summary line that names a kill's cgroup (mm/oom_kill.c:
// oom_rs, 10 per 5 s), so in a storm fewer are named than were killed.
func victimList(v []limits.OOMKill) string {
	if len(v) == 0 {
		return ""
	}
	parts := make([]string, 0, 3)
	for _, k := range v[:min(3, len(v))] {
		parts = append(parts, fmt.Sprintf("pid %d (%s)", k.PID, k.Task))
	}
	more := ""
	if len(v) > 3 {
		more = fmt.Sprintf(" and %d more", len(v)-3)
	}
	return "; the kernel log names " + strings.Join(parts, ", ") + more
}

// pollCgroup reads the run's cgroup: the running OOM kill count reaches
// the rules as oom_kills while the child lives, and each kill is a
// violation record whether or not the main child survives it.
func (a *attempt) pollCgroup(final bool) {
	w := a.r.oom
	if w == nil {
		return
	}
	obs, d := w.poll(a.r.cfg.Clock.Now(), final)
	// Read after the count: alive now means alive when it was read.
	if !final && !procfs.IsDead(a.r.cfg.ProcRoot, a.pid) {
		w.markLive()
	}
	if obs != nil && !a.exited {
		a.observe(*obs)
	}
	if d != nil {
		a.r.rep.Decisions = append(a.r.rep.Decisions, *d)
		r := w.rep
		a.r.log.Error().Str("rule", "oom").Uint64("oom_kills", r.OOMKills).Uint64("memory_peak_bytes", r.MemoryPeak).
			Int64("memory_limit_bytes", r.MemoryLimit).Msg(d.Reason)
	}
}
