package limits

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseOOMKill(t *testing.T) {
	tests := []struct {
		name string
		msg  string
		want OOMKill
		ok   bool
	}{
		{"a memory cgroup's limit (this machine's kernel, 6.18)",
			"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/process_api/3d78/prism-run-9040-20261127T200745-02cf3d,task_memcg=/process_api/3d78/prism-run-9040-20261127T200745-02cf3d,task=stress-ng-vm,pid=9113,uid=0",
			OOMKill{PID: 9113, Task: "stress-ng-vm", Cgroup: "/process_api/3d78/prism-run-9040-20261127T200745-02cf3d"}, true},
		{"commas in mems_allowed and in the task's name",
			"oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,2,global_oom,task_memcg=/user.slice,task=a,b,pid=42,uid=1000",
			OOMKill{PID: 42, Task: "a,b", Cgroup: "/user.slice"}, true},
		{"the older line without the summary", "Killed process 9273 (stress-ng-vm) total-vm:572928kB", OOMKill{}, false},
		{"anything else", "eth0: link up", OOMKill{}, false},
		{"a pid that is not a number", "oom-kill:task_memcg=/,task=x,pid=99999999999999999999,uid=0", OOMKill{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseOOMKill(tt.msg)
			if ok != tt.ok || got != tt.want {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestOOMKillInCgroup(t *testing.T) {
	k := OOMKill{Cgroup: "/kubepods/pod1/prism-run-7-abc"}
	below := OOMKill{Cgroup: "/slurm/job_3/prism-run-7-abc/worker"}
	for _, tt := range []struct {
		k    OOMKill
		name string
		want bool
	}{
		{k, "prism-run-7-abc", true},
		{below, "prism-run-7-abc", true},
		{k, "prism-run-7-ab", false},                                  // a prefix of the name is another cgroup
		{OOMKill{Cgroup: "/kubepods/pod1"}, "prism-run-7-abc", false}, // the parent's kill is not the run's
		{k, "", false},
	} {
		if got := tt.k.InCgroup(tt.name); got != tt.want {
			t.Errorf("%q in %q = %v, want %v", tt.k.Cgroup, tt.name, got, tt.want)
		}
	}
}

// The real kernel log: a process OOM-killed in a real cgroup is named,
// with its pid and the cgroup, and what happened before opening is not.
func TestKernelLogReal(t *testing.T) {
	requireRoot(t)
	host, err := ReadHost()
	if err != nil || host.Hierarchy.Mode == ModeNone {
		t.Skipf("no cgroups here: %v", err)
	}
	h := realHost(t, host.Hierarchy.Mode, "memory")
	kl, err := OpenKernelLog("/dev/kmsg")
	if err != nil {
		t.Skipf("the kernel log cannot be read here: %v", err)
	}
	defer kl.Close()
	if stale := kl.OOMKills(); len(stale) != 0 {
		t.Errorf("kills from before the log was opened: %+v", stale)
	}
	name := h.RunCgroupName("kmsg-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	cg, err := NewCgroup(h, name, CgroupSpec{Memory: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cg.Kill()
		for i := 0; i < 100 && cg.Delete() != nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	})
	// tail keeps a line that never ends in memory: it grows past the limit
	// and the kernel kills it. The shell joins the cgroup first (as the
	// shim does). The kernel rate-limits the line that names the cgroup
	// (10 per 5 s, host-wide: another test's OOM storm can use them up),
	// so a round that names nothing is tried again after the interval.
	script := `for f in "$@"; do echo $$ > "$f"; done; head -c 1073741824 /dev/zero | tail; echo "tail: $?"`
	var ours []OOMKill
	var out []byte
	for round := 0; round < 3 && len(ours) == 0; round++ {
		if round > 0 {
			time.Sleep(5 * time.Second)
		}
		cmd := exec.Command("sh", append([]string{"-c", script, "sh"}, cg.ProcsFiles()...)...)
		out, _ = cmd.CombinedOutput()
		for i := 0; i < 50 && len(ours) == 0; i++ {
			for _, k := range kl.OOMKills() {
				if k.InCgroup(name) {
					ours = append(ours, k)
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(ours) == 0 {
		t.Fatalf("no OOM kill logged in %s (shell said %q)", name, out)
	}
	if ours[0].Task != "tail" || ours[0].PID <= 0 {
		t.Errorf("victim %+v, want tail with its pid", ours[0])
	}
	if !strings.Contains(string(out), "tail: 137") {
		t.Errorf("tail was not SIGKILLed: %q", out)
	}
}
