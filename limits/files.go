package limits

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupFile is one limit of a CgroupSpec as the kernel file that holds
// it, with the value the kernel shows once it is written.
type CgroupFile struct {
	Controller string // the v1 controller it belongs to (memory, cpu, pids)
	Name       string // memory.max, memory.limit_in_bytes, cpu.max, ...
	Value      string
}

// Files lists the files a cgroup with spec's limits has set in mode's
// hierarchy (what NewCgroup writes through containerd/cgroups), in a
// fixed order. Memory limits are shown rounded down to whole pages: the
// kernel stores them so (page_counter_memparse, mm/page_counter.c).
func (spec CgroupSpec) Files(mode Mode) []CgroupFile {
	page := int64(os.Getpagesize())
	mem := func(v int64) string { return strconv.FormatInt(v/page*page, 10) }
	var out []CgroupFile
	add := func(ctl, name, value string) { out = append(out, CgroupFile{ctl, name, value}) }
	quota, period := cpuQuota(spec.CPUs)
	switch mode {
	case ModeV2:
		if spec.Memory > 0 {
			add("memory", "memory.max", mem(spec.Memory))
		}
		if spec.MemoryHigh > 0 {
			add("memory", "memory.high", mem(spec.MemoryHigh))
		}
		if spec.CPUs > 0 {
			add("cpu", "cpu.max", fmt.Sprintf("%d %d", quota, period))
		}
	case ModeV1:
		if spec.Memory > 0 {
			add("memory", "memory.limit_in_bytes", mem(spec.Memory))
		}
		if spec.MemoryHigh > 0 {
			add("memory", "memory.soft_limit_in_bytes", mem(spec.MemoryHigh))
		}
		if spec.CPUs > 0 {
			add("cpu", "cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
			add("cpu", "cpu.cfs_period_us", strconv.FormatUint(period, 10))
		}
	default:
		return nil
	}
	if spec.Pids > 0 {
		add("pids", "pids.max", strconv.FormatInt(spec.Pids, 10))
	}
	return out
}

// controllersOf names the controllers spec needs.
func (spec CgroupSpec) controllers() []string {
	var out []string
	if spec.Memory > 0 || spec.MemoryHigh > 0 {
		out = append(out, "memory")
	}
	if spec.CPUs > 0 {
		out = append(out, "cpu")
	}
	if spec.Pids > 0 {
		out = append(out, "pids")
	}
	return out
}

// OwnDir is the folder of this process's own cgroup for a controller (v1),
// or its v2 cgroup ("" controller or a v2 host). "" when there is none.
func (h Host) OwnDir(controller string) string {
	switch h.Hierarchy.Mode {
	case ModeV2:
		return h.Hierarchy.Unified.Dir(h.OwnV2)
	case ModeV1:
		if m, ok := h.Hierarchy.V1[controller]; ok {
			return m.Dir(h.OwnV1[controller])
		}
	}
	return ""
}

// CanLimit says, without creating anything, why a cgroup with spec's
// limits cannot be made here for this user: no cgroup file system, a
// controller that is not mounted (v1) or not available to this subtree
// (v2 cgroup.controllers), or a cgroup folder this user may not write (no
// delegation). nil means it looks possible; creating it can still fail,
// and NewCgroup's error then says why.
func (h Host) CanLimit(spec CgroupSpec) error {
	need := spec.controllers()
	switch h.Hierarchy.Mode {
	case ModeNone:
		return errors.New("no cgroup file system is mounted")
	case ModeV2:
		dir := h.OwnDir("")
		if b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers")); err == nil {
			have := strings.Fields(string(b))
			for _, c := range need {
				if !slices.Contains(have, c) {
					return fmt.Errorf("the %s controller is not available in %s (cgroup.controllers: %s)", c, dir, strings.Join(have, " "))
				}
			}
		}
		return writable(dir)
	}
	for _, c := range need {
		dir := h.OwnDir(c)
		if dir == "" {
			return fmt.Errorf("the %s controller is not mounted", c)
		}
		if err := writable(dir); err != nil {
			return err
		}
	}
	return nil
}

func writable(dir string) error {
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Errorf("cannot create a cgroup in %s: %w (not root, and no delegated subtree)", dir, err)
	}
	return nil
}
