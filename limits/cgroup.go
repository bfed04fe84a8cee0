package limits

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	clog "github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
)

// The cgroup library is containerd/cgroups/v3: one package per mode
// (cgroup1, cgroup2) with the operations a supervisor needs (create with
// resources, kill through cgroup.kill with a freeze-kill-thaw fallback,
// memory.events / memory.oom_control statistics, delete), and it writes
// plain files under a mount point it is given, so a fake cgroupfs in a
// test folder works. opencontainers/cgroups (runc's) is as capable but
// built around runc's container config, and refuses files that are not
// on a real cgroupfs unless a package-wide test switch is set.

// ErrCgroup wraps every failure to set up the run's cgroup.
var ErrCgroup = errors.New("limits: cgroup")

// CgroupSpec is what the run's cgroup enforces; zero means "no limit".
type CgroupSpec struct {
	Memory     int64   // hard limit, bytes (v2 memory.max, v1 memory.limit_in_bytes)
	MemoryHigh int64   // throttle (v2 memory.high) / soft limit (v1 memory.soft_limit_in_bytes)
	CPUs       float64 // cores (cfs quota / period)
	Pids       int64   // tasks (pids.max)
}

// Usage is what the cgroup measured.
type Usage struct {
	MemoryCurrent uint64 `json:"memory_current_bytes"`
	MemoryPeak    uint64 `json:"memory_peak_bytes"`
	OOMKills      uint64 `json:"oom_kills"`
	// ForksRefused counts the forks (and clones) the pids limit refused
	// (pids.events "max", v1 and v2).
	ForksRefused uint64        `json:"forks_refused"`
	CPU          time.Duration `json:"cpu_ns"` // CPU time used by every process of the cgroup
}

// Cgroup is the run's own cgroup: one read covers every descendant, one
// write kills them all.
type Cgroup interface {
	Mode() Mode
	Path() string // the cgroup's path in its hierarchy
	// ProcsFiles are the cgroup.procs files a process writes its pid to
	// join (v1: one per controller; the shim does it before exec).
	ProcsFiles() []string
	// Dir is the v2 cgroup folder, to open for clone3's CLONE_INTO_CGROUP.
	Dir() string
	Kill() error
	Procs() ([]int, error)
	Usage() (Usage, error)
	Delete() error
}

// cpuPeriod is the CFS period used for --cpus (the kernel's default).
const cpuPeriod = 100_000

// cpuQuota turns cores into a CFS quota (µs per period), rounded up.
func cpuQuota(cpus float64) (int64, uint64) {
	return int64(math.Ceil(cpus * cpuPeriod)), uint64(cpuPeriod)
}

// Host is where cgroups live on this machine, as read from /proc.
type Host struct {
	Hierarchy Hierarchy
	OwnV1     map[string]string // this process's cgroup per v1 controller
	OwnV2     string            // this process's v2 cgroup
	// Self is this process, as the cgroups it makes record their owner:
	// a name another prism-run can judge across PID namespaces.
	Self procfs.Owner
}

// ReadHost reads the real host's cgroup layout.
func ReadHost() (Host, error) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Host{}, err
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return Host{}, err
	}
	h := Host{Hierarchy: DetectMode(mi)}
	h.OwnV1, h.OwnV2 = OwnCgroups(own)
	h.Self, err = procfs.SelfOwner(procfs.Root)
	return h, err
}

// runCgroupPrefix names the cgroups prism-run creates, followed by the
// owner (procfs.Owner: PID namespace, pid, start time), so that another
// prism-run can tell whether it is gone, and the run id. The dot keeps
// them out of the reach of older prism-runs, which named theirs
// "prism-run-PID-RUNID" and would read the namespace number of
// "prism-run-NS-..." as a pid (gone, as a pid that large is), and
// sweep a live run's cgroup.
const runCgroupPrefix = "prism-run."

