// Package replay runs the policy engine over a recorded output, as
// `prism-run replay` does: the same recording and policy always give the
// same decisions, byte for byte, so a policy can be tried on yesterday's
// log before it governs tomorrow's run.
package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
)

// Options of a replay.
type Options struct {
	Rules  []policies.Rule // fresh rules: they keep state
	Parser *markers.Parser
	// Tick is the time one line stands for when lines carry no time.
	Tick time.Duration
	// JSON prints one JSON object per decision instead of text.
	JSON bool
	// KeepGoing goes on after a decision that would have ended the child.
	KeepGoing bool
	// CheckpointTimeout is how long a checkpoint-stop waits for the
	// child's acknowledgement (the run's checkpoint_timeout): one that
	// comes later in the recording would not have made the run
	// resumable. Zero: only one at the stop's own time counts.
	CheckpointTimeout time.Duration
	// Notes receives, with JSON output, what text output ends with (idle
	// rules, malformed markers), so the JSON stays one decision per
	// line; nil drops them.
	Notes io.Writer
}

// Summary is what a replay found.
type Summary struct {
	Lines     int
	Markers   int
	Malformed int
	// FirstMalformed is the first malformed marker: "line N: why".
	FirstMalformed string
	Decisions      int
	EndedBy        *policies.Decision // the decision that would have ended the child
	// Acked: EndedBy asked for a checkpoint first (checkpoint-stop), and
	// the recording has a checkpoint marker after it, within
	// CheckpointTimeout: the run would have been resumable.
	Acked bool
	// Idle are the rules whose metric never appeared up to where the
	// replay ended (the end of the recording, or the decision that would
	// have ended the child).
	Idle []policies.Meta
}

// ProbePrefix starts the line (after its timestamp) of a probe sample in
// a --record recording: `TIME # probe memory_bytes=1234`. To anything but
// replay it is no marker.
const ProbePrefix = "# probe "

// StartLine follows the timestamp of a --record recording's first line:
// replay's clock starts there (a new run when a recording was appended
// to by several).
const StartLine = "# prism-run started"

