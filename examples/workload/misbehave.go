package workload

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Misbehave is the set of faults every example can be asked to show, so
// that prism-run's handling of each is tested against a real workload.
type Misbehave struct {
	IgnoreTerm bool          // ignore SIGTERM (prism-run must SIGKILL after --kill-after)
	LeakMiB    int           // grow memory by this many MiB per second
	HangAfter  int           // stop making progress (and printing) after this many steps; 0 = never
	Spawn      int           // start this many child processes that sleep (prism-run must kill them)
	SlowStart  time.Duration // do nothing for this long before the first step
	// KillAfterCheckpoint: SIGKILL itself this many steps after its
	// first checkpoint, in the first attempt only (PRISM_RESTART_COUNT
	// unset or 0): a crash mid-run that a restart recovers from.
	KillAfterCheckpoint int

	killAt int // the step to die at (0: none)

	leak     [][]byte
	lastLeak time.Time
	children []*exec.Cmd
}

// Register adds the misbehaviour flags to fs.
func (m *Misbehave) Register(fs *flag.FlagSet) {
	fs.BoolVar(&m.IgnoreTerm, "ignore-term", false, "misbehave: ignore SIGTERM")
	fs.IntVar(&m.LeakMiB, "leak-mib-per-s", 0, "misbehave: leak this many MiB of memory per second")
	fs.IntVar(&m.HangAfter, "hang-after", 0, "misbehave: hang after this many steps (0 = never)")
	fs.IntVar(&m.Spawn, "spawn", 0, "misbehave: start this many sleeping child processes")
	fs.DurationVar(&m.SlowStart, "slow-start", 0, "misbehave: wait this long before the first step")
	fs.IntVar(&m.KillAfterCheckpoint, "kill-after-checkpoint", 0, "misbehave: SIGKILL itself this many steps after its first checkpoint, in the first attempt only (0 = never)")
}

// Checkpointed is called after a checkpoint was written at step.
func (m *Misbehave) Checkpointed(step int) {
	first := os.Getenv("PRISM_RESTART_COUNT") == "" || os.Getenv("PRISM_RESTART_COUNT") == "0"
	if m.KillAfterCheckpoint > 0 && m.killAt == 0 && first {
		m.killAt = step + m.KillAfterCheckpoint
	}
}

// Begin starts the children and the slow start.
func (m *Misbehave) Begin() error {
	for i := 0; i < m.Spawn; i++ {
		c := exec.Command("sleep", "3600")
		if err := c.Start(); err != nil {
			return fmt.Errorf("spawn: %w", err)
		}
		m.children = append(m.children, c)
	}
	time.Sleep(m.SlowStart)
	m.lastLeak = time.Now()
	return nil
}

// Step is called once per step of work: it leaks, and hangs forever once
// step reaches HangAfter.
func (m *Misbehave) Step(step int) {
	if m.LeakMiB > 0 {
		if d := time.Since(m.lastLeak); d >= 100*time.Millisecond {
			n := int(d.Seconds() * float64(m.LeakMiB) * (1 << 20))
			b := make([]byte, n)
			for i := 0; i < n; i += 4096 {
				b[i] = 1 // touch each page so it counts as resident
			}
			m.leak = append(m.leak, b)
			m.lastLeak = time.Now()
		}
	}
	if m.killAt > 0 && step >= m.killAt {
		fmt.Fprintln(os.Stderr, "misbehave: killing itself")
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	if m.HangAfter > 0 && step >= m.HangAfter {
		fmt.Fprintln(os.Stderr, "misbehave: hanging")
		for {
			time.Sleep(time.Hour)
		}
	}
}

// Setup is the start every example shares: it adds -seed and the
// misbehaviour flags to fs, parses args, reads the protocol's environment,
// starts listening for its signals and begins the misbehaviour. A code
// other than 0 is the exit code to return at once (2: bad flags). The
// caller must defer proto.Stop() when it gets a Protocol.
func Setup(name string, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (*Protocol, *Misbehave, int) {
	seed := fs.Uint64("seed", 1, "seed when PRISM_SEED is unset")
	mis := &Misbehave{}
	mis.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, 2
	}
	proto := FromEnv(stdout, *seed)
	proto.Listen(mis.IgnoreTerm)
	if err := mis.Begin(); err != nil {
		proto.Stop()
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return nil, nil, 1
	}
	return proto, mis, 0
}