// oldRunCgroupPrefix named an older prism-run's cgroups, whose owner
// (a bare pid) proves nothing: listed as unknown, never swept.
const oldRunCgroupPrefix = "prism-run-"

// leafPrefix names the v2 leaf a prism-run moves itself into (newV2).
const leafPrefix = runCgroupPrefix + "supervisor-"

// RunCgroupName is the name of a run's cgroup made by this process:
// "prism-run.NS-PID-START-RUNID".
func (h Host) RunCgroupName(runID string) string {
	return runCgroupPrefix + h.Self.String() + "-" + SafeName(runID)
}

// SafeName makes s usable as one element of a path (a run id in the run
// folder's and the run cgroup's names): '/', spaces and control
// characters (NUL, newlines) become '_'.
func SafeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || unicode.IsControl(r) {
			return '_'
		}
		return r
	}, s)
}

// NewCgroup creates the run's cgroup, nested under this process's own
// (so it works inside a Slurm job's or a container's delegated subtree),
// with spec's limits.
func NewCgroup(h Host, name string, spec CgroupSpec) (Cgroup, error) {
	switch h.Hierarchy.Mode {
	case ModeV2:
		return newV2(h, name, spec)
	case ModeV1:
		return newV1(h, name, spec)
	}
	return nil, fmt.Errorf("%w: no cgroup file system is mounted", ErrCgroup)
}

// --- v2 ---

type v2Cgroup struct {
	mgr   *cgroup2.Manager
	group string
	dir   string
	stats statFiles // Usage's files, kept open
}

func v2Resources(spec CgroupSpec) *cgroup2.Resources {
	r := &cgroup2.Resources{}
	if spec.Memory > 0 || spec.MemoryHigh > 0 {
		r.Memory = &cgroup2.Memory{}
		if spec.Memory > 0 {
			r.Memory.Max = &spec.Memory
		}
		if spec.MemoryHigh > 0 {
			r.Memory.High = &spec.MemoryHigh
		}
	}
	if spec.CPUs > 0 {
		quota, period := cpuQuota(spec.CPUs)
		r.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(&quota, &period)}
	}
	if spec.Pids > 0 {
		r.Pids = &cgroup2.Pids{Max: spec.Pids}
	}
	return r
}

func newV2(h Host, name string, spec CgroupSpec) (Cgroup, error) {
	m := h.Hierarchy.Unified
	parent := relTo(m, h.OwnV2)
	group := path.Join(parent, name)
	mgr, err := cgroup2.NewManager(m.Point, group, v2Resources(spec))
	if errors.Is(err, syscall.EBUSY) {
		// cgroup v2's "no internal processes" rule: controllers can be
		// enabled for children only of a cgroup with no processes of its
		// own, and prism-run is one. Move prism-run into a leaf of its
		// own cgroup first (what systemd and runc do), then try again.
		leaf := path.Join(parent, leafPrefix+h.Self.String())
		lm, lerr := cgroup2.NewManager(m.Point, leaf, &cgroup2.Resources{})
		if lerr == nil {
			lerr = lm.AddProc(uint64(os.Getpid()))
		}
		if lerr != nil {
			return nil, fmt.Errorf("%w: enable controllers in %s: %v (and moving prism-run to a leaf failed: %v)", ErrCgroup, parent, err, lerr)
		}
		mgr, err = cgroup2.NewManager(m.Point, group, v2Resources(spec))
	}
	if err != nil {
		removeEmpty(map[string]string{"": filepath.Join(m.Point, group)})
		return nil, fmt.Errorf("%w: create %s: %w", ErrCgroup, group, err)
	}
	return &v2Cgroup{mgr: mgr, group: group, dir: filepath.Join(m.Point, group)}, nil
}

// removeEmpty removes the cgroup folders a failed creation left behind.
// rmdir(2) removes only an empty cgroup: a folder with a process in it
// (never one a creation just made) stays.
func removeEmpty(dirs map[string]string) {
	for _, d := range dirs {
		_ = syscall.Rmdir(d)
	}
}

