package cli

import (
	"testing"

	"github.com/prism-run/prism-run/policies"
)

func TestRlimitFlagsLayer(t *testing.T) {
	var l policies.Limits
	err := rlimitLayer(map[string]string{"nofile": "64", "as": "2GiB", "cpu_time": "90s", "memory": "1GiB", "cpus": "0.5", "pids": "10"}, &l)
	if err != nil {
		t.Fatal(err)
	}
	if *l.Nofile != 64 || *l.AS != 2<<30 || l.CPUTime.D().Seconds() != 90 {
		t.Errorf("rlimits %+v", l)
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
