package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prism-run/prism-run/limits"
)

// TestNoCgroupLeftBehind runs after the scripts (files run in name
// order): every prism-run they started has ended, so no run cgroup may be
// left under this process's cgroup.
func TestNoCgroupLeftBehind(t *testing.T) {
	h, err := limits.ReadHost()
	if err != nil || h.Hierarchy.Mode == limits.ModeNone {
		t.Skip("no cgroups here")
	}
	var parents []string
	if h.Hierarchy.Mode == limits.ModeV2 {
		parents = append(parents, h.Hierarchy.Unified.Dir(h.OwnV2))
	} else {
		for c, m := range h.Hierarchy.V1 {
			parents = append(parents, m.Dir(h.OwnV1[c]))
		}
	}
	for _, p := range parents {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), "prism-run-") && !strings.HasPrefix(e.Name(), "prism-run-supervisor-") {
				t.Errorf("cgroup left behind: %s", filepath.Join(p, e.Name()))
			}
		}
	}
}
