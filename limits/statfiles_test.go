package limits

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A file kept open is read afresh: its new content, not the first read's.
func TestStatFilesReread(t *testing.T) {
	p := filepath.Join(t.TempDir(), "memory.current")
	var s statFiles
	defer s.close()
	var v uint64
	for _, want := range []uint64{7, 123456789, 42} {
		if err := os.WriteFile(p, []byte(strconv.FormatUint(want, 10)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := s.uint(p, &v); err != nil || v != want {
			t.Fatalf("read %d, %v; want %d", v, err, want)
		}
	}
	ev := filepath.Join(t.TempDir(), "memory.events")
	_ = os.WriteFile(ev, []byte("low 0\nhigh 3\nmax 9\noom 1\noom_kill 2\n"), 0o644)
	if err := s.key(ev, "oom_kill", &v); err != nil || v != 2 {
		t.Fatalf("oom_kill %d, %v", v, err)
	}
	v = 5
	if err := s.uint(filepath.Join(t.TempDir(), "memory.peak"), &v); err != nil || v != 5 {
		t.Fatalf("a missing file must read as nothing, not an error: %d, %v", v, err)
	}
}

// The kernel's counters, read through descriptors kept open, move: a
// real v1 cgroup's CPU time grows while a process in it burns CPU, and
// the cgroup is still removable with the files open.
func TestStatFilesFreshReal(t *testing.T) {
	h := realHost(t, ModeV1, "cpuacct", "memory")
	name := h.RunCgroupName("stat-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	cg, err := NewCgroup(h, name, CgroupSpec{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = KillAndDelete(cg, realSleeper{}) })
	first, err := cg.Usage()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", append([]string{"-c", `for f in "$@"; do echo $$ > "$f"; done; i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done`, "sh"}, cg.ProcsFiles()...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	second, err := cg.Usage()
	if err != nil {
		t.Fatal(err)
	}
	if second.CPU <= first.CPU || second.CPU < 10*time.Millisecond {
		t.Fatalf("CPU time read through an open file did not move: %v then %v", first.CPU, second.CPU)
	}
	if second.MemoryPeak <= first.MemoryPeak {
		t.Fatalf("memory peak did not move: %d then %d", first.MemoryPeak, second.MemoryPeak)
	}
	if err := KillAndDelete(cg, realSleeper{}); err != nil {
		t.Fatalf("removing a cgroup whose files were read: %v", err)
	}
}
