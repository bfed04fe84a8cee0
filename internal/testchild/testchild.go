// Package testchild is the child process of prism-run's tests: one program
// with a mode per behaviour a test needs (print markers, ignore SIGTERM,
// detach a daemon, write random bytes, ...). Supervisor tests re-run their
// own test binary in this mode (os/exec's helper-process pattern); the
// testscript tests install it as the `testchild` command.
package testchild

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
	"github.com/prism-run/prism-run/limits"
)

// Usage lists the modes.
const Usage = `testchild MODE [ARGS]
  exit N                 exit with code N
  print LINE...          print each LINE to stdout
  stderr LINE...         print each LINE to stderr
  partial TEXT DUR       write TEXT to stderr with no newline, then sleep DUR
  sleep DUR              sleep, then exit 0
  randbytes N SEED       write N pseudo-random bytes (RandomBytes) to stdout
  longline N             write N 'x' bytes and no newline
  signals FILE           write "PID PPID" to FILE, then print each signal received (and append it
                         to FILE); exit 0 on SIGTERM
  ignore-term DUR [FILE] ignore SIGTERM and SIGUSR1, write "PID PPID" to FILE if given, print "PRISM iter=0", sleep DUR
  checkpoint ack|silent|die|quit [FILE]  write "PID PPID" to FILE if given; on SIGUSR1 write a checkpoint and ack it (ack),
                         or do nothing (silent), or exit 3 (die) or 0 (quit) on SIGUSR1; print control lines read; exit 0 on SIGTERM
  pidfile FILE           write "PID PPID" to FILE, then sleep
  escape FILE            detach a daemon (new session, ignores SIGTERM) that writes its pid to FILE, exit 0
  kill-self SIG [DUR]    after DUR (default none), kill itself with signal number SIG
  env NAME...            print NAME=VALUE for each NAME
  rlimits                print each resource limit as name=soft:hard
  status                 print NoNewPrivs, uid and gid as the kernel sees them
  environ                print the whole environment, sorted
  alloc MIB [DUR]        allocate MIB MiB (touching every page), print "allocated", then sleep DUR
  spawn N [DUR]          start N sleeping children, print how many started, sleep DUR, exit 0
  netifs                 print each network interface and whether it is up
  burn DUR               burn DUR of CPU time, print the CPU seconds, the wall seconds it took and cores (their ratio)
  readline               print "ready", read one line from stdin, print "got: LINE"
  beat DUR               print the marker "PRISM beat=N" every DUR, for ever
  names N                print N markers, each with a name of its own
  enforced               print what the kernel enforces on it, in --dry-run's words: "rlimit NAME = V"
                         for every rlimit, "cgroup FILE = V" for every limit file of its cgroup that
                         is not unlimited, "isolation no_new_privs = ..." when set`

// RandomBytes returns the deterministic byte stream `randbytes n seed`
// writes, for tests to compare against.
func RandomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// Main runs one mode and returns the exit code.
func Main(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, Usage)
		return 2
	}
	run, ok := modes()[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "testchild: unknown mode %q\n%s\n", args[0], Usage)
		return 2
	}
	return run(margs{mode: args[0], list: args[1:]})
}

// margs are a mode's arguments.
type margs struct {
	mode string
	list []string
}

// at is argument i; a missing one ends the child with 2.
func (a margs) at(i int) string {
	if i >= len(a.list) {
		fmt.Fprintf(os.Stderr, "testchild %s: missing argument %d\n", a.mode, i+1)
		os.Exit(2)
	}
	return a.list[i]
}

func (a margs) int(i int) int                 { n, _ := strconv.Atoi(a.at(i)); return n }
func (a margs) dur(i int) time.Duration       { d, _ := time.ParseDuration(a.at(i)); return d }
func sleepThen(d time.Duration, code int) int { time.Sleep(d); return code }

