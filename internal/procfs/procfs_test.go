package procfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	long := "42 (sleep) S 7 42 42 0 -1 4194560 97 0 0 0 0 0 0 0 20 0 1 0 123456 5558272 196 18446744073709551615"
	tests := []struct {
		line string
		want Stat
		ok   bool
	}{
		{"42 (sleep) S 7 42 42 0", Stat{PID: 42, PPID: 7, PGRP: 42, State: 'S'}, true},
		{long, Stat{PID: 42, PPID: 7, PGRP: 42, State: 'S', StartTime: 123456}, true},
		{"43 (a b) c)) Z 1 1 1", Stat{PID: 43, PPID: 1, PGRP: 1, State: 'Z'}, true},
		{"44 (x) R", Stat{}, false},
		{"garbage", Stat{}, false},
		{"(x) S 1", Stat{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseStat([]byte(tt.line))
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseStat(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// The real /proc: this process, its parent and its start time.
func TestReadStatReal(t *testing.T) {
	s, err := ReadStat(Root, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.PPID != os.Getppid() || s.StartTime == 0 || s.Dead() {
		t.Errorf("ReadStat(self) = %+v, want ppid %d and a start time", s, os.Getppid())
	}
	if _, err := ReadStat(Root, 1<<22+1); err == nil {
		t.Error("a pid above pid_max was read")
	}
}

// FakeTree writes a proc tree under a temporary root: pid -> "ppid state".
func fakeTree(t *testing.T, procs map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, rest := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var ppid int
		var state string
		if _, err := fmt.Sscan(rest, &ppid, &state); err != nil {
			t.Fatal(err)
		}
		line := strconv.Itoa(pid) + " (p " + strconv.Itoa(pid) + ") " + state + " " + strconv.Itoa(ppid) + " 0 0\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Entries that are not processes are skipped.
	_ = os.MkdirAll(filepath.Join(root, "self"), 0o755)
	_ = os.MkdirAll(filepath.Join(root, "999"), 0o755) // vanished: no stat
	return root
}

func TestLiveDescendants(t *testing.T) {
	root := fakeTree(t, map[int]string{
		1:  "0 S",
		10: "1 S",  // prism-run
		11: "10 S", // main child
		12: "11 S", // its child
		13: "12 Z", // a zombie grandchild: dead
		14: "10 S", // an orphan reparented to prism-run
		15: "14 R",
		20: "1 S", // unrelated
		21: "20 S",
	})
	procs, err := List(root)
	if err != nil {
		t.Fatal(err)
	}
	got := LiveDescendants(procs, 10)
	slices.Sort(got)
	if want := []int{11, 12, 14, 15}; !slices.Equal(got, want) {
		t.Errorf("LiveDescendants = %v, want %v", got, want)
	}
	if got := LiveDescendants(procs, 21); len(got) != 0 {
		t.Errorf("a leaf has descendants %v", got)
	}
	if !IsDead(root, 13) || IsDead(root, 12) || !IsDead(root, 999) {
		t.Error("IsDead: want the zombie and the vanished dead, the sleeper alive")
	}
}

func TestLiveDescendantsSurvivesCycles(t *testing.T) {
	procs := []Stat{{PID: 1, PPID: 2, State: 'S'}, {PID: 2, PPID: 1, State: 'S'}, {PID: 3, PPID: 1, State: 'S'}}
	got := LiveDescendants(procs, 1)
	slices.Sort(got)
	if !slices.Equal(got, []int{2, 3}) {
		t.Errorf("got %v", got)
	}
}

func TestStatusMasks(t *testing.T) {
	root := t.TempDir()
	write := func(pid int, status string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// SIGUSR1 is signal 10: bit 9, 0x200.
	write(1, "Name:\tpython3\nNoNewPrivs:\t1\nSigBlk:\t0000000000000000\nSigIgn:\t0000000001001000\nSigCgt:\t0000000000000002\n")
	write(2, "Name:\tpython3\nNoNewPrivs:\t0\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000202\n")
	write(3, "SigBlk:\t0000000000000200\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n")
	write(4, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000200\nSigCgt:\t0000000000000000\n")
	write(5, "SigBlk:\tzz\nSigIgn:\t0\nSigCgt:\t0\n")
	write(6, "Name:\tx\n")
	tests := []struct {
		pid                 int
		ok, survives, catch bool
		nnp, hasNNP         bool
	}{
		{1, true, false, false, true, true},  // only SIGINT caught: SIGUSR1 would kill it
		{2, true, true, true, false, true},   // caught: the one that acts on it
		{3, true, true, false, false, false}, // blocked
		{4, true, true, false, false, false}, // ignored
		{5, false, false, false, false, false},
		{6, false, false, false, false, false},
		{7, false, false, false, false, false}, // gone
	}
	for _, tt := range tests {
		s, err := ReadStatus(root, tt.pid)
		if (err == nil) != tt.ok {
			t.Errorf("pid %d: err %v, want ok=%v", tt.pid, err, tt.ok)
			continue
		}
		if s.Survives(unix.SIGUSR1) != tt.survives || s.Catches(unix.SIGUSR1) != tt.catch {
			t.Errorf("pid %d: survives=%v catches=%v, want %v %v", tt.pid, s.Survives(unix.SIGUSR1), s.Catches(unix.SIGUSR1), tt.survives, tt.catch)
		}
		if s.NoNewPrivs != tt.nnp || s.HasNoNewPrivs != tt.hasNNP {
			t.Errorf("pid %d: no_new_privs %v/%v, want %v/%v", tt.pid, s.NoNewPrivs, s.HasNoNewPrivs, tt.nnp, tt.hasNNP)
		}
	}
}

// An owner is judged only in its own PID namespace: gone when its pid is
// free or taken by a process that started at another time.
func TestOwnerGone(t *testing.T) {
	self, err := SelfOwner(Root)
	if err != nil {
		t.Fatal(err)
	}
	if o, rest, ok := ParseOwner(self.String() + "-run-1"); !ok || o != self || rest != "run-1" {
		t.Fatalf("ParseOwner(%q) = %+v %q %v", self.String()+"-run-1", o, rest, ok)
	}
	tests := []struct {
		name           string
		o              Owner
		gone, provable bool
	}{
		{"itself", self, false, true},
		{"its pid, reused later", Owner{self.NS, self.PID, self.Start + 1}, true, true},
		{"a pid nobody has", Owner{self.NS, 1<<22 + 5, 1}, true, true},
		{"another PID namespace", Owner{self.NS + 1, self.PID, self.Start}, false, false},
		{"another namespace, a free pid", Owner{self.NS + 1, 1<<22 + 5, 1}, false, false},
	}
	for _, tt := range tests {
		gone, provable := tt.o.Gone(Root, self)
		if gone != tt.gone || provable != tt.provable {
			t.Errorf("%s: gone %v provable %v, want %v %v", tt.name, gone, provable, tt.gone, tt.provable)
		}
	}
	for _, bad := range []string{"", "1-2", "x-2-3", "1-0-3", "1-2-y-z"} {
		if _, _, ok := ParseOwner(bad); ok {
			t.Errorf("ParseOwner(%q) accepted", bad)
		}
	}
}

// The kernel's child lists give the same tree as a walk of every process:
// a shell, its two background children, and nothing of anyone else's.
func TestDescendantsReal(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 30 & echo ready; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if _, err := out.Read(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := Descendants(Root, os.Getpid())
	if !ok {
		t.Skip("this kernel has no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)")
	}
	if err != nil {
		t.Fatal(err)
	}
	all, err := List(Root)
	if err != nil {
		t.Fatal(err)
	}
	want := LiveDescendants(all, os.Getpid())
	var pids []int
	for _, s := range got {
		pids = append(pids, s.PID)
	}
	slices.Sort(pids)
	slices.Sort(want)
	if !slices.Equal(pids, want) || len(pids) < 3 {
		t.Fatalf("Descendants %v, a walk of every process %v (want the shell and its two sleeps)", pids, want)
	}
}

// SignalFate over a fake /proc: a signal a thread blocks is safe only
// when something takes it off the queue (a signalfd, another thread's
// sigwait); otherwise it kills once unblocked (a shell blocks signals
// for a moment around fork and wait: a checkpoint request sent then
// killed it).
func TestSignalFateBlocked(t *testing.T) {
	usr1 := fmt.Sprintf("%016x", SigBit(unix.SIGUSR1))
	status := func(blk string) string {
		return "Name:\tx\nSigBlk:\t" + blk + "\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n"
	}
	cases := []struct {
		name         string
		blk, sigmask string // the thread's SigBlk; a signalfd's mask ("" none)
		safe, acts   bool
	}{
		{"blocked, nobody takes it: dies when unblocked", usr1, "", false, false},
		{"blocked, read from a signalfd", usr1, usr1, true, false},
		{"blocked, a signalfd for another signal", usr1, fmt.Sprintf("%016x", SigBit(unix.SIGUSR2)), false, false},
		{"not blocked, not caught: dies", "0000000000000000", "", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			write := func(rel, body string) {
				p := filepath.Join(root, rel)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("7/status", status(c.blk))
			write("7/task/7/status", status(c.blk))
			write("7/task/7/syscall", "61 0x0 0x0 0x0 0x0 0x0 0x0 0x7ffc 0x7f00\n") // wait4
			if c.sigmask != "" {
				write("7/fdinfo/3", "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nsigmask:\t"+c.sigmask+"\n")
			}
			safe, acts, ok := SignalFate(root, 7, unix.SIGUSR1)
			if !ok || safe != c.safe || acts != c.acts {
				t.Fatalf("SignalFate = safe %v acts %v ok %v, want %v %v true", safe, acts, ok, c.safe, c.acts)
			}
		})
	}
}
