package supervisor

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	testclock "k8s.io/utils/clock/testing"

	"github.com/prism-run/prism-run/policies"
)

// recorder is the stop machine's effects, written down.
type recorder struct {
	calls     []string
	cannotAsk bool // no process handles the checkpoint signal
}

func (r *recorder) checkpoint(d policies.Decision) bool {
	r.calls = append(r.calls, "checkpoint "+d.Rule)
	return !r.cannotAsk
}
func (r *recorder) terminate(d policies.Decision)      { r.calls = append(r.calls, "terminate "+d.Rule) }
func (r *recorder) kill(d policies.Decision, _ string) { r.calls = append(r.calls, "kill "+d.Rule) }
func (r *recorder) take() string                       { s := strings.Join(r.calls, ", "); r.calls = nil; return s }
func decision(rule string, a policies.Action) policies.Decision {
	return policies.Decision{Rule: rule, Action: a, Reason: "because"}
}

const (
	ckTimeout = 60 * time.Second
	killAfter = 10 * time.Second
)

// machine is a stop machine on a fake clock, driven as the event loop
// drives it: after each step of the clock, the timers that fired are
// handed to it.
type machine struct {
	*stopMachine
	clock *testclock.FakeClock
	fx    *recorder
}

func newMachine(fx *recorder) *machine {
	c := testclock.NewFakeClock(time.Unix(1e9, 0))
	return &machine{newStopMachine(c, ckTimeout, killAfter, fx, zerolog.Nop()), c, fx}
}

func (m *machine) step(d time.Duration) {
	m.clock.Step(d)
	select {
	case <-m.ckTimerC():
		m.checkpointTimedOut()
	default:
	}
	select {
	case <-m.killTimerC():
		m.killTimedOut()
	default:
	}
}