// relTo turns a /proc/self/cgroup path into one relative to the mount.
func relTo(m Mount, p string) string {
	if m.Root != "/" && m.Root != "" {
		if r, ok := strings.CutPrefix(p, m.Root); ok {
			p = r
		}
	}
	if p == "" {
		p = "/"
	}
	return p
}

func (c *v2Cgroup) Mode() Mode           { return ModeV2 }
func (c *v2Cgroup) Path() string         { return c.group }
func (c *v2Cgroup) Dir() string          { return c.dir }
func (c *v2Cgroup) ProcsFiles() []string { return []string{filepath.Join(c.dir, "cgroup.procs")} }

// Kill writes cgroup.kill (Linux >= 5.14), or freezes, kills every
// process and thaws (the library's fallback).
func (c *v2Cgroup) Kill() error { return c.mgr.Kill() }

func (c *v2Cgroup) Procs() ([]int, error) {
	var out []int
	return out, procsUnder(c.dir, map[int]bool{}, &out)
}

// Usage reads the five files it needs (memory.current, memory.peak,
// memory.events, pids.events, cpu.stat), not the library's Stat: that reads every
// controller's statistics (memory.stat, io, hugetlb...), ten times the
// cost, and Usage runs on every sampling tick.
func (c *v2Cgroup) Usage() (Usage, error) {
	var u Usage
	var usec uint64
	err := errors.Join(
		c.stats.uint(filepath.Join(c.dir, "memory.current"), &u.MemoryCurrent),
		c.stats.uint(filepath.Join(c.dir, "memory.peak"), &u.MemoryPeak), // Linux >= 5.19
		c.stats.key(filepath.Join(c.dir, "memory.events"), "oom_kill", &u.OOMKills),
		c.stats.key(filepath.Join(c.dir, "pids.events"), "max", &u.ForksRefused),
		c.stats.key(filepath.Join(c.dir, "cpu.stat"), "usage_usec", &usec),
	)
	u.CPU = time.Duration(usec) * time.Microsecond
	return u, err
}

func (c *v2Cgroup) Delete() error { c.stats.close(); return c.mgr.Delete() }

// --- v1 ---

type v1Cgroup struct {
	cg       cgroup1.Cgroup
	paths    map[string]string // controller -> path in its hierarchy
	dirs     map[string]string // controller -> folder on disk
	mounts   map[string]Mount  // controller -> its hierarchy's mount (StartInside)
	pidsMax  int64             // pids.max asked for (0: none)
	cpuQuota bool              // a CPU quota is set (CanStartInside)
	stats    statFiles         // Usage's files, kept open
}

// SlurmStep says whether own (a v1 cgroup path of prism-run's) is inside
// a Slurm job step's, as proctrack/cgroup names it:
// .../slurm[_NODE]/uid_UID/job_ID/step_STEP[/...] (the step is batch,
// extern, interactive or a number). Slurm finds a step's processes in the
// step's freezer cgroup.procs alone, not in cgroups nested below it
// (measured with Slurm 22.05: scontrol listpids showed prism-run, not its
// child, and the time limit's SIGKILL missed the child's tree), so a run
// inside a step keeps the step's freezer cgroup: no nested one, and
// prism-run's own kill of the run's cgroup is a kill loop, not a freeze.
func SlurmStep(own string) bool {
	el := strings.Split(own, "/")
	for i := 0; i+3 < len(el); i++ {
		if strings.HasPrefix(el[i], "slurm") && numbered(el[i+1], "uid_") && numbered(el[i+2], "job_") &&
			strings.HasPrefix(el[i+3], "step_") && len(el[i+3]) > len("step_") {
			return true
		}
	}
	return false
}

// numbered: s is prefix followed by decimal digits only.
func numbered(s, prefix string) bool {
	d, ok := strings.CutPrefix(s, prefix)
	return ok && d != "" && strings.Trim(d, "0123456789") == ""
}

