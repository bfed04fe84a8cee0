package plan

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
)

func resolve(t *testing.T, src string) *policies.Resolved {
	t.Helper()
	p, err := policies.Parse("p.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r, err := policies.Resolve(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fakeV1 is a v1 host whose cgroup folders are in a temporary folder.
func fakeV1(t *testing.T, euid int) Host {
	t.Helper()
	root := t.TempDir()
	h := limits.Host{Hierarchy: limits.Hierarchy{Mode: limits.ModeV1, V1: map[string]limits.Mount{}}, OwnV1: map[string]string{}}
	for _, c := range []string{"memory", "cpu", "pids"} {
		dir := filepath.Join(root, c)
		if err := os.MkdirAll(filepath.Join(dir, "job"), 0o755); err != nil {
			t.Fatal(err)
		}
		h.Hierarchy.V1[c] = limits.Mount{Point: dir, Root: "/"}
		h.OwnV1[c] = "/job"
	}
	return Host{EUID: euid, Cgroups: h}
}

func TestGaps(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		host   Host
		want   []string // settings not enforced
	}{
		{"root, everything", "[isolation]\nisolate_net = true\nno_new_privs = true\n[limits]\nmemory = \"1GiB\"\n", fakeV1(t, 0), nil},
		{"a user: no network namespace", "[isolation]\nisolate_net = true\nno_new_privs = true\n", fakeV1(t, 1000), []string{"isolation.isolate_net"}},
		{"no cgroup file system", "[limits]\npids = 10\n", Host{EUID: 0}, []string{"limits.pids"}},
		{"no cgroup, no limits asked", "[limits]\nnofile = 10\n", Host{EUID: 0}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(resolve(t, tt.policy), Request{}, tt.host)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, g := range p.Gaps {
				got = append(got, g.Setting)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("gaps %v, want %v", p.Gaps, tt.want)
			}
			if p.Refusal() != nil {
				t.Errorf("a plan that is not strict refuses: %v", p.Refusal())
			}
		})
	}
}

func TestStrictRefusesEveryGap(t *testing.T) {
	pol := resolve(t, "strict = true\n[isolation]\nisolate_net = true\n[limits]\nmemory = \"1GiB\"\n")
	p, err := New(pol, Request{}, Host{EUID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Refusal()
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("refusal %v", err)
	}
	for _, want := range []string{"isolation.isolate_net", "limits.memory", "a network namespace needs root", "no cgroup file system"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not name %q", err, want)
		}
	}
}

// --user as su and Docker read it: ids, the user's groups and home; a
// number outside uid_t, or an unknown name, is refused.
func TestLookupUser(t *testing.T) {
	tests := []struct {
		in       string
		uid, gid int
		env      string // HOME=... when the user database knows the user
		bad      bool
	}{
		{in: "0:0", uid: 0, gid: 0, env: "HOME=/root USER=root LOGNAME=root"},
		{in: "root", uid: 0, gid: 0, env: "HOME=/root USER=root LOGNAME=root"},
		{in: "4000", uid: 4000, gid: 4000, env: "HOME=/"}, // a container's user: no entry
		{in: "4000:5", uid: 4000, gid: 5, env: "HOME=/"},
		{in: "no-such-user-xyz", bad: true},
		{in: "-1", bad: true},
		{in: "4294967295", bad: true}, // (uid_t)-1: "no change"
		{in: "99999999999", bad: true},
		{in: "0:-1", bad: true},
	}
	for _, tt := range tests {
		u, err := lookupUser(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrInput) {
				t.Errorf("%s: %v, want refused", tt.in, err)
			}
			continue
		}
		if err != nil || *u.uid != tt.uid || *u.gid != tt.gid || strings.Join(u.env, " ") != tt.env {
			t.Errorf("%s -> %v %v %q %v", tt.in, u.uid, u.gid, u.env, err)
		}
	}
}

func TestRequests(t *testing.T) {
	pol := resolve(t, "[limits]\nnofile = 64\ncpu_time = \"1500ms\"\n")
	p, err := New(pol, Request{GPUs: "0, 2", Env: []string{"A=1"}}, Host{})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rlimits) != 2 || p.Rlimits[1].Name != "cpu_time" || p.Rlimits[1].Cur != 2 {
		t.Errorf("rlimits %+v (cpu_time rounds up to whole seconds)", p.Rlimits)
	}
	if len(p.GPUs) != 2 || strings.Join(p.KeepEnv, " ") != "A=1 CUDA_VISIBLE_DEVICES=0,2" {
		t.Errorf("gpus %v, env %v", p.GPUs, p.KeepEnv)
	}
	for _, bad := range []string{"0,x", "-1", "0,0", "1, 2,1", "GPU-5a1b", "0-3"} {
		if _, err := New(pol, Request{GPUs: bad}, Host{}); !errors.Is(err, ErrInput) {
			t.Errorf("--gpus %s: %v", bad, err)
		}
	}
	// A scheduler's allocation (CUDA_VISIBLE_DEVICES=2,3) is never
	// widened; within it, a choice narrows it.
	alloc := "2,3"
	slurm := Host{CUDAVisible: &alloc}
	if _, err := New(pol, Request{GPUs: "0"}, slurm); !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "not among this job's") {
		t.Errorf("--gpus 0 outside 2,3: %v", err)
	}
	if p, err := New(pol, Request{GPUs: "3"}, slurm); err != nil || strings.Join(p.KeepEnv, " ") != "CUDA_VISIBLE_DEVICES=3" {
		t.Errorf("--gpus 3 within 2,3: %v", err)
	}
	if _, err := New(pol, Request{GPUs: "1", Env: []string{"CUDA_VISIBLE_DEVICES=0"}}, Host{}); !errors.Is(err, ErrInput) {
		t.Errorf("--gpus with --env CUDA_VISIBLE_DEVICES: %v", err)
	}
	if all, err := New(pol, Request{GPUs: "all"}, Host{}); err != nil || all.GPUs != nil {
		t.Errorf("--gpus all: %v %v", all, err)
	}
	none, _ := New(pol, Request{GPUs: "none"}, Host{})
	if none.GPUs == nil || len(none.GPUs) != 0 {
		t.Errorf("--gpus none: %v", none.GPUs)
	}
}