// modes are the behaviours, by name (Usage lists them).
func modes() map[string]func(margs) int {
	return map[string]func(margs) int{
		"exit":   func(a margs) int { return a.int(0) },
		"print":  func(a margs) int { return printLines(os.Stdout, a.list) },
		"stderr": func(a margs) int { return printLines(os.Stderr, a.list) },
		"partial": func(a margs) int {
			// A progress bar's unfinished line on stderr, then a
			// marker saying so on stdout (a rule can act on it, and
			// so only once the line is out), then a wait.
			fmt.Fprint(os.Stderr, a.at(0))
			fmt.Println("PRISM partial=1")
			return sleepThen(a.dur(1), 0)
		},
		"beat":      func(a margs) int { return beat(a.dur(0)) },
		"readline":  func(margs) int { return readline() },
		"sleep":     func(a margs) int { return sleepThen(a.dur(0), 0) },
		"randbytes": func(a margs) int { return randbytes(a) },
		"longline":  func(a margs) int { return longline(a.int(0)) },
		"signals":   func(a margs) int { return signals(a.at(0)) },
		"ignore-term": func(a margs) int {
			pidfile := ""
			if len(a.list) > 1 {
				pidfile = a.list[1]
			}
			return ignoreTerm(a.dur(0), pidfile)
		},
		"checkpoint": func(a margs) int {
			ch := make(chan os.Signal, 4)
			signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
			if len(a.list) > 1 {
				writeFile(a.list[1], fmt.Sprintf("%d %d\n", os.Getpid(), os.Getppid()))
			}
			return checkpoint(a.at(0), ch)
		},
		"pidfile": func(a margs) int {
			writeFile(a.at(0), fmt.Sprintf("%d %d\n", os.Getpid(), os.Getppid()))
			return sleepThen(time.Hour, 0)
		},
		"escape": func(a margs) int { return escape(a.at(0)) },
		"daemon": func(a margs) int {
			// The detached grandchild: its parent has exited, so it is an
			// orphan (reparented to prism-run, a subreaper) in its own session.
			signal.Ignore(syscall.SIGTERM, syscall.SIGHUP)
			writeFile(a.at(0), fmt.Sprintf("%d\n", os.Getpid()))
			return sleepThen(time.Hour, 0)
		},
		"kill-self": func(a margs) int {
			if len(a.list) > 1 {
				time.Sleep(a.dur(1))
			}
			_ = syscall.Kill(os.Getpid(), syscall.Signal(a.int(0)))
			return sleepThen(10*time.Second, 99)
		},
		"rlimits": func(margs) int { return printRlimits() },
		"status":  func(margs) int { return status() },
		"environ": func(margs) int { return environ() },
		"alloc":   func(a margs) int { return alloc(a) },
		"spawn": func(a margs) int {
			code := spawn(a.int(0))
			if len(a.list) > 1 {
				time.Sleep(a.dur(1))
			}
			return code
		},
		"netifs":   func(margs) int { return netifs() },
		"burn":     func(a margs) int { return burn(a.dur(0)) },
		"env":      func(a margs) int { return env(a.list) },
		"enforced": func(margs) int { return enforced() },
		"names": func(a margs) int {
			w := bufio.NewWriterSize(os.Stdout, 1<<16)
			for i := 0; i < a.int(0); i++ {
				fmt.Fprintf(w, "PRISM name_%d=1\n", i)
			}
			return map[bool]int{true: 0, false: 1}[w.Flush() == nil]
		},
	}
}

func printLines(w io.Writer, lines []string) int {
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return 0
}

// beat is a live program: a marker every d, for ever.
func beat(d time.Duration) int {
	for n := 1; ; n++ {
		fmt.Printf("PRISM beat=%d\n", n)
		time.Sleep(d)
	}
}

// readline is an interactive program: a prompt, then one line from stdin.
func readline() int {
	fmt.Println("ready")
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "readline:", err)
		return 1
	}
	fmt.Printf("got: %s\n", strings.TrimSpace(line))
	return 0
}

func randbytes(a margs) int {
	seed, _ := strconv.ParseUint(a.at(1), 10, 64)
	if _, err := os.Stdout.Write(RandomBytes(a.int(0), seed)); err != nil {
		return 1
	}
	return 0
}