func newV1(h Host, name string, spec CgroupSpec) (Cgroup, error) {
	paths, dirs, mounts := map[string]string{}, map[string]string{}, map[string]Mount{}
	var subs []cgroup1.Subsystem
	for _, c := range Controllers {
		m, ok := h.Hierarchy.V1[c]
		if !ok || c == "freezer" && SlurmStep(h.OwnV1[c]) {
			continue
		}
		p := path.Join(relTo(m, h.OwnV1[c]), name)
		paths[c], dirs[c], mounts[c] = p, filepath.Join(m.Point, p), m
		// The library's controllers take the folder that holds the
		// controller mounts and add the controller's name, so a mount must
		// be reachable as ROOT/NAME: true of the usual layout
		// (/sys/fs/cgroup/memory), and of combined mounts through their
		// symlinks (/sys/fs/cgroup/cpu -> cpu,cpuacct).
		root := filepath.Dir(m.Point)
		if fi, err := os.Stat(filepath.Join(root, c)); err != nil || !fi.IsDir() || !sameFile(filepath.Join(root, c), m.Point) {
			return nil, fmt.Errorf("%w: the %s controller is mounted at %s, not reachable as %s", ErrCgroup, c, m.Point, filepath.Join(root, c))
		}
		switch c {
		case "memory":
			subs = append(subs, cgroup1.NewMemory(root))
		case "cpu":
			subs = append(subs, cgroup1.NewCpu(root))
		case "pids":
			subs = append(subs, cgroup1.NewPids(root))
		case "freezer":
			subs = append(subs, cgroup1.NewFreezer(root))
		case "cpuacct":
			subs = append(subs, cgroup1.NewCpuacct(root))
		}
	}
	need := map[string]bool{"memory": spec.Memory > 0 || spec.MemoryHigh > 0, "cpu": spec.CPUs > 0, "pids": spec.Pids > 0}
	for c, n := range need {
		if _, ok := paths[c]; n && !ok {
			return nil, fmt.Errorf("%w: the %s controller is not mounted", ErrCgroup, c)
		}
	}
	res := &specs.LinuxResources{}
	if spec.Memory > 0 || spec.MemoryHigh > 0 {
		res.Memory = &specs.LinuxMemory{}
		if spec.Memory > 0 {
			res.Memory.Limit = &spec.Memory
		}
		if spec.MemoryHigh > 0 {
			res.Memory.Reservation = &spec.MemoryHigh
		}
	}
	if spec.CPUs > 0 {
		quota, period := cpuQuota(spec.CPUs)
		res.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	if spec.Pids > 0 {
		res.Pids = &specs.LinuxPids{Limit: &spec.Pids}
	}
	pathOf := func(n cgroup1.Name) (string, error) {
		if p, ok := paths[string(n)]; ok {
			return p, nil
		}
		return "", fmt.Errorf("controller %s not used", n)
	}
	cg, err := cgroup1.New(pathOf, res, cgroup1.WithHierarchy(func() ([]cgroup1.Subsystem, error) { return subs, nil }))
	if err != nil {
		// The library makes the folders first, then writes the limits: a
		// limit the kernel refused leaves folders it made (nothing in them).
		removeEmpty(dirs)
		return nil, fmt.Errorf("%w: create %s: %w", ErrCgroup, name, err)
	}
	return &v1Cgroup{cg: cg, paths: paths, dirs: dirs, mounts: mounts, pidsMax: spec.Pids, cpuQuota: spec.CPUs > 0}, nil
}

func (c *v1Cgroup) Mode() Mode { return ModeV1 }

func (c *v1Cgroup) Path() string {
	if p, ok := c.paths["memory"]; ok {
		return p
	}
	for _, p := range c.paths {
		return p
	}
	return ""
}

func (c *v1Cgroup) Dir() string { return "" }

func (c *v1Cgroup) ProcsFiles() []string {
	var out []string
	for _, ctl := range Controllers {
		if d, ok := c.dirs[ctl]; ok {
			out = append(out, filepath.Join(d, "cgroup.procs"))
		}
	}
	return out
}

// Kill freezes the cgroup (so nothing forks in between), SIGKILLs every
// process, thaws, and repeats until the cgroup is empty. Without the
// freezer it is a kill loop.
func (c *v1Cgroup) Kill() error {
	// Never freeze a cgroup that holds a thread of this process (one
	// stranded by StartInside): the freezer would stop prism-run itself.
	_, frozen := c.dirs["freezer"]
	frozen = frozen && !c.holdsSelf()
	_, err := untilEmpty(time.Sleep, func() (int, error) {
		if frozen {
			_ = c.cg.Freeze()
		}
		pids, err := c.Procs()
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if frozen {
			_ = c.cg.Thaw()
		}
		return len(pids), err
	})
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCgroup, c.Path(), err)
	}
	return nil
}

