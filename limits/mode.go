package limits

import (
	"bufio"
	"bytes"
	"path"
	"strings"
)

// Mode is how this host organises cgroups.
type Mode int

// Cgroup modes. Hybrid hosts (v1 controllers plus a v2 mount without
// them) count as v1: that is where the controllers are.
const (
	ModeNone Mode = iota
	ModeV1
	ModeV2
)

// String names the mode as the report and --dry-run write it.
func (m Mode) String() string {
	return [...]string{"none", "v1", "v2"}[m]
}

// Controllers prism-run uses (v1 names; cpuacct is v1's CPU accounting).
var Controllers = []string{"memory", "cpu", "cpuacct", "pids", "freezer"}

// Hierarchy is what DetectMode found: where each v1 controller is mounted
// (and the mount's root within its hierarchy), or the v2 mount.
type Hierarchy struct {
	Mode    Mode
	V1      map[string]Mount // controller -> mount
	Unified Mount            // the cgroup2 mount
}

// Mount is a cgroup file system mount.
type Mount struct {
	Point string // where it is mounted
	Root  string // the hierarchy path it shows (mountinfo field 4)
}

// DetectMode reads /proc/self/mountinfo (proc(5)): "ID PARENT MAJ:MIN
// ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". A pure
// function, so tests feed it fixtures.
func DetectMode(mountinfo []byte) Hierarchy {
	h := Hierarchy{V1: map[string]Mount{}}
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+3 > len(f) {
			continue
		}
		m := Mount{Point: unescape(f[4]), Root: unescape(f[3])}
		switch f[sep+1] {
		case "cgroup2":
			if h.Unified.Point == "" {
				h.Unified = m
			}
		case "cgroup":
			for _, opt := range strings.Split(f[sep+3], ",") {
				for _, c := range Controllers {
					if opt == c {
						if _, seen := h.V1[c]; !seen {
							h.V1[c] = m
						}
					}
				}
			}
		}
	}
	switch {
	case len(h.V1) > 0:
		h.Mode = ModeV1
	case h.Unified.Point != "":
		h.Mode = ModeV2
	}
	return h
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			v := (s[i+1]-'0')*64 + (s[i+2]-'0')*8 + (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// OwnCgroups reads /proc/self/cgroup (cgroups(7)): "ID:CONTROLLERS:PATH",
// "0::PATH" for v2. It returns the path per v1 controller and the v2 path.
func OwnCgroups(procSelfCgroup []byte) (v1 map[string]string, v2 string) {
	v1 = map[string]string{}
	for _, line := range strings.Split(string(procSelfCgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			v1[c] = parts[2]
		}
	}
	return v1, v2
}

// Dir is where a cgroup path of a hierarchy lies on disk under a mount:
// the mount shows the hierarchy from m.Root down (a container usually
// sees its own cgroup as "/").
func (m Mount) Dir(cgroupPath string) string {
	return path.Join(m.Point, relTo(m, cgroupPath))
}
