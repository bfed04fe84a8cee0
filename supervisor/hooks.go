package supervisor

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
	"k8s.io/utils/clock"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/telemetry"
)

// HookQueue bounds the violations waiting for --on-violation's program:
// past it they are dropped and counted.
const HookQueue = 64

// DefaultHookTimeout is how long --on-violation's program may run.
const DefaultHookTimeout = 10 * time.Second

// hooks runs the --on-violation program once per violation, one at a
// time, from a goroutine of its own: the violation as JSON on its stdin,
// its argv as the user wrote it (no shell, nothing expanded: marker text
// never reaches a command line), its output on prism-run's stderr, a
// timeout after which its process group is SIGKILLed. It is started
// through the run's reaper (which reaps every child of prism-run), and
// while it runs it is one of prism-run's helpers, never the run's tree.
type hooks struct {
	argv    []string
	timeout time.Duration
	reaper  *Reaper
	clock   clock.Clock
	out     io.Writer
	log     zerolog.Logger
	proc    string // the proc root, for its identity

	q       chan []byte
	done    chan struct{}
	dropped atomic.Int64
	failed  atomic.Int64

	mu      sync.Mutex
	running *procfs.Identity // the hook now running, if any
	cur     *Child
}

func newHooks(cfg *Config, reaper *Reaper) *hooks {
	h := &hooks{argv: cfg.OnViolation, timeout: cfg.OnViolationTimeout, reaper: reaper, clock: cfg.Clock,
		out: cfg.Stderr, log: cfg.Log, proc: cfg.ProcRoot, q: make(chan []byte, HookQueue), done: make(chan struct{})}
	if h.timeout <= 0 {
		h.timeout = DefaultHookTimeout
	}
	go h.run()
	return h
}

// violation queues v for the program; it never blocks.
func (h *hooks) violation(v telemetry.Violation) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	select {
	case h.q <- append(b, '\n'):
	default:
		h.dropped.Add(1)
	}
}

// helpers are the hooks running now: prism-run's own processes.
func (h *hooks) helpers() []procfs.Identity {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running == nil {
		return nil
	}
	return []procfs.Identity{*h.running}
}

func (h *hooks) run() {
	defer close(h.done)
	for b := range h.q {
		if err := h.once(b); err != nil {
			h.failed.Add(1)
			h.log.Warn().Err(err).Strs("command", h.argv).Msg("--on-violation")
		}
	}
}

type hookError string

func (e hookError) Error() string { return string(e) }

// once runs the program for one violation and waits for its end, or
// kills it at the timeout.
func (h *hooks) once(b []byte) error {
	// Files, not writers: os/exec would copy a writer in goroutines that
	// only its Wait ends, and the reaper, not Wait, takes the status.
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_, _ = r.Close(), w.Close()
		return err
	}
	go func() { _, _ = io.Copy(h.out, outR); _ = outR.Close() }() // ends when the program and its children close it
	cmd := exec.Command(h.argv[0], h.argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, outW, outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	h.mu.Lock() // the tree is not scanned between the start and the helper's record
	c, err := h.reaper.Start(cmd)
	if err == nil {
		h.cur = c
		if id, ierr := procfs.IdentityOf(h.proc, c.Pid); ierr == nil {
			h.running = &id
		}
	}
	h.mu.Unlock()
	_ = r.Close()
	_ = outW.Close()
	if err != nil {
		_ = w.Close()
		return err
	}
	defer func() {
		h.mu.Lock()
		h.running, h.cur = nil, nil
		h.mu.Unlock()
	}()
	go func() { _, _ = w.Write(b); _ = w.Close() }() // a program that never reads must not hold us
	t := h.clock.NewTimer(h.timeout)
	defer t.Stop()
	select {
	case <-c.Done():
	case <-t.C():
		_ = h.reaper.Signal(c, unix.SIGKILL)
		<-c.Done()
		return hookError("killed after " + h.timeout.String())
	}
	if ws := c.Wait(); ws.ExitStatus() != 0 || ws.Signaled() {
		if ws.Signaled() {
			return hookError("killed by " + unix.SignalName(ws.Signal()))
		}
		return hookError("exited with code " + strconv.Itoa(ws.ExitStatus()))
	}
	return nil
}

// close lets the queued programs run, waiting no longer than wait; what
// is still queued then is dropped, and a program still running is
// killed.
func (h *hooks) close(wait time.Duration) {
	close(h.q)
	t := h.clock.NewTimer(wait)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C():
		for range h.q {
			h.dropped.Add(1)
		}
		h.mu.Lock()
		if h.cur != nil {
			_ = h.reaper.Signal(h.cur, unix.SIGKILL)
		}
		h.mu.Unlock()
		<-h.done
	}
}
