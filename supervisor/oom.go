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

// recordEvery bounds the violation records of a limit that keeps being
// hit: a job whose workers are OOM-killed in a loop (stress-ng's --vm
// restarts them ten times a second), or that forks against its pids limit,
// gets one record at the first event and then at most one per interval,
// counting the events since the last, instead of a flood.
const recordEvery = 10 * time.Second

// maxOOMVictims bounds the victims a report lists: a job whose workers
// die in a loop would otherwise grow it without end (oom_kills counts all).
const maxOOMVictims = 32

// counter is one of the cgroup's event counters (OOM kills, refused
// forks): the run's share of it, and what its records have covered.
type counter struct {
	base, seen uint64    // the kernel's count at the start, and last read
	logged     uint64    // the run's count the last record covered
	loggedAt   time.Time // when that record was made
}

// read takes the kernel's count and says whether it rose.
func (c *counter) read(v uint64) bool {
	if v <= c.seen {
		return false
	}
	c.seen = v
	return true
}

// run is the count since the run began.
func (c *counter) run() uint64 { return c.seen - c.base }

// due says how many events a record made now would cover, and whether
// one is due: the first at once, then one per recordEvery, and whatever
// is left at the end (final).
func (c *counter) due(now time.Time, final bool) (uint64, bool) {
	pending := c.run() - c.logged
	if pending == 0 || !(final || c.logged == 0 || now.Sub(c.loggedAt) >= recordEvery) {
		return 0, false
	}
	c.logged, c.loggedAt = c.run(), now
	return pending, true
}

// oomWatch is the run's account of its cgroup's limits being hit: the
// memory peak, the kernel's OOM kills (and which processes they hit, from
// the kernel log) and the forks the pids limit refused, as running counts
// for the rules and as rate-limited violation records.
type oomWatch struct {
	cg        limits.Cgroup
	killLog   KillLog // nil: kills are counted, not named
	rep       *telemetry.CgroupReport
	log       zerolog.Logger
	oom, fork counter
	named     int // the victims named in OOM records so far

	// The OOM count and the victims named when the main child was last
	// seen alive (markLive): kills after that may have been its.
	liveCount uint64
	liveNamed int
}

func newOOMWatch(cg limits.Cgroup, kl KillLog, rep *telemetry.CgroupReport, log zerolog.Logger) *oomWatch {
	w := &oomWatch{cg: cg, killLog: kl, rep: rep, log: log}
	if u, err := cg.Usage(); err == nil {
		w.oom = counter{base: u.OOMKills, seen: u.OOMKills}
		w.fork = counter{base: u.ForksRefused, seen: u.ForksRefused}
		w.liveCount = u.OOMKills
	}
	return w
}

// poll reads the cgroup at time now. It returns the running counts that
// rose, as observations for the rules, and the violation records that are
// due; final flushes what a rate-limited record has not covered yet.
func (w *oomWatch) poll(now time.Time, final bool) ([]policies.Observation, []policies.Decision) {
	u, err := w.cg.Usage()
	if err != nil {
		return nil, nil
	}
	r := w.rep
	r.MemoryPeak = max(r.MemoryPeak, u.MemoryPeak, u.MemoryCurrent)
	var obs []policies.Observation
	var ds []policies.Decision
	if w.oom.read(u.OOMKills) {
		w.readVictims()
		r.OOMKills = w.oom.run()
		obs = append(obs, policies.Observation{Time: now, Source: policies.SourceProbe, Name: policies.NameOOMKills, Value: float64(r.OOMKills)})
	}
	if w.fork.read(u.ForksRefused) {
		r.ForksRefused = w.fork.run()
		obs = append(obs, policies.Observation{Time: now, Source: policies.SourceProbe, Name: policies.NameForksRefused, Value: float64(r.ForksRefused)})
	}
	if pending, ok := w.oom.due(now, final); ok {
		ds = append(ds, policies.Decision{Time: now, Rule: "oom", Kind: "oom", Severity: policies.SeverityHigh,
			Action: policies.ActionLog, Reason: w.reason(pending)})
		w.named = len(r.OOMVictims)
	}
	if pending, ok := w.fork.due(now, final); ok {
		reason := fmt.Sprintf("the pids limit (%d) refused %d fork(s) in the run's cgroup", r.PidsLimit, pending)
		if pending != r.ForksRefused {
			reason += fmt.Sprintf("; %d since the run began", r.ForksRefused)
		}
		ds = append(ds, policies.Decision{Time: now, Rule: "pids", Kind: "pids", Severity: policies.SeverityHigh,
			Action: policies.ActionLog, Reason: reason})
	}
	return obs, ds
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
// markLiveDue reports whether markLive would change anything: the
// counts moved since it was last called (so a tick reads the child's
// liveness from /proc only then).
func (w *oomWatch) markLiveDue() bool {
	return w.liveCount != w.oom.seen || w.liveNamed != len(w.rep.OOMVictims)
}

func (w *oomWatch) markLive() { w.liveCount, w.liveNamed = w.oom.seen, len(w.rep.OOMVictims) }

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
	if w.oom.seen <= w.liveCount {
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

// pollCgroup reads the run's cgroup: the running OOM kill and refused
// fork counts reach the rules while the child lives, and each is a
// violation record whether or not the main child survives it.
func (a *attempt) pollCgroup(final bool) {
	w := a.r.oom
	if w == nil {
		return
	}
	obs, ds := w.poll(a.r.cfg.Clock.Now(), final)
	// Read after the count: alive now means alive when it was read. Not
	// killed either: the kernel counts an OOM kill when it sends the
	// SIGKILL, and its victim can still look alive while it dies (more so
	// under load); taken for alive, the main child's own OOM kill would
	// count as one before it, and its death as "signaled".
	if !final && !a.r.foreignProc && w.markLiveDue() && !procfs.Killed(a.r.cfg.ProcRoot, a.pid) {
		w.markLive()
	}
	for _, o := range obs {
		if !a.exited {
			a.observe(o)
		}
	}
	r := w.rep
	for _, d := range ds {
		a.r.decided(d, a.n)
		a.r.log.Error().Str("rule", d.Rule).Uint64("oom_kills", r.OOMKills).Uint64("forks_refused", r.ForksRefused).
			Uint64("memory_peak_bytes", r.MemoryPeak).Int64("memory_limit_bytes", r.MemoryLimit).Msg(d.Reason)
	}
}