// epoch is where time starts for recordings without timestamps, so that
// their decisions carry stable times.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Run reads a recording from r and writes the decisions to w. A record
// is a line, or a part of one ended by a carriage return (next). A
// record's time is, in order: an RFC 3339 timestamp at the start of its
// line (the rest of the line is the output), a `t=SECONDS` key of its
// marker (seconds since the start), or one Tick after the previous
// record.
func Run(r io.Reader, w io.Writer, opt Options) (Summary, error) {
	if opt.Tick <= 0 {
		opt.Tick = 100 * time.Millisecond
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	rp := &replayer{opt: opt, in: bufio.NewReaderSize(r, 256<<10), out: bw, names: markers.Names{}}
	for {
		at, obs, stamped, err := rp.next()
		if err != nil {
			break
		}
		// --keep-going: an acknowledgement counts as findAck counts it.
		if e := rp.sum.EndedBy; e != nil && e.Action.CheckpointsFirst() && !rp.sum.Acked && !rp.late(at) {
			rp.sum.Acked = acknowledges(obs)
		}
		ended, ferr := rp.feed(at, obs, stamped)
		if ferr != nil {
			return rp.sum, ferr
		}
		if ended && !opt.KeepGoing {
			rp.findAck()
			break
		}
	}
	// What the rules never saw, up to where the run would have ended, as
	// a run's end says it.
	rp.idle()
	rp.notes()
	if e := rp.sum.EndedBy; e != nil && !opt.JSON {
		fmt.Fprintf(bw, "ended: rule %s would have ended the child (%s) at +%s\n",
			e.Rule, e.Action, offset(e.Time.Sub(rp.start)))
	}
	return rp.sum, nil
}

// idle finds, at the end of the recording, the rules that never saw their
// metric.
func (rp *replayer) idle() {
	if rp.eng != nil {
		rp.sum.Idle = rp.eng.Idle()
	}
}

// notes says what a run's end would have said of its markers: the idle
// rules and the malformed markers. Text output ends with them; with JSON
// they go to Options.Notes.
func (rp *replayer) notes() {
	w := io.Writer(rp.out)
	if rp.opt.JSON {
		if w = rp.opt.Notes; w == nil {
			return
		}
	}
	seen := slices.Sorted(maps.Keys(rp.names))
	for _, m := range rp.sum.Idle {
		fmt.Fprintf(w, "idle: %s\n", policies.IdleReason(m, seen))
	}
	if n := rp.sum.Malformed; n > 0 {
		fmt.Fprintf(w, "malformed: %d marker line(s), never fed to a rule; the first, %s\n", n, rp.sum.FirstMalformed)
	}
}

// findAck reads on past a checkpoint-stop for the child's acknowledgement
// within the checkpoint timeout, which would have made the run resumable
// (75): the rest of the recording is not judged. Records keep their times
// as in Run (timestamp, t=, or one Tick each).
func (rp *replayer) findAck() {
	end := rp.sum.EndedBy
	if !end.Action.CheckpointsFirst() || rp.sum.Acked {
		return
	}
	for {
		at, obs, _, err := rp.next()
		if err != nil {
			return
		}
		rp.last = at
		if rp.late(at) {
			return // the run would have stopped the child by now
		}
		if acknowledges(obs) {
			rp.sum.Acked = true
			return
		}
	}
}

// late reports whether at is past the checkpoint timeout of the
// checkpoint-stop that ended the replay: no acknowledgement counts then.
func (rp *replayer) late(at time.Time) bool {
	return at.Sub(rp.sum.EndedBy.Time) > rp.opt.CheckpointTimeout
}

// acknowledges reports whether a line holds a checkpoint acknowledgement.
func acknowledges(obs []policies.Observation) bool {
	for _, o := range obs {
		if o.Name == policies.NameCheckpoint && o.Text != "" {
			return true
		}
	}
	return false
}

// replayer is one replay's state.
type replayer struct {
	opt   Options
	in    *bufio.Reader
	out   *bufio.Writer
	sum   Summary
	eng   *policies.Engine
	start time.Time
	last  time.Time
	names markers.Names
	obs   []policies.Observation
	long  []byte
	line  []byte // the output line being formatted

	pending     [][]byte  // the records of the line being read (next)
	next0       int       // pending[next0] is the next record
	first       bool      // the next of pending is its line's first
	ended       error     // the recording ended after the pending line
	lineAt      time.Time // the time of the pending records' line
	lineStamped bool
	newRun      bool // the record starts another run of the recording
}

// next reads the next record and says when it happened. A carriage
// return ends a record as a newline does (a progress bar redrawing its
// line; a marker printed after it), as in a run; the records of one line
// share its timestamp. err: the recording ended.
func (rp *replayer) next() (time.Time, []policies.Observation, bool, error) {
	for rp.next0 == len(rp.pending) {
		if rp.ended != nil {
			return time.Time{}, nil, false, rp.ended
		}
		line, err := rp.readLine()
		if len(line) == 0 && err != nil {
			return time.Time{}, nil, false, err
		}
		rp.ended, rp.first = err, true
		rp.pending, rp.next0 = rp.pending[:0], 0
		// The records between carriage returns, into pending's own
		// backing array (bytes.Split would allocate one a line).
		rest := bytes.TrimSuffix(line, []byte{'\n'})
		for i := 0; ; i++ {
			rec, after, more := bytes.Cut(rest, []byte{'\r'})
			if len(rec) > 0 || i == 0 {
				rp.pending = append(rp.pending, rec)
			}
			if !more {
				break
			}
			rest = after
		}
	}
	rec := rp.pending[rp.next0]
	rp.next0++
	rp.sum.Lines++
	at, obs, stamped := rp.observations(rec)
	switch {
	case rp.first:
		rp.lineAt, rp.lineStamped, rp.first = at, stamped, false
	case rp.lineStamped && !stamped:
		at, stamped = rp.lineAt, true
	}
	return at, obs, stamped, nil
}

// readLine reads one line, whatever its length.
func (rp *replayer) readLine() ([]byte, error) {
	for {
		line, err := rp.in.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			rp.long = append(rp.long, line...)
			continue
		}
		if len(rp.long) > 0 {
			line = append(rp.long, line...)
			rp.long = rp.long[:0]
		}
		return line, err
	}
}

