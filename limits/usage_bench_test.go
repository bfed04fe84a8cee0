package limits

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkUsage is one read of a real run cgroup's usage (memory, peak,
// OOM count, CPU): what each sampling tick costs with a cgroup.
func BenchmarkUsage(b *testing.B) {
	if os.Getuid() != 0 {
		b.Skip("needs root")
	}
	h, err := ReadHost()
	if err != nil || h.Hierarchy.Mode == ModeNone {
		b.Skip("no cgroups")
	}
	cg, err := NewCgroup(h, h.RunCgroupName("bench-"+strconv.FormatInt(time.Now().UnixNano(), 36)), CgroupSpec{Memory: 1 << 30})
	if err != nil {
		b.Skip(err)
	}
	defer func() { _ = cg.Delete() }()
	for b.Loop() {
		if _, err := cg.Usage(); err != nil {
			b.Fatal(err)
		}
	}
}