// Every transition of the machine, on a fake clock: what it sends, when,
// and how the run counts its end.
func TestStopMachine(t *testing.T) {
	ck, stop, kill := policies.ActionCheckpoint, policies.ActionStop, policies.ActionKill
	cs := policies.ActionCheckpointStop
	tests := []struct {
		name string
		fx   recorder
		run  func(m *machine) []string // the effects after each stage
		want []string
		// the end: acked, escalated, SIGKILL sent, a policy stop
		acked, escalated, killed, stopped bool
	}{
		{name: "checkpoint acknowledged", run: func(m *machine) []string {
			m.requestCheckpoint(decision("every", ck), false)
			a := m.fx.take()
			m.step(time.Second)
			if rule, took := m.acknowledged(m.clock.Now()); rule != "every" || took != time.Second {
				t.Errorf("ack answers %q after %v, want every after 1s", rule, took)
			}
			m.step(ckTimeout) // the timer was stopped: nothing happens
			return []string{a, m.fx.take()}
		}, want: []string{"checkpoint every", ""}},
		{name: "checkpoint never acknowledged times out, and the next one goes out", run: func(m *machine) []string {
			m.requestCheckpoint(decision("every", ck), false)
			m.step(ckTimeout - time.Millisecond)
			m.requestCheckpoint(decision("every", ck), false) // still pending: skipped
			a := m.fx.take()
			m.step(time.Millisecond) // times out
			m.requestCheckpoint(decision("every", ck), false)
			return []string{a, m.fx.take()}
		}, want: []string{"checkpoint every", "checkpoint every"}},
		{name: "a checkpoint nobody can take is not pending", fx: recorder{cannotAsk: true}, run: func(m *machine) []string {
			m.requestCheckpoint(decision("every", ck), false)
			if m.ckTimerC() != nil {
				t.Error("a timer runs for a request that was never sent")
			}
			return []string{m.fx.take()}
		}, want: []string{"checkpoint every"}},
		{name: "checkpoint-stop acknowledged: SIGTERM, then SIGKILL after kill-after", run: func(m *machine) []string {
			m.beginStop(decision("deadline", cs), byPolicy)
			a := m.fx.take()
			m.acknowledged(m.clock.Now())
			b := m.fx.take()
			m.step(killAfter - time.Millisecond)
			c := m.fx.take()
			m.step(time.Millisecond)
			return []string{a, b, c, m.fx.take()}
		}, want: []string{"checkpoint deadline", "terminate deadline", "", "kill deadline"}, acked: true, escalated: true, killed: true, stopped: true},
		{name: "checkpoint-stop not acknowledged: SIGTERM at the checkpoint timeout", run: func(m *machine) []string {
			m.beginStop(decision("deadline", cs), byPolicy)
			a := m.fx.take()
			m.step(ckTimeout)
			b := m.fx.take()
			m.childEnded()
			m.step(killAfter) // the child is gone: no SIGKILL
			return []string{a, b, m.fx.take()}
		}, want: []string{"checkpoint deadline", "terminate deadline", ""}, stopped: true},
		{name: "checkpoint-stop of a child that cannot checkpoint: SIGTERM at once", fx: recorder{cannotAsk: true}, run: func(m *machine) []string {
			m.beginStop(decision("deadline", cs), byPolicy)
			return []string{m.fx.take()}
		}, want: []string{"checkpoint deadline, terminate deadline"}, stopped: true},
		{name: "a checkpoint-stop during a periodic checkpoint takes it over, with the full timeout", run: func(m *machine) []string {
			m.requestCheckpoint(decision("every", ck), false)
			m.step(ckTimeout - time.Second)
			m.beginStop(decision("deadline", cs), byPolicy) // no second signal
			a := m.fx.take()
			m.step(time.Second) // the periodic request's timeout has passed; the stop's has not
			b := m.fx.take()
			if rule, _ := m.acknowledged(m.clock.Now()); rule != "deadline" {
				t.Errorf("the acknowledgement answers %q, want deadline", rule)
			}
			return []string{a, b, m.fx.take()}
		}, want: []string{"checkpoint every", "", "terminate deadline"}, acked: true, stopped: true},
		{name: "stop: SIGTERM at once, once", run: func(m *machine) []string {
			m.beginStop(decision("latency", stop), byPolicy)
			m.beginStop(decision("other", stop), byPolicy)
			return []string{m.fx.take()}
		}, want: []string{"terminate latency"}, stopped: true},
		{name: "kill: SIGKILL at once, no timer", run: func(m *machine) []string {
			m.beginStop(decision("entropy", kill), byPolicy)
			m.step(time.Hour)
			return []string{m.fx.take()}
		}, want: []string{"kill entropy"}, killed: true, stopped: true},
		{name: "a kill overrides a stop under way", run: func(m *machine) []string {
			m.beginStop(decision("latency", stop), byPolicy)
			m.beginStop(decision("entropy", kill), byPolicy)
			if m.stop.decision.Rule != "entropy" {
				t.Errorf("the stop is ruled by %q, want entropy", m.stop.decision.Rule)
			}
			return []string{m.fx.take()}
		}, want: []string{"terminate latency, kill entropy"}, killed: true, stopped: true},
		{name: "after the child ended nothing is sent", run: func(m *machine) []string {
			m.childEnded()
			m.requestCheckpoint(decision("every", ck), false)
			m.beginStop(decision("latency", stop), byPolicy)
			return []string{m.fx.take()}
		}, want: []string{""}},
		{name: "once a policy stop has begun, the child's own exit does not count", run: func(m *machine) []string {
			m.beginStop(decision("deadline", cs), byPolicy) // asks for the checkpoint only
			m.childEnded()                                  // and the child's handler exits 0
			return []string{m.fx.take()}
		}, want: []string{"checkpoint deadline"}, stopped: true},
		{name: "a terminating signal from outside: kill-after, then SIGKILL; the child's code counts", run: func(m *machine) []string {
			m.outsideSignal(decision("signal", stop)) // the caller forwarded it
			a := m.fx.take()
			m.step(killAfter)
			return []string{a, m.fx.take()}
		}, want: []string{"", "kill signal"}, escalated: true, killed: true},
		{name: "a second terminating signal kills at once", run: func(m *machine) []string {
			m.outsideSignal(decision("signal", stop))
			m.step(time.Second)
			if !m.outsideSignal(decision("signal", stop)) {
				t.Error("the second signal did not kill")
			}
			return []string{m.fx.take()}
		}, want: []string{"kill signal"}, killed: true},
		{name: "a terminating signal during a policy stop keeps the policy's code", run: func(m *machine) []string {
			m.beginStop(decision("latency", stop), byPolicy)
			m.outsideSignal(decision("signal", stop))
			return []string{m.fx.take()}
		}, want: []string{"terminate latency"}, stopped: true},
		{name: "an acknowledgement read after the child ended (the drain)", run: func(m *machine) []string {
			m.beginStop(decision("deadline", cs), byPolicy)
			m.childEnded()
			if rule, _ := m.acknowledged(m.clock.Now()); rule != "deadline" {
				t.Errorf("the late acknowledgement answers %q", rule)
			}
			return []string{m.fx.take()}
		}, want: []string{"checkpoint deadline"}, acked: true, stopped: true},
		{name: "a terminating signal during a checkpoint-stop's wait starts kill-after at once", run: func(m *machine) []string {
			m.beginStop(decision("deadline", cs), byPolicy)
			m.outsideSignal(decision("signal", stop)) // forwarded SIGTERM
			a := m.fx.take()
			m.step(killAfter) // long before the checkpoint timeout
			return []string{a, m.fx.take()}
		}, want: []string{"checkpoint deadline", "kill deadline"}, escalated: true, killed: true, stopped: true},
		{name: "a cancel is neither a policy stop nor the child's", run: func(m *machine) []string {
			m.beginStop(decision("cancelled", stop), byCaller)
			if !m.cancelled() {
				t.Error("not cancelled")
			}
			return []string{m.fx.take()}
		}, want: []string{"terminate cancelled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := tt.fx
			m := newMachine(&fx)
			got := tt.run(m)
			if strings.Join(got, " | ") != strings.Join(tt.want, " | ") {
				t.Errorf("effects %q, want %q", got, tt.want)
			}
			acked := m.stop != nil && m.stop.acked
			if acked != tt.acked || m.escalated != tt.escalated || m.killed != tt.killed || m.policyStopped() != tt.stopped {
				t.Errorf("acked %v escalated %v killed %v policy stop %v; want %v %v %v %v",
					acked, m.escalated, m.killed, m.policyStopped(), tt.acked, tt.escalated, tt.killed, tt.stopped)
			}
		})
	}
}
