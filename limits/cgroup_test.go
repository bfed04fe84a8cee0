package limits

import (
	"bufio"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prism-run/prism-run/internal/procfs"
)

const mountinfoV1 = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

const mountinfoV2 = `22 1 0:21 / /proc rw,nosuid - proc proc rw
29 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

const mountinfoCombined = `35 31 0:32 /docker/abc /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
36 31 0:33 /docker/abc /sys/fs/cgroup/my\040memory rw,relatime - cgroup cgroup rw,memory
`

func TestDetectMode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		mode    Mode
		memory  string
		unified string
	}{
		{"v1 (hybrid: v1 controllers and an empty v2 mount)", mountinfoV1, ModeV1, "/sys/fs/cgroup/memory", "/sys/fs/cgroup/unified"},
		{"v2", mountinfoV2, ModeV2, "", "/sys/fs/cgroup"},
		{"combined controllers, escaped names, container root", mountinfoCombined, ModeV1, "/sys/fs/cgroup/my memory", ""},
		{"none", "22 1 0:21 / /proc rw - proc proc rw\n", ModeNone, "", ""},
		{"garbage", "not a mountinfo line\n\n - - -\n", ModeNone, "", ""},
	}
	for _, tt := range tests {
		h := DetectMode([]byte(tt.in))
		if h.Mode != tt.mode || h.V1["memory"].Point != tt.memory || h.Unified.Point != tt.unified {
			t.Errorf("%s: %+v", tt.name, h)
		}
	}
	h := DetectMode([]byte(mountinfoCombined))
	if h.V1["cpu"].Root != "/docker/abc" || h.V1["cpu"].Dir("/docker/abc/x") != "/sys/fs/cgroup/cpu,cpuacct/x" {
		t.Errorf("container root: %+v", h.V1["cpu"])
	}
}

func TestOwnCgroups(t *testing.T) {
	v1, v2 := OwnCgroups([]byte("9:name=systemd:/\n4:memory:/process_api/5402\n1:cpu,cpuacct:/\n0::/\n"))
	if v1["memory"] != "/process_api/5402" || v1["cpu"] != "/" || v1["cpuacct"] != "/" || v2 != "/" {
		t.Errorf("v1 %v v2 %q", v1, v2)
	}
	_, v2 = OwnCgroups([]byte("0::/user.slice/user-0.slice/session-1.scope\n"))
	if v2 != "/user.slice/user-0.slice/session-1.scope" {
		t.Errorf("v2 %q", v2)
	}
}

func TestRunCgroupNameAndOwner(t *testing.T) {
	h := Host{Self: procfs.Owner{NS: 4026531836, PID: 4242, Start: 99}}
	n := h.RunCgroupName("2026 run/1")
	if n != "prism-run.4026531836-4242-99-2026_run_1" {
		t.Errorf("name %q", n)
	}
	for name, want := range map[string]procfs.Owner{
		n:                               h.Self,
		"prism-run.supervisor-1-77-5":   {NS: 1, PID: 77, Start: 5},
		"prism-run-4242-20261129T0-abc": {}, // an older prism-run's name: no owner to judge
		"prism-run-supervisor-1-77-5":   {},
		"prism-run.x":                   {},
		"other":                         {},
	} {
		if o, ok := ownerOf(name); o != want || ok != (want.PID > 0) {
			t.Errorf("ownerOf(%q) = %+v %v", name, o, ok)
		}
	}
}

// An older prism-run (up to 0fe913d) swept every "prism-run-PID-..."
// cgroup whose PID (the first number) was not alive: it must find no pid
// in this version's names, or it would take a namespace number for a
// dead pid and kill a live run.
func TestOlderPrismRunCannotReadNewNames(t *testing.T) {
	oldOwnerPid := func(name string) (int, bool) { // its rule, verbatim
		rest, ok := strings.CutPrefix(name, "prism-run-")
		if !ok {
			return 0, false
		}
		if s, isLeaf := strings.CutPrefix(rest, "supervisor-"); isLeaf {
			rest = s
		}
		num, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(num)
		return pid, err == nil && pid > 0
	}
	h := Host{Self: procfs.Owner{NS: 4026531836, PID: 4242, Start: 99}}
	for _, name := range []string{h.RunCgroupName("r1"), leafPrefix + h.Self.String()} {
		if pid, ok := oldOwnerPid(name); ok {
			t.Errorf("an older prism-run reads pid %d out of %q", pid, name)
		}
	}
}

// fakeV2 lays out a cgroup2 file system in a folder: the mount with its
// controllers, and this process's cgroup below it.
func fakeV2(t *testing.T) (Host, string) {
	t.Helper()
	root := t.TempDir()
	own := "/system.slice/job.scope"
	for _, d := range []string{root, filepath.Join(root, own)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, v := range map[string]string{"cgroup.controllers": "cpuset cpu io memory pids\n", "cgroup.subtree_control": ""} {
			if err := os.WriteFile(filepath.Join(d, f), []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return Host{Hierarchy: Hierarchy{Mode: ModeV2, Unified: Mount{Point: root, Root: "/"}}, OwnV2: own}, filepath.Join(root, own)
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestV2AgainstAFakeTree(t *testing.T) {
	h, own := fakeV2(t)
	cg, err := NewCgroup(h, "prism-run.1-test", CgroupSpec{Memory: 1 << 30, MemoryHigh: 900 << 20, CPUs: 0.5, Pids: 64})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(own, "prism-run.1-test")
	if cg.Dir() != dir || cg.Path() != "/system.slice/job.scope/prism-run.1-test" || cg.Mode() != ModeV2 {
		t.Fatalf("cgroup at %s (%s)", cg.Dir(), cg.Path())
	}
	for f, want := range map[string]string{"memory.max": "1073741824", "memory.high": "943718400", "cpu.max": "50000 100000", "pids.max": "64"} {
		if got := read(t, filepath.Join(dir, f)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	// The controllers were enabled for the children of prism-run's cgroup.
	if sc := read(t, filepath.Join(own, "cgroup.subtree_control")); !strings.Contains(sc, "memory") || !strings.Contains(sc, "pids") || !strings.Contains(sc, "cpu") {
		t.Errorf("subtree_control %q", sc)
	}
	// What the kernel would report.
	for f, v := range map[string]string{"memory.current": "1000\n", "memory.peak": "5000\n", "memory.stat": "anon 1000\nfile 0\n",
		"memory.events": "low 0\nhigh 3\nmax 2\noom 1\noom_kill 1\n", "cgroup.procs": "11\n12\n"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	u, err := cg.Usage()
	if err != nil || u.MemoryCurrent != 1000 || u.MemoryPeak != 5000 || u.OOMKills != 1 {
		t.Errorf("usage %+v, %v", u, err)
	}
	if pids, err := cg.Procs(); err != nil || len(pids) != 2 || pids[0] != 11 {
		t.Errorf("procs %v, %v", pids, err)
	}
	if err := cg.Kill(); err != nil || read(t, filepath.Join(dir, "cgroup.kill")) != "1" {
		t.Errorf("kill: %v", err)
	}
	if pf := cg.ProcsFiles(); len(pf) != 1 || pf[0] != filepath.Join(dir, "cgroup.procs") {
		t.Errorf("procs files %v", pf)
	}
}

// Only a cgroup whose owner is provably gone is removed: one of this PID
// namespace whose owner's pid is free. A live owner's is kept, and so is
// one whose owner cannot be judged from here (another PID namespace, an
// older prism-run's name): it is listed as unknown.
func TestCleanStaleFakeTree(t *testing.T) {
	h, own := fakeV2(t)
	self, err := procfs.SelfOwner(procfs.Root)
	if err != nil {
		t.Fatal(err)
	}
	h.Self = self
	named := func(o procfs.Owner, runID string) string {
		hh := h
		hh.Self = o
		return filepath.Join(own, hh.RunCgroupName(runID))
	}
	dead := named(procfs.Owner{NS: self.NS, PID: deadPid(t), Start: 1}, "old")
	live := named(self, "now")
	reused := named(procfs.Owner{NS: self.NS, PID: os.Getpid(), Start: self.Start - 1}, "reused")
	otherNS := named(procfs.Owner{NS: self.NS + 1, PID: deadPid(t), Start: 1}, "inside")
	older := filepath.Join(own, "prism-run-99999-20261129T000000-abcdef")
	for _, d := range []string{dead, live, reused, otherNS, older} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removed, unknown, err := CleanStale(h)
	slices.Sort(removed)
	slices.Sort(unknown)
	want := []string{dead, reused}
	slices.Sort(want)
	if err != nil || !slices.Equal(removed, want) {
		t.Fatalf("removed %v, %v; want %v", removed, err, want)
	}
	wantUnknown := []string{otherNS, older}
	slices.Sort(wantUnknown)
	if !slices.Equal(unknown, wantUnknown) {
		t.Errorf("unknown %v, want %v", unknown, wantUnknown)
	}
	for _, d := range []string{live, otherNS, older} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed", d)
		}
	}
}

// deadPid returns the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	return cmd.Process.Pid
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
}

func realHost(t *testing.T, mode Mode, controllers ...string) Host {
	t.Helper()
	requireRoot(t)
	h, err := ReadHost()
	if err != nil {
		t.Skip(err)
	}
	if h.Hierarchy.Mode != mode {
		t.Skipf("cgroup %s not on this host (it has %s)", mode, h.Hierarchy.Mode)
	}
	if mode == ModeV1 {
		for _, c := range controllers {
			if _, ok := h.Hierarchy.V1[c]; !ok {
				t.Skipf("the %s controller is not mounted", c)
			}
		}
	}
	if mode == ModeV2 {
		ctl, err := os.ReadFile(filepath.Join(h.Hierarchy.Unified.Dir(h.OwnV2), "cgroup.controllers"))
		for _, c := range controllers {
			if err != nil || !strings.Contains(string(ctl), c) {
				t.Skipf("the %s controller is not delegated to this cgroup", c)
			}
		}
	}
	return h
}

// A real cgroup on this host: created under our own, limits written, a
// process joined, measured, killed, removed, nothing left.
func TestRealCgroup(t *testing.T) {
	for _, mode := range []Mode{ModeV1, ModeV2} {
		t.Run(mode.String(), func(t *testing.T) {
			h := realHost(t, mode, "memory", "pids", "cpu")
			name := h.RunCgroupName("test-" + strconv.FormatInt(time.Now().UnixNano(), 36))
			cg, err := NewCgroup(h, name, CgroupSpec{Memory: 256 << 20, MemoryHigh: 200 << 20, CPUs: 0.5, Pids: 32})
			if err != nil {
				t.Fatal(err)
			}
			deleted := false
			t.Cleanup(func() {
				if !deleted {
					_ = cg.Kill()
					_ = cg.Delete()
				}
			})
			// The limits are written where the kernel reads them.
			files := map[string]string{"memory.max": "268435456", "memory.high": "209715200", "cpu.max": "50000 100000", "pids.max": "32"}
			if mode == ModeV1 {
				files = map[string]string{"memory/memory.limit_in_bytes": "268435456", "memory/memory.soft_limit_in_bytes": "209715200",
					"cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.cfs_period_us": "100000", "pids/pids.max": "32"}
			}
			for f, want := range files {
				var p string
				if mode == ModeV1 {
					ctl, file, _ := strings.Cut(f, "/")
					p = filepath.Join(h.Hierarchy.V1[ctl].Point, cg.(*v1Cgroup).paths[ctl], file)
				} else {
					p = filepath.Join(cg.Dir(), f)
				}
				if got := read(t, p); got != want {
					t.Errorf("%s = %q, want %q", p, got, want)
				}
			}
			// A process that joins, then execs, as the shim does (v1 charges
			// memory to the cgroup a process is in when it allocates).
			cmd := exec.Command("sh", append([]string{"-c", `for f in "$@"; do echo $$ > "$f"; done; exec sleep 60`, "sh"}, cg.ProcsFiles()...)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var pids []int
			for i := 0; i < 500 && len(pids) == 0; i++ {
				time.Sleep(10 * time.Millisecond)
				pids, err = cg.Procs()
			}
			if err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
				t.Fatalf("procs %v, %v", pids, err)
			}
			time.Sleep(50 * time.Millisecond) // let the exec happen
			u, err := cg.Usage()
			if err != nil || u.MemoryCurrent == 0 || u.CPU == 0 {
				t.Errorf("usage %+v, %v", u, err)
			}
			if err := cg.Kill(); err != nil {
				t.Fatal(err)
			}
			err = cmd.Wait()
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Errorf("sleep ended with %v, want SIGKILL", err)
			}
			for round := 0; round < 100; round++ {
				if err = cg.Delete(); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			deleted = true
			for _, f := range cg.ProcsFiles() {
				if _, err := os.Stat(filepath.Dir(f)); !os.IsNotExist(err) {
					t.Errorf("%s left behind", filepath.Dir(f))
				}
			}
		})
	}
}

// A cgroup left by a prism-run that was SIGKILLed, with a process still
// in it, is emptied and removed at the next start.
func TestCleanStaleReal(t *testing.T) {
	h := realHost(t, ModeV1, "memory", "pids")
	if h.Hierarchy.Mode == ModeNone {
		t.Skip()
	}
	gone := h
	gone.Self.PID, gone.Self.Start = deadPid(t), 1
	cg, err := NewCgroup(h, gone.RunCgroupName("stale"), CgroupSpec{Pids: 10})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", append([]string{"-c", `for f in "$@"; do echo $$ > "$f"; done; exec sleep 60`, "sh"}, cg.ProcsFiles()...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	for i := 0; i < 500; i++ {
		if pids, _ := cg.Procs(); len(pids) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// (A prism-run of another package's tests, running at the same time,
	// may clean it first: it runs the same CleanStale at its start. What
	// matters is the end state below.)
	if _, _, err := CleanStale(h); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the process in the stale cgroup was not killed")
	}
	for _, f := range cg.ProcsFiles() {
		if _, err := os.Stat(filepath.Dir(f)); !os.IsNotExist(err) {
			t.Errorf("%s still there", filepath.Dir(f))
		}
	}
}

// hybridV2 is the cgroup2 mount of a hybrid host (controllers on v1, an
// empty unified hierarchy beside them, as on this project's CI machine),
// taken as a v2 host: no controllers, so no limits, but the rest of v2 is
// real: nested cgroups, CLONE_INTO_CGROUP, cgroup.procs, cgroup.kill.
func hybridV2(t *testing.T) Host {
	t.Helper()
	requireRoot(t)
	h, err := ReadHost()
	if err != nil {
		t.Skip(err)
	}
	if h.Hierarchy.Mode != ModeV1 || h.Hierarchy.Unified.Point == "" {
		t.Skipf("not a hybrid host (mode %s): TestRealCgroup/v2 covers a v2 one", h.Hierarchy.Mode)
	}
	return Host{Hierarchy: Hierarchy{Mode: ModeV2, Unified: h.Hierarchy.Unified}, OwnV2: h.OwnV2, Self: h.Self}
}

// The v2 code for real, controllers aside: a child cloned straight into
// the cgroup (clone3 CLONE_INTO_CGROUP, as the supervisor starts it), its
// processes listed, the whole cgroup killed through cgroup.kill, removed.
func TestRealV2WithoutControllers(t *testing.T) {
	h := hybridV2(t)
	name := h.RunCgroupName("v2-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	cg, err := NewCgroup(h, name, CgroupSpec{})
	if err != nil {
		t.Skipf("cannot create a cgroup in the unified hierarchy here: %v", err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			_ = cg.Kill()
			_ = cg.Delete()
		}
	})
	dir, err := os.Open(cg.Dir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	// A shell that says where it is, then waits on two background
	// sleeps: three processes to kill.
	cmd := exec.Command("sh", "-c", "grep ^0:: /proc/self/cgroup; sleep 60 & sleep 60 & wait")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the child's cgroup line: %v", err)
	}
	// The child was in the run's cgroup (grep, its child, inherits it).
	if want := "0::" + path.Join(relTo(h.Hierarchy.Unified, h.OwnV2), name) + "\n"; line != want {
		t.Errorf("/proc/self/cgroup = %q, want %q", line, want)
	}
	var pids []int
	for i := 0; i < 500 && len(pids) < 3; i++ {
		time.Sleep(10 * time.Millisecond)
		pids, err = cg.Procs()
	}
	if err != nil || len(pids) < 3 {
		t.Fatalf("procs %v, %v; want the shell and two sleeps", pids, err)
	}
	if _, err := cg.Usage(); err != nil {
		t.Errorf("usage without a memory controller: %v", err)
	}
	if err := cg.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the shell ended with %v, want SIGKILL", cmd.ProcessState)
	}
	for i := 0; i < 100; i++ {
		if err = cg.Delete(); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("delete: %v (procs left: %v)", err, pids)
	}
	deleted = true
	if _, err := os.Stat(cg.Dir()); !os.IsNotExist(err) {
		t.Errorf("%s left behind", cg.Dir())
	}
}

// A limit the kernel refuses at creation (a CPU quota above the parent's)
// leaves none of the cgroup's folders behind: those made before the
// refused write are removed.
func TestRefusedLimitLeavesNothing(t *testing.T) {
	h := realHost(t, ModeV1, "memory", "cpu")
	if h.Hierarchy.Mode == ModeNone {
		t.Skip()
	}
	// A parent whose quota is 0.5 core: a child of it may not have 1.
	parent := filepath.Join(h.OwnDir("cpu"), "prism-test-parent-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Mkdir(parent, 0o755); err != nil {
		t.Skip(err)
	}
	defer func() { _ = syscall.Rmdir(parent) }()
	if err := os.WriteFile(filepath.Join(parent, "cpu.cfs_quota_us"), []byte("50000"), 0); err != nil {
		t.Skip(err)
	}
	hh := h
	rel, _ := filepath.Rel(h.Hierarchy.V1["cpu"].Point, parent)
	hh.OwnV1 = map[string]string{}
	for c, p := range h.OwnV1 {
		hh.OwnV1[c] = p
	}
	hh.OwnV1["cpu"], hh.OwnV1["cpuacct"] = "/"+rel, "/"+rel
	name := hh.RunCgroupName("refused")
	if _, err := NewCgroup(hh, name, CgroupSpec{CPUs: 1, Memory: 64 << 20}); err == nil {
		t.Fatal("a quota above the parent's was accepted")
	}
	for _, c := range []string{"memory", "cpu"} {
		if _, err := os.Stat(filepath.Join(hh.OwnDir(c), name)); err == nil {
			t.Errorf("the %s folder of a refused cgroup was left", c)
		}
	}
}

func TestSlurmStep(t *testing.T) {
	for own, want := range map[string]bool{
		"/slurm/uid_0/job_2/step_batch":                      true,
		"/slurm_vm/uid_1000/job_17/step_0/task_0":            true,
		"/slurm/uid_0/job_2/step_extern":                     true,
		"/slurm/uid_0/job_2":                                 false, // the job, not a step
		"/":                                                  false,
		"/system.slice/slurmd.service":                       false,
		"/process_api/e7a2/prism-run.x":                      false,
		"/notslurm/uid_0/job_2/step_batch":                   false,
		"/slurm/uid_0/job_2/step_batch/prism-run.4026-1-2-r": true,
	} {
		if got := SlurmStep(own); got != want {
			t.Errorf("SlurmStep(%q) = %v, want %v", own, got, want)
		}
	}
}

// Inside a Slurm step's freezer cgroup the run's cgroup nests in every
// controller but the freezer, so Slurm still finds the run's processes
// in its step's freezer cgroup.procs; the run is still killed and
// removed whole (a kill loop). Real v1, with a step's cgroup made here.
func TestV1InsideASlurmStep(t *testing.T) {
	h := realHost(t, ModeV1, "freezer", "memory")
	fm := h.Hierarchy.V1["freezer"]
	step := path.Join(relTo(fm, h.OwnV1["freezer"]), "slurm_test"+strconv.Itoa(os.Getpid()), "uid_0", "job_7", "step_batch")
	top := filepath.Join(fm.Point, path.Dir(path.Dir(path.Dir(step))))
	if err := os.MkdirAll(filepath.Join(fm.Point, step), 0o755); err != nil {
		t.Skipf("cannot make a freezer cgroup: %v", err)
	}
	t.Cleanup(func() {
		for d := filepath.Join(fm.Point, step); len(d) >= len(top); d = filepath.Dir(d) {
			_ = os.Remove(d)
		}
	})
	h.OwnV1["freezer"] = "/" + strings.TrimPrefix(step, "/")
	if !SlurmStep(h.OwnV1["freezer"]) {
		t.Skipf("%s is not read as a step (this host's own freezer cgroup is not the root)", h.OwnV1["freezer"])
	}
	cg, err := NewCgroup(h, h.RunCgroupName("slurmtest"), CgroupSpec{Memory: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	v1 := cg.(*v1Cgroup)
	if _, ok := v1.dirs["freezer"]; ok {
		t.Fatalf("a freezer cgroup was nested in the Slurm step's: %s", v1.dirs["freezer"])
	}
	if _, ok := v1.dirs["memory"]; !ok {
		t.Fatal("no memory cgroup")
	}
	cmd := exec.Command("sh", append([]string{"-c", `for f in "$@"; do echo $$ > "$f"; done; exec sleep 60`, "sh"}, cg.ProcsFiles()...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		if pids, _ := cg.Procs(); len(pids) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := KillAndDelete(cg, realSleeper{}); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat(v1.dirs["memory"]); !os.IsNotExist(err) {
		t.Errorf("%s left behind", v1.dirs["memory"])
	}
}