// Every item a run is held to is a line of the dry run, and the cgroup
// items are the kernel files of the host's mode with the values the
// kernel shows.
func TestDescribeListsEveryEnforcedItem(t *testing.T) {
	pol := resolve(t, `
[limits]
memory = "64MiB"
memory_high = "48MiB"
cpus = 0.5
pids = 50
core = "0"
[isolation]
no_new_privs = true
[[rule]]
name = "slow"
kind = "threshold"
metric = "latency_ms"
above = 5
action = "degrade"
what = "reduce-precision"
escalate = "stop"
escalate_after = "30s"
`)
	p, err := New(pol, Request{User: "65534:65534", GPUs: "1"}, fakeV1(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := p.Describe(&out, []string{"flags"}, []string{"sh", "-c", "echo 'a b'"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`# would run: sh -c 'echo '\''a b'\'''`,
		"#   rule slow = threshold, medium -> degrade reduce-precision, then stop after 30s",
		"#   rlimit core = 0",
		"#   cgroup memory.limit_in_bytes = 67108864",
		"#   cgroup memory.soft_limit_in_bytes = 50331648",
		"#   cgroup cpu.cfs_quota_us = 50000",
		"#   cgroup cpu.cfs_period_us = 100000",
		"#   cgroup pids.max = 50",
		"#   isolation no_new_privs = set, and verified on the running child",
		"#   user uid:gid = 65534:65534",
		"#   gpus CUDA_VISIBLE_DEVICES = 1",
		"#   timing kill_after = 10s",
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("dry run lacks %q:\n%s", want, out.String())
		}
	}
	for _, e := range p.Enforced() {
		if !strings.Contains(out.String(), "#   "+e.String()+"\n") {
			t.Errorf("enforced item %q is not in the dry run", e)
		}
	}
}

// What a run would refuse or miss is known to the plan, so --dry-run says
// it too: another user without root, GPU rules with GPU sampling off, an
// rlimit above what the host allows; and asking for the user prism-run
// already is changes nothing.
func TestPlanKnowsWhatARunWouldMeet(t *testing.T) {
	gpuRule := resolve(t, "strict = true\n[[rule]]\nname = \"g\"\nkind = \"threshold\"\nmetric = \"gpu_util\"\nbelow = 0.5\n")
	p, err := New(gpuRule, Request{GPUs: "none", User: "65534"}, Host{EUID: 1000, EGID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range p.Gaps {
		got = append(got, g.Setting)
	}
	if strings.Join(got, "; ") != "--user; the policy's GPU rules" || p.Refusal() == nil {
		t.Errorf("gaps %v, refusal %v", p.Gaps, p.Refusal())
	}
	same, err := New(resolve(t, ""), Request{User: "1000:1000"}, Host{EUID: 1000, EGID: 1000})
	if err != nil || same.UID != nil || len(same.Gaps) != 0 {
		t.Errorf("--user as oneself: uid %v, gaps %v, %v", same.UID, same.Gaps, err)
	}
	_, err = New(resolve(t, "[limits]\nnofile = 2000000\n"), Request{}, Host{NrOpen: 1048576})
	if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), "fs.nr_open (1048576)") {
		t.Errorf("nofile above nr_open: %v", err)
	}
}

// A user named in the group database's member lists gets those groups as
// supplementary groups, as su and sudo give them (initgroups(3)).
func TestLookupUserGroups(t *testing.T) {
	b, err := os.ReadFile("/etc/group")
	if err != nil {
		t.Skip(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) != 4 || f[3] == "" {
			continue
		}
		member := strings.Split(f[3], ",")[0]
		gid, _ := strconv.Atoi(f[2])
		u, err := lookupUser(member)
		if err != nil {
			continue // a member with no passwd entry
		}
		if *u.gid != gid && !slices.Contains(u.groups, gid) {
			t.Errorf("--user %s: groups %v lack %s (%d)", member, u.groups, f[0], gid)
		}
		return
	}
	t.Skip("no group with members in /etc/group")
}
