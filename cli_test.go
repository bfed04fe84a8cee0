package main

import (
	"strings"
	"testing"

	"github.com/prism-run/prism-run/policies"
)

func TestEnforcementGaps(t *testing.T) {
	on := true
	p := &policies.Policy{Isolation: policies.Isolation{IsolateNet: &on, NoNewPrivs: &on}}
	if g := enforcementGaps(p, 0); len(g) != 0 {
		t.Errorf("root: gaps %v", g)
	}
	g := enforcementGaps(p, 1000)
	if len(g) != 1 || g[0].setting != "isolation.isolate_net" {
		t.Fatalf("user: gaps %v", g)
	}
	if msg := joinGaps(g); !strings.Contains(msg, "isolation.isolate_net (a network namespace needs root") {
		t.Errorf("message %q", msg)
	}
}

func TestRlimitFlagsLayer(t *testing.T) {
	var l policies.Limits
	err := rlimitLayer(map[string]string{"nofile": "64", "as": "2GiB", "cpu_time": "90s", "memory": "1GiB", "cpus": "0.5", "pids": "10"}, &l)
	if err != nil {
		t.Fatal(err)
	}
	rl, err := rlimitsOf(l)
	if err != nil || len(rl) != 3 {
		t.Fatalf("rlimits %v, %v", rl, err)
	}
	if *l.Memory != 1<<30 || *l.CPUs != 0.5 || *l.Pids != 10 {
		t.Errorf("cgroup limits %+v", l)
	}
	for k, v := range map[string]string{"nofile": "many", "cpus": "-1", "pids": "0", "memory": "lots", "cpu_time": "soon"} {
		if err := rlimitLayer(map[string]string{k: v}, &policies.Limits{}); err == nil {
			t.Errorf("--%s %s accepted", k, v)
		}
	}
}

func TestLookupUser(t *testing.T) {
	uid, gid, err := lookupUser("0:0")
	if err != nil || *uid != 0 || *gid != 0 {
		t.Errorf("0:0 -> %v %v %v", uid, gid, err)
	}
	if uid, _, err := lookupUser("root"); err != nil || *uid != 0 {
		t.Errorf("root -> %v %v", uid, err)
	}
	if _, _, err := lookupUser("no-such-user-xyz"); err == nil {
		t.Error("unknown user accepted")
	}
}
