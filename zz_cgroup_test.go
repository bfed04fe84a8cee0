package main

import (
	"testing"

	"github.com/prism-run/prism-run/limits"
)

// TestNoCgroupLeftBehind runs after the scripts (files run in name
// order): every prism-run they started has ended, so no run cgroup of a
// prism-run that is gone may be left under this process's cgroup. (Those
// of live processes, such as another package's tests running at the same
// time, are not leftovers.)
func TestNoCgroupLeftBehind(t *testing.T) {
	h, err := limits.ReadHost()
	if err != nil || h.Hierarchy.Mode == limits.ModeNone {
		t.Skip("no cgroups here")
	}
	stale, _ := limits.ListStale(h)
	for _, dir := range stale {
		t.Errorf("cgroup left behind: %s", dir)
	}
}