// holdsSelf reports whether a thread of this process is in the cgroup
// (v1's cgroup.procs lists a thread group when any thread is there).
func (c *v1Cgroup) holdsSelf() bool {
	for _, d := range c.dirs {
		if pids, _ := readProcs(d); slices.Contains(pids, os.Getpid()) {
			return true
		}
	}
	return false
}

// readProcs reads the pids in the cgroup.procs file of the cgroup folder
// dir; a cgroup that is gone (removed, or being removed: ENODEV) holds none.
func readProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// Procs lists the processes in the cgroup, never this one: v1 lists a
// process in cgroup.procs when any of its threads is there, and one of
// prism-run's is while it forks the child inside (StartInside).
func (c *v1Cgroup) Procs() ([]int, error) {
	seen := map[int]bool{os.Getpid(): true}
	var out []int
	for _, ctl := range Controllers {
		if d, ok := c.dirs[ctl]; ok {
			if err := procsUnder(d, seen, &out); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// procsUnder adds the pids in dir's cgroup.procs and in those of the
// cgroups below it, each once. It reads each folder's entries with their
// types (getdents: cgroupfs gives them), never a stat of every file as a
// filepath.Walk would: this runs on every sampling tick. A cgroup removed
// meanwhile is skipped.
func procsUnder(dir string, seen map[int]bool, out *[]int) error {
	pids, err := readProcs(dir)
	if err != nil {
		return err
	}
	for _, p := range pids {
		if !seen[p] {
			seen[p] = true
			*out = append(*out, p)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // removed since: its processes were read above
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := procsUnder(filepath.Join(dir, e.Name()), seen, out); err != nil {
				return err
			}
		}
	}
	return nil
}

// Usage reads the files it needs, as the v2 one does; a controller that
// is not mounted reads as zero.
func (c *v1Cgroup) Usage() (Usage, error) {
	var u Usage
	var ns uint64
	var errs []error
	if mem, ok := c.dirs["memory"]; ok {
		errs = append(errs,
			c.stats.uint(filepath.Join(mem, "memory.usage_in_bytes"), &u.MemoryCurrent),
			c.stats.uint(filepath.Join(mem, "memory.max_usage_in_bytes"), &u.MemoryPeak),
			c.stats.key(filepath.Join(mem, "memory.oom_control"), "oom_kill", &u.OOMKills))
	}
	if pids, ok := c.dirs["pids"]; ok {
		errs = append(errs, c.stats.key(filepath.Join(pids, "pids.events"), "max", &u.ForksRefused))
	}
	if acct, ok := c.dirs["cpuacct"]; ok {
		errs = append(errs, c.stats.uint(filepath.Join(acct, "cpuacct.usage"), &ns))
	}
	u.CPU = time.Duration(ns)
	return u, errors.Join(errs...)
}

func (c *v1Cgroup) Delete() error { c.stats.close(); return c.cg.Delete() }

// CleanStale removes the cgroups that a prism-run which is provably gone
// (SIGKILLed, or its machine rebooted into the same hierarchy) left under
// this process's cgroup: their processes are killed, then the cgroup is
// removed. It returns the paths it removed, and those it left alone
// because their owner cannot be judged from here (a prism-run in another
// PID namespace, or a name it cannot read).
func CleanStale(h Host) (removed, unknown []string, err error) {
	stale, unknown := ListStale(h)
	var errs []error
	for _, dir := range stale {
		if err := killAndRemove(dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
	}
	return removed, unknown, errors.Join(errs...)
}

// ListStale lists the run cgroups under this process's cgroup whose
// prism-run is provably gone, and those whose owner cannot be judged
// (procfs.Owner.Gone): only the first may be touched.
func ListStale(h Host) (stale, unknown []string) {
	var parents []string
	switch h.Hierarchy.Mode {
	case ModeV2:
		parents = append(parents, h.Hierarchy.Unified.Dir(h.OwnV2))
	case ModeV1:
		for _, c := range Controllers {
			if m, ok := h.Hierarchy.V1[c]; ok {
				parents = append(parents, m.Dir(h.OwnV1[c]))
			}
		}
	}
	for _, parent := range parents {
		entries, err := os.ReadDir(parent)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), runCgroupPrefix) && !strings.HasPrefix(e.Name(), oldRunCgroupPrefix) {
				continue
			}
			owner, ok := ownerOf(e.Name())
			gone, provable := owner.Gone(procfs.Root, h.Self)
			switch {
			case ok && provable && gone:
				stale = append(stale, filepath.Join(parent, e.Name()))
			case !ok || !provable:
				unknown = append(unknown, filepath.Join(parent, e.Name()))
			}
		}
	}
	return stale, unknown
}

// ownerOf reads the owner out of "prism-run.NS-PID-START-RUNID" or a v2
// leaf "prism-run.supervisor-NS-PID-START" (false: an older prism-run's
// name, or another's).
func ownerOf(name string) (procfs.Owner, bool) {
	rest, ok := strings.CutPrefix(name, leafPrefix)
	if !ok {
		rest, ok = strings.CutPrefix(name, runCgroupPrefix)
	}
	if !ok {
		return procfs.Owner{}, false
	}
	o, _, ok := procfs.ParseOwner(rest)
	return o, ok
}

// killAndRemove empties a cgroup folder (and its children) and removes
// it: rmdir(2) is how a cgroup is deleted, its files need no removing.
func killAndRemove(dir string) error {
	var sub []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			sub = append(sub, p)
		}
		return nil
	})
	for i := len(sub) - 1; i >= 0; i-- {
		// A cgroup left frozen (its prism-run killed between freeze and
		// thaw) holds its processes in the freezer: SIGKILL is acted on
		// only once thawed (cgroup-v1/freezer-subsystem.rst).
		if f, err := os.OpenFile(filepath.Join(sub[i], "freezer.state"), os.O_WRONLY, 0); err == nil {
			_, _ = f.WriteString("THAWED")
			_ = f.Close()
		}
		_, _ = untilEmpty(time.Sleep, func() (int, error) {
			pids, _ := readProcs(sub[i])
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			return len(pids), nil
		})
		if err := syscall.Rmdir(sub[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("%w: remove stale %s: %w", ErrCgroup, sub[i], err)
		}
	}
	return nil
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// QuietLibraryLog stops containerd/cgroups from writing to stderr. It logs
// through containerd/log's process-wide logrus logger, for instance
// "falling back to slower kill implementation" on every kill on a kernel
// without cgroup.kill: lines without the "prism-run:" prefix, mixed into
// the child's stderr. Every failure that matters comes back to prism-run
// as an error and is reported there. Called by main's run, before anything else.
func QuietLibraryLog() {
	clog.L.Logger.SetOutput(io.Discard)
}