func longline(n int) int {
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	chunk := []byte(strings.Repeat("x", 1<<16))
	for n > 0 {
		k := min(n, len(chunk))
		_, _ = w.Write(chunk[:k])
		n -= k
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}

func ignoreTerm(d time.Duration, pidfile string) int {
	signal.Ignore(syscall.SIGTERM, syscall.SIGUSR1)
	if pidfile != "" {
		writeFile(pidfile, fmt.Sprintf("%d %d\n", os.Getpid(), os.Getppid()))
	}
	fmt.Println("ignoring SIGTERM")
	fmt.Println("PRISM iter=0") // ready: a test's rule may act now
	return sleepThen(d, 0)
}

// rlimitList are the rlimits the child reports, by prism-run's names.
func rlimitList() []struct {
	name string
	res  int
} {
	return []struct {
		name string
		res  int
	}{{"as", syscall.RLIMIT_AS}, {"nofile", syscall.RLIMIT_NOFILE}, {"nproc", 6}, {"core", syscall.RLIMIT_CORE},
		{"cpu_time", syscall.RLIMIT_CPU}, {"fsize", syscall.RLIMIT_FSIZE}}
}

func printRlimits() int {
	for _, r := range rlimitList() {
		var l syscall.Rlimit
		if err := syscall.Getrlimit(r.res, &l); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%s=%s:%s\n", r.name, limitString(l.Cur), limitString(l.Max))
	}
	return 0
}

func status() int {
	st, err := procfs.ReadStatus(procfs.Root, os.Getpid())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	nnp := 0
	if st.NoNewPrivs {
		nnp = 1
	}
	fmt.Printf("NoNewPrivs: %d\n", nnp)
	fmt.Printf("uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	return 0
}

func environ() int {
	env := os.Environ()
	sort.Strings(env)
	return printLines(os.Stdout, env)
}

func alloc(a margs) int {
	var hold [][]byte
	for i := 0; i < a.int(0); i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		hold = append(hold, b)
	}
	fmt.Printf("allocated %d MiB\n", len(hold))
	if len(a.list) > 1 {
		time.Sleep(a.dur(1))
	}
	return 0
}

func spawn(n int) int {
	started := 0
	for i := 0; i < n; i++ {
		if err := exec.Command("sleep", "300").Start(); err != nil {
			fmt.Printf("spawn %d: %v\n", i, err)
			break
		}
		started++
	}
	fmt.Printf("started %d of %d\n", started, n)
	return 0
}

func netifs() int {
	ifs, err := net.Interfaces()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, i := range ifs {
		fmt.Printf("%s up=%v\n", i.Name, i.Flags&net.FlagUp != 0)
	}
	return 0
}

// burn burns d of CPU time and says how long that took: under a CPU
// quota the wall time grows, and a busy machine can only make it grow
// further, so a test's lower bound on it cannot flake.
func burn(d time.Duration) int {
	// CPU time from here on: the process's clock also holds what its
	// start cost (the runtime, the test binary's package inits, more so
	// under -race and a loaded machine), which would shorten the burn and
	// make a CPU quota look unenforced.
	processCPU := func() time.Duration {
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_PROCESS_CPUTIME_ID, &ts)
		return time.Duration(ts.Nano())
	}
	start, cpu0 := time.Now(), processCPU()
	cpu := time.Duration(0)
	for x := 0; cpu < d; x++ {
		if x%(1<<16) == 0 {
			cpu = processCPU() - cpu0
		}
	}
	wall := time.Since(start)
	fmt.Printf("cpu=%.3f wall=%.3f cores=%.3f\n", cpu.Seconds(), wall.Seconds(), cpu.Seconds()/wall.Seconds())
	return 0
}

func env(keys []string) int {
	for _, k := range keys {
		v, ok := os.LookupEnv(k)
		if !ok {
			v = "<unset>"
		}
		fmt.Printf("%s=%s\n", k, v)
	}
	return 0
}

