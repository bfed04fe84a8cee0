package supervisor

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"sync"

	"golang.org/x/sys/unix"
)

// Reaper collects the status of every child of this process with
// wait4(-1) each time SIGCHLD arrives.
//
// prism-run is a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so the
// orphans of the run's tree become its children and stay zombies until it
// reaps them; only wait4(-1) reaches a child whose pid nobody recorded. That
// wait takes the status of *any* child of the process, so a Reaper is
// process-wide: a process has at most one (one Run at a time), and a
// child whose exit status matters (the main child, a hook, a fallback
// command) is started through Start, never waited for with os/exec's Wait,
// which would find it already reaped.
type Reaper struct {
	mu      sync.Mutex
	watched map[int]*Child
	sigchld chan os.Signal
	quit    chan struct{}
	done    chan struct{}
}

// NewReaper starts reaping. Call it before any child it must report on is
// started, and Close it when the run is over.
func NewReaper() *Reaper {
	r := &Reaper{watched: map[int]*Child{}, sigchld: make(chan os.Signal, 1),
		quit: make(chan struct{}), done: make(chan struct{})}
	signal.Notify(r.sigchld, unix.SIGCHLD)
	go r.run()
	return r
}

func (r *Reaper) run() {
	defer close(r.done)
	for {
		r.reap() // also a child that died before SIGCHLD was being watched
		select {
		case <-r.sigchld:
		case <-r.quit:
			r.reap()
			return
		}
	}
}

// Close stops reaping; children still watched get no more statuses.
func (r *Reaper) Close() {
	signal.Stop(r.sigchld)
	close(r.quit)
	<-r.done
}

// Start starts cmd and watches its pid: every status change of the child
// (a stop under job control as well as its end) reaches the returned
// Child. The lock held across the start guarantees no status is reaped
// before the pid is known.
func (r *Reaper) Start(cmd *exec.Cmd) (*Child, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &Child{Pid: cmd.Process.Pid, notify: make(chan struct{}, 1), ended: make(chan struct{})}
	r.watched[c.Pid] = c
	return c, nil
}

// reap collects every child that changed state, without blocking:
// WUNTRACED reports a stopped child too, once per stop. Statuses of
// unwatched children (orphans of the tree) are dropped: reaping them is
// the point.
func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WUNTRACED, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if c, ok := r.watched[pid]; ok {
			c.deliver(ws)
			if !ws.Stopped() {
				delete(r.watched, pid)
			}
		}
	}
}

// Child is a process started through a Reaper, and its statuses.
type Child struct {
	Pid    int
	mu     sync.Mutex
	queue  []unix.WaitStatus
	notify chan struct{}
	ended  chan struct{}
	final  unix.WaitStatus
}

// deliver queues a status; it never blocks the reaper.
func (c *Child) deliver(ws unix.WaitStatus) {
	c.mu.Lock()
	c.queue = append(c.queue, ws)
	if !ws.Stopped() {
		c.final = ws
		close(c.ended)
	}
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Changed is ready when statuses are waiting to be taken.
func (c *Child) Changed() <-chan struct{} { return c.notify }

// Take returns the statuses that arrived since the last call, oldest
// first: stops, then at most one exit or death.
func (c *Child) Take() []unix.WaitStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queue
	c.queue = nil
	return q
}

// Done is closed once the child has ended (and been reaped).
func (c *Child) Done() <-chan struct{} { return c.ended }

// Signal sends sig to c's process group (Setpgid: its pid), only while
// c has not been reaped: under the reaper's lock, so the pid cannot be
// reaped, and so reused, between the check and the kill(2).
func (r *Reaper) Signal(c *Child, sig unix.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-c.ended:
		return nil
	default:
	}
	return unix.Kill(-c.Pid, sig)
}

// Wait blocks until the child has ended and returns how.
func (c *Child) Wait() unix.WaitStatus {
	<-c.ended
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.final
}
