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

// A CPU quota would throttle the forking thread with the child's work:
// such a cgroup says so, and the shim joins instead.
func TestStartInsideNotWithACPUQuota(t *testing.T) {
	if (&v1Cgroup{cpuQuota: true}).CanStartInside() {
		t.Fatal("a CPU quota: the forking thread would be throttled by the child")
	}
	if !(&v1Cgroup{pidsMax: 1}).CanStartInside() {
		t.Fatal("a pids limit alone: StartInside works")
	}
}

// The forking thread never takes one of the child's pids: under pids.max
// 2 a child that forks while the thread is still inside (start returns
// only once the child has forked) can, and pids.max is back at 2 after.
// (Before, in prism-run, one start in three failed with "Cannot fork".)
func TestStartInsideKeepsEveryPid(t *testing.T) {
	h := realHost(t, ModeV1, "pids")
	name := h.RunCgroupName("pids-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	cg, err := NewCgroup(h, name, CgroupSpec{Pids: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = KillAndDelete(cg, realSleeper{}) })
	cmd := exec.Command("sh", "-c", "/bin/true; echo forked:$?")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var line string
	err = cg.(Starter).StartInside(func() error {
		if err := cmd.Start(); err != nil {
			return err
		}
		b := make([]byte, 64)
		n, _ := out.Read(b)
		line = strings.TrimSpace(string(b[:n]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if line != "forked:0" {
		t.Fatalf("the child's fork while prism-run's thread was in its cgroup: %q, want forked:0", line)
	}
	if got := strings.TrimSpace(read(t, filepath.Join(cg.(*v1Cgroup).dirs["pids"], "pids.max"))); got != "2" {
		t.Fatalf("pids.max is %s after the start, want 2", got)
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