func limitString(v uint64) string {
	if v == ^uint64(0) {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

func writeFile(path, s string) {
	// Write then rename, so a test polling for the file never reads half.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.Rename(tmp, path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func signals(file string) int {
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	writeFile(file, fmt.Sprintf("%d %d\n", os.Getpid(), os.Getppid()))
	for sig := range ch {
		line := fmt.Sprintf("got %s\n", sigName(sig))
		fmt.Print(line)
		appendFile(file, line)
		if sig == syscall.SIGTERM {
			return 0
		}
	}
	return 1
}

func appendFile(path, s string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = f.WriteString(s)
		_ = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}

func sigName(s os.Signal) string {
	names := map[os.Signal]string{syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGTERM: "SIGTERM"}
	return names[s]
}

// checkpoint speaks the control protocol: each SIGUSR1 reads the last line
// of $PRISM_CONTROL and, in "ack" mode, writes a checkpoint file and prints
// the marker that acknowledges it.
func checkpoint(mode string, ch chan os.Signal) int {
	fmt.Println("PRISM iter=0")
	n := 0
	for sig := range ch {
		fmt.Printf("control: %s\n", lastLine(os.Getenv("PRISM_CONTROL")))
		switch {
		case sig == syscall.SIGTERM:
			fmt.Println("terminating")
			return 0
		case sig == syscall.SIGUSR1 && mode == "die":
			return 3
		case sig == syscall.SIGUSR1 && mode == "quit":
			return 0 // a handler that ends the program without checkpointing
		case sig == syscall.SIGUSR1 && mode == "ack":
			n++
			path := filepath.Join(os.Getenv("PRISM_CHECKPOINT_DIR"), fmt.Sprintf("ck-%d", n))
			writeFile(path, fmt.Sprintf("state %d\n", n))
			fmt.Printf("PRISM iter=%d checkpoint=%q\n", n, path)
		}
	}
	return 1
}

func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return lines[len(lines)-1]
}

// escape double-forks a daemon: the child starts the daemon in a new
// session and exits at once, as `setsid cmd &` or a classic daemonizing
// program does.
func escape(pidfile string) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cmd := exec.Command(self, "daemon", pidfile)
	cmd.Args[0] = filepath.Base(os.Args[0])
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Wait until the daemon is up, so the test knows its pid; then leave
	// it running and exit without waiting for it.
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(pidfile); err == nil {
			fmt.Println("daemon detached")
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 1
}

// enforced prints what the kernel enforces on this process, in the words
// of prism-run --dry-run, so a test can hold the two side by side.
func enforced() int {
	for _, r := range rlimitList() {
		var l syscall.Rlimit
		if err := syscall.Getrlimit(r.res, &l); err == nil {
			fmt.Printf("rlimit %s = %s\n", r.name, limitString(l.Cur))
		}
	}
	if h, err := limits.ReadHost(); err == nil {
		for _, f := range []struct{ ctl, name string }{
			{"memory", "memory.max"}, {"memory", "memory.high"}, {"cpu", "cpu.max"},
			{"memory", "memory.limit_in_bytes"}, {"memory", "memory.soft_limit_in_bytes"},
			{"cpu", "cpu.cfs_quota_us"}, {"cpu", "cpu.cfs_period_us"}, {"pids", "pids.max"},
		} {
			b, err := os.ReadFile(filepath.Join(h.OwnDir(f.ctl), f.name))
			if v := strings.TrimSpace(string(b)); err == nil && !unlimited(v) && !(f.name == "cpu.cfs_period_us" && cpuUnlimited(h)) {
				fmt.Printf("cgroup %s = %s\n", f.name, v)
			}
		}
	}
	if st, err := procfs.ReadStatus(procfs.Root, os.Getpid()); err == nil && st.NoNewPrivs {
		fmt.Println("isolation no_new_privs = set, and verified on the running child")
	}
	return 0
}

// unlimited says whether a cgroup file's value means "no limit": v2's
// "max" (cpu.max "max 100000" too), v1's -1, and v1's largest memory
// limit (PAGE_COUNTER_MAX pages).
func unlimited(v string) bool {
	return v == "max" || strings.HasPrefix(v, "max ") || v == "-1" || v == "9223372036854771712"
}

func cpuUnlimited(h limits.Host) bool {
	b, err := os.ReadFile(filepath.Join(h.OwnDir("cpu"), "cpu.cfs_quota_us"))
	return err != nil || strings.TrimSpace(string(b)) == "-1"
}
