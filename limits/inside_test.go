package limits

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A child forked through StartInside is in the run's v1 cgroups from its
// start (its /proc/PID/cgroup names them, the limit holds), and no thread
// of this process is left in them: the cgroup empties when the child is
// killed and is removed.
func TestStartInsideRealV1(t *testing.T) {
	h := realHost(t, ModeV1, "memory", "pids", "cpu")
	name := h.RunCgroupName("inside-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	cg, err := NewCgroup(h, name, CgroupSpec{Memory: 256 << 20, Pids: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = KillAndDelete(cg, realSleeper{}) })
	st, ok := cg.(Starter)
	if !ok || !st.CanStartInside() {
		t.Fatalf("a v1 cgroup with pids.max 8 should start inside (%T)", cg)
	}
	for round := 0; round < 20; round++ { // threads differ: each must leave
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := st.StartInside(cmd.Start); err != nil {
			t.Fatal(err)
		}
		own, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		v1, _ := OwnCgroups(own)
		for ctl, p := range cg.(*v1Cgroup).paths {
			if got := v1[ctl]; !strings.HasSuffix(got, "/"+name) || !strings.HasSuffix(p, got[strings.LastIndex(got, "/"):]) {
				t.Fatalf("round %d: the child's %s cgroup is %q, want the run's %q", round, ctl, got, p)
			}
		}
		if tids := ourThreadsIn(t, name); len(tids) > 0 {
			t.Fatalf("round %d: threads %v of this process are still in the run's cgroup", round, tids)
		}
		pids, err := cg.Procs()
		if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
			t.Fatalf("round %d: procs %v, %v, want only the child %d", round, pids, err, cmd.Process.Pid)
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	if err := KillAndDelete(cg, realSleeper{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range cg.ProcsFiles() {
		if _, err := os.Stat(filepath.Dir(f)); !os.IsNotExist(err) {
			t.Errorf("%s left behind", filepath.Dir(f))
		}
	}
}

// A pids limit of 1 cannot hold the forking thread and the child at once:
// such a cgroup says so, and the shim joins instead.
func TestStartInsideNotWithOnePid(t *testing.T) {
	c := &v1Cgroup{pidsMax: 1}
	if c.CanStartInside() {
		t.Fatal("pids.max 1: the forking thread would take the child's place")
	}
	if !(&v1Cgroup{pidsMax: 2}).CanStartInside() || !(&v1Cgroup{}).CanStartInside() {
		t.Fatal("pids.max 2 or none: StartInside works")
	}
}

// ourThreadsIn lists this process's threads whose cgroup path ends in name.
func ourThreadsIn(t *testing.T, name string) []string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, e := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc/self/task", e.Name(), "cgroup"))
		if err == nil && strings.Contains(string(b), "/"+name+"\n") {
			in = append(in, e.Name())
		}
	}
	return in
}

type realSleeper struct{}

func (realSleeper) Sleep(d time.Duration) { time.Sleep(d) }
