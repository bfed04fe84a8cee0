package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		line string
		want procEntry
		ok   bool
	}{
		{"42 (sleep) S 7 42 42 0", procEntry{42, 7, 'S'}, true},
		{"43 (a b) c)) Z 1 1 1", procEntry{43, 1, 'Z'}, true},
		{"44 (x) R", procEntry{}, false},
		{"garbage", procEntry{}, false},
		{"(x) S 1", procEntry{}, false},
	}
	for _, tt := range tests {
		got, ok := parseStat([]byte(tt.line))
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

// fakeProc writes a proc tree: pid -> "ppid state".
func fakeProc(t *testing.T, procs map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, rest := range procs {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var ppid int
		var state string
		if _, err := fmt.Sscan(rest, &ppid, &state); err != nil {
			t.Fatal(err)
		}
		line := strconv.Itoa(pid) + " (p " + strconv.Itoa(pid) + ") " + state + " " + strconv.Itoa(ppid) + " 0 0\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Entries that are not processes are skipped.
	_ = os.MkdirAll(filepath.Join(root, "self"), 0o755)
	_ = os.MkdirAll(filepath.Join(root, "999"), 0o755) // vanished: no stat
	return root
}

func TestLiveDescendants(t *testing.T) {
	root := fakeProc(t, map[int]string{
		1:  "0 S",
		10: "1 S",  // prism-run
		11: "10 S", // main child
		12: "11 S", // its child
		13: "12 Z", // a zombie grandchild: dead
		14: "10 S", // an orphan reparented to prism-run
		15: "14 R",
		20: "1 S", // unrelated
		21: "20 S",
	})
	procs, err := readProcs(root)
	if err != nil {
		t.Fatal(err)
	}
	got := liveDescendants(procs, 10)
	slices.Sort(got)
	if want := []int{11, 12, 14, 15}; !slices.Equal(got, want) {
		t.Errorf("liveDescendants = %v, want %v", got, want)
	}
	if got := liveDescendants(procs, 21); len(got) != 0 {
		t.Errorf("a leaf has descendants %v", got)
	}
}

func TestLiveDescendantsSurvivesCycles(t *testing.T) {
	procs := []procEntry{{1, 2, 'S'}, {2, 1, 'S'}, {3, 1, 'S'}}
	got := liveDescendants(procs, 1)
	slices.Sort(got)
	if !slices.Equal(got, []int{2, 3}) {
		t.Errorf("got %v", got)
	}
}

func TestSignalSafe(t *testing.T) {
	root := t.TempDir()
	write := func(pid int, status string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// SIGUSR1 is signal 10: bit 9, 0x200.
	write(1, "Name:\tpython3\nSigBlk:\t0000000000000000\nSigIgn:\t0000000001001000\nSigCgt:\t0000000000000002\n")
	write(2, "Name:\tpython3\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000202\n")
	write(3, "SigBlk:\t0000000000000200\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n")
	write(4, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000200\nSigCgt:\t0000000000000000\n")
	write(5, "SigBlk:\tzz\nSigIgn:\t0\nSigCgt:\t0\n")
	write(6, "Name:\tx\n")
	tests := []struct {
		pid           int
		safe, ok, cgt bool
	}{
		{1, false, true, false}, // only SIGINT caught: SIGUSR1 would kill it
		{2, true, true, true},   // caught: the one that acts on it
		{3, true, true, false},  // blocked
		{4, true, true, false},  // ignored
		{5, false, false, false},
		{6, false, false, false},
		{7, false, false, false}, // gone
	}
	for _, tt := range tests {
		safe, ok := signalSafe(root, tt.pid, syscall.SIGUSR1)
		if safe != tt.safe || ok != tt.ok {
			t.Errorf("pid %d: safe=%v ok=%v, want %v %v", tt.pid, safe, ok, tt.safe, tt.ok)
		}
		if got := catches(root, tt.pid, syscall.SIGUSR1); got != tt.cgt {
			t.Errorf("pid %d: catches=%v, want %v", tt.pid, got, tt.cgt)
		}
	}
}