// observations parses a line and says when it happened.
func (rp *replayer) observations(line []byte) (time.Time, []policies.Observation, bool) {
	at, rest, stamped := leadingTime(line)
	p := rp.opt.Parser
	obs := rp.obs[:0]
	if stamped && bytes.Equal(bytes.TrimSpace(rest), []byte(StartLine)) {
		// Another run of a recording appended to: its own clock.
		rp.newRun = rp.eng != nil
	}
	src := policies.SourceStdout
	if kv, ok := bytes.CutPrefix(rest, []byte(ProbePrefix)); ok {
		// A probe sample of a --record recording: the host's, not the
		// child's (a heartbeat on any marker does not count it).
		rest, src = append(append([]byte(p.Prefix()), ' '), kv...), policies.SourceProbe
	}
	if p.IsMarker(rest) {
		var perr error
		if len(rest) > markers.MaxMarkerLine {
			// A run holds no more of a marker line, and counts it.
			perr = fmt.Errorf("%w: marker line longer than %d bytes", markers.ErrMalformed, markers.MaxMarkerLine)
		} else {
			obs, perr = p.ParseWith(obs, rest, src, time.Time{}, rp.names)
		}
		if perr != nil {
			if rp.sum.Malformed == 0 {
				rp.sum.FirstMalformed = fmt.Sprintf("line %d: %v", rp.sum.Lines, perr)
			}
			rp.sum.Malformed++
		} else {
			rp.sum.Markers++
		}
	} else if p.HasPatterns() {
		obs = p.Match(obs, rest, policies.SourceStdout, time.Time{}, rp.names)
	}
	rp.obs = obs
	if stamped {
		return at, obs, true
	}
	at = rp.last.Add(rp.opt.Tick)
	if rp.eng == nil {
		at = epoch
	}
	for _, o := range obs {
		if o.Name == "t" && o.Text == "" && !math.IsNaN(o.Value) && !math.IsInf(o.Value, 0) {
			at = epoch.Add(time.Duration(o.Value * float64(time.Second)))
		}
	}
	return at, obs, false
}

// feed gives the engine a line's clock tick and observations, writes the
// decisions, and says whether one would have ended the child.
func (rp *replayer) feed(at time.Time, obs []policies.Observation, stamped bool) (bool, error) {
	if rp.eng == nil {
		rp.start = at
		var err error
		if rp.eng, err = policies.NewEngine(fixed(rp.start), rp.opt.Rules); err != nil {
			return false, err
		}
	}
	if rp.newRun {
		rp.newRun, rp.start = false, at
		rp.eng.NewRun(at)
	}
	rp.last = at
	ended := rp.emit(rp.eng.Observe(policies.Observation{Time: at, Source: policies.SourceClock,
		Name: policies.NameElapsed, Value: at.Sub(rp.start).Seconds()}), stamped)
	for _, o := range obs {
		o.Time = at
		ended = rp.emit(rp.eng.Observe(o), stamped) || ended
	}
	return ended, nil
}

func (rp *replayer) emit(ds []policies.Decision, stamped bool) bool {
	ended := false
	for i := range ds {
		d := ds[i]
		rp.sum.Decisions++
		rp.line = format(rp.line[:0], d, d.Time.Sub(rp.start), stamped, rp.opt.JSON)
		_, _ = rp.out.Write(rp.line)
		if d.Action.Ends() && rp.sum.EndedBy == nil {
			rp.sum.EndedBy = &d
			ended = true
		}
	}
	return ended
}

type fixed time.Time

func (f fixed) Now() time.Time { return time.Time(f) }

// leadingTime reads an RFC 3339 timestamp that starts the line and is
// followed by a space or a tab.
func leadingTime(line []byte) (time.Time, []byte, bool) {
	if len(line) < 20 || line[0] < '0' || line[0] > '9' || line[4] != '-' {
		return time.Time{}, line, false
	}
	end := bytes.IndexAny(line, " \t")
	if end < 0 {
		return time.Time{}, line, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(line[:end]))
	if err != nil {
		return time.Time{}, line, false
	}
	return t, bytes.TrimLeft(line[end:], " \t"), true
}

func offset(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
}

// record is one decision in JSON output.
type record struct {
	At       string            `json:"at"`
	Time     *time.Time        `json:"time,omitempty"`
	Rule     string            `json:"rule"`
	Kind     string            `json:"kind"`
	Severity policies.Severity `json:"severity"`
	Action   policies.Action   `json:"action"`
	What     string            `json:"what,omitempty"`
	Signal   string            `json:"signal,omitempty"`
	ExitCode *int              `json:"exit_code,omitempty"`
	Reason   string            `json:"reason"`
}

func format(dst []byte, d policies.Decision, off time.Duration, stamped, asJSON bool) []byte {
	if asJSON {
		r := record{At: "+" + offset(off), Rule: d.Rule, Kind: d.Kind, Severity: d.Severity, Action: d.Action,
			What: d.What, Signal: d.Signal, ExitCode: d.ExitCode, Reason: d.Reason}
		if stamped {
			t := d.Time
			r.Time = &t
		}
		b, _ := json.Marshal(r)
		return append(append(dst, b...), '\n')
	}
	dst = fmt.Appendf(dst, "+%s", offset(off))
	if stamped {
		dst = fmt.Appendf(dst, " %s", d.Time.UTC().Format(time.RFC3339Nano))
	}
	dst = fmt.Appendf(dst, " rule=%s kind=%s severity=%s action=%s", d.Rule, d.Kind, d.Severity, d.Action)
	if d.What != "" {
		dst = fmt.Appendf(dst, " what=%s", d.What)
	}
	return fmt.Appendf(dst, ": %s\n", d.Reason)
}
