// Package plan turns a resolved policy and the command line's requests
// into a Plan: what a run will enforce, what it cannot on this host and
// why, and the values it will use. A real run, --dry-run and doctor all go
// through it, so what --dry-run prints is what a run enforces (the run
// report carries the same items) and what doctor finds is what a run
// would find.
//
// New is pure given its Host (the facts it reads about this machine);
// Prepare makes what the plan needs outside the child (the run's cgroup,
// its watchdog, the kernel log, the GPU probe), and Config turns the plan
// and what Prepare made into the supervisor's configuration.
package plan

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
	"github.com/prism-run/prism-run/supervisor"
)

// Errors of a plan; both end a run with exit 125.
var (
	// ErrInput: a request cannot be read (--user, --gpus).
	ErrInput = errors.New("plan: bad request")
	// ErrRefused: strict mode refuses a run it cannot confine as asked.
	ErrRefused = errors.New("strict mode")
	// ErrLimits: cgroup limits that should have been possible here could
	// not be set.
	ErrLimits = errors.New("cgroup limits")
)

// Request is what a run asks for beyond its policy.
type Request struct {
	User string   // --user: UID[:GID] or a user name ("" = prism-run's own)
	GPUs string   // --gpus: "" every GPU, "none", or indices "0,2"
	Env  []string // --env: "K=V" sets K for the child, "K" passes prism-run's K through a clean environment
	// Unbuffered gives the child PYTHONUNBUFFERED=1 unless it is set.
	Unbuffered bool
	// CheckpointDir, StateDir and Resume are --checkpoint-dir,
	// --state-dir and --resume, checked before the start
	// (supervisor.CheckFolders).
	CheckpointDir, StateDir, Resume string
}

// Host is what a plan knows of this machine: who runs prism-run and how
// its cgroups are laid out.
type Host struct {
	EUID, EGID int
	Cgroups    limits.Host
	CgroupsErr error // reading /proc/self/mountinfo or /proc/self/cgroup failed
	// NrOpen is fs.nr_open, the most RLIMIT_NOFILE may be (0: unknown).
	NrOpen uint64
	// CUDAVisible is prism-run's own CUDA_VISIBLE_DEVICES: the GPUs a
	// scheduler (Slurm, Kubernetes) gave this job; set empty, none; nil
	// when it is not set.
	CUDAVisible *string
}

// ReadHost reads the real host's facts.
func ReadHost() Host {
	h := Host{EUID: os.Geteuid(), EGID: os.Getegid()}
	if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok {
		h.CUDAVisible = &v
	}
	h.Cgroups, h.CgroupsErr = limits.ReadHost()
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		h.NrOpen, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	return h
}

// Gap is a setting a policy asks for that cannot be enforced here.
type Gap struct {
	Setting string // the policy field(s): "isolation.isolate_net"
	Why     string
}

// Plan is what a run will enforce and with which values.
type Plan struct {
	Policy *policies.Resolved
	Strict bool

	Rlimits []limits.Rlimit
	// Cgroup holds the limits of the run's cgroup (zero: none asked; a
	// cgroup is still made where possible, for accounting).
	Cgroup     limits.CgroupSpec
	CgroupMode limits.Mode

	NoNewPrivs, CleanEnv, IsolateNet bool
	KeepEnv                          []string // --env, and CUDA_VISIBLE_DEVICES for --gpus
	DefaultEnv                       []string // given unless the child's environment sets them
	UID, GID                         *int
	Groups                           []int // the user's supplementary groups

	// GPUs are the GPUs sampled: nil every one, empty none.
	GPUs []int
	// NeedsGPU: a rule watches a GPU metric or GPU health, which only the
	// GPU probe can feed.
	NeedsGPU bool

	KillAfter, CheckpointTimeout, SampleInterval time.Duration

	// Gaps are what cannot be enforced here; strict refuses a run with
	// any (Refusal), otherwise each is one warning.
	Gaps []Gap

	// CheckpointDir and StateDir are the request's, for --dry-run's
	// account of the state a run would carry on from.
	CheckpointDir, StateDir string
}

// New makes the plan of a resolved policy and a request on host. It fails
// (ErrInput) on a request it cannot read, never because of a gap.
func New(pol *policies.Resolved, req Request, host Host) (*Plan, error) {
	p := &Plan{Policy: pol, Strict: pol.Strict, CgroupMode: host.Cgroups.Hierarchy.Mode,
		CheckpointDir: req.CheckpointDir, StateDir: req.StateDir}
	var err error
	if p.Rlimits, err = rlimitsOf(pol.Policy.Limits); err != nil {
		return nil, err
	}
	p.Cgroup = cgroupSpecOf(pol.Policy.Limits)
	iso := pol.Policy.Isolation
	p.NoNewPrivs, p.CleanEnv, p.IsolateNet = isSet(iso.NoNewPrivs), isSet(iso.CleanEnv), isSet(iso.IsolateNet)
	u, err := lookupUser(req.User)
	if err != nil {
		return nil, err
	}
	p.UID, p.GID, p.Groups = u.uid, u.gid, u.groups
	if p.UID != nil && *p.UID == host.EUID && *p.GID == host.EGID {
		p.UID, p.GID, p.Groups, u.env = nil, nil, nil, nil // already that user: nothing to change
	}
	for _, r := range p.Rlimits {
		if r.Name == "nofile" && host.NrOpen > 0 && r.Cur > host.NrOpen {
			return nil, fmt.Errorf("%w: nofile %d is above this host's fs.nr_open (%d): the kernel refuses it", ErrInput, r.Cur, host.NrOpen)
		}
	}
	var gpuEnv []string
	if p.GPUs, gpuEnv, err = parseGPUs(req.GPUs, host.CUDAVisible); err != nil {
		return nil, err
	}
	for _, kv := range req.Env {
		v, ok := strings.CutPrefix(kv, "CUDA_VISIBLE_DEVICES=")
		switch {
		case ok && gpuEnv != nil:
			return nil, fmt.Errorf("%w: --gpus and --env CUDA_VISIBLE_DEVICES both choose the child's GPUs: give one", ErrInput)
		case ok:
			if err := withinAllocation("--env "+kv, strings.Split(v, ","), host.CUDAVisible); err != nil {
				return nil, err
			}
		}
	}
	if err := checkEnv(req.Env); err != nil {
		return nil, err
	}
	if err := supervisor.CheckFolders(req.CheckpointDir, req.StateDir, req.Resume, p.UID, p.GID, p.Groups); err != nil {
		return nil, err
	}
	// The user's HOME, USER and LOGNAME first, so an --env of them wins.
	p.KeepEnv = append(append(u.env, req.Env...), gpuEnv...)
	if req.Unbuffered {
		p.DefaultEnv = []string{"PYTHONUNBUFFERED=1"}
	}
	p.NeedsGPU = needsGPU(pol.Policy)
	p.KillAfter = orDefault(pol.KillAfter, supervisor.DefaultKillAfter)
	p.CheckpointTimeout = orDefault(pol.CheckpointTimeout, supervisor.DefaultCheckpointTimeout)
	p.SampleInterval = orDefault(pol.SampleInterval, supervisor.DefaultTickInterval)
	p.Gaps = gaps(p, host)
	return p, nil
}

// checkEnv refuses an --env without a name, and one that names a
// variable of prism-run's protocol (PRISM_SEED...): the supervisor sets
// those, and would silently win over it.
func checkEnv(env []string) error {
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "" || strings.ContainsFunc(k, unicode.IsControl) {
			return fmt.Errorf("%w: --env %q: want K=V or K, with a name K", ErrInput, kv)
		}
		if slices.Contains(supervisor.ProtocolVars(), k) {
			return fmt.Errorf("%w: --env %s: prism-run sets %s for the child (its flag: %s)", ErrInput, k, k, protocolFlag(k))
		}
	}
	return nil
}

// protocolFlag names what sets protocol variable k.
func protocolFlag(k string) string {
	flag := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "PRISM_"), "_", "-"))
	switch flag {
	case "seed", "run-id", "mission", "checkpoint-dir", "resume":
		return "--" + flag
	}
	return "none: it is the supervisor's"
}

// orDefault is d when a layer set it (zero included: zero means zero),
// else def.
func orDefault(d *time.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return *d
}

// gaps lists what the plan asks for that this host cannot give this user.
func gaps(p *Plan, host Host) []Gap {
	var out []Gap
	if p.IsolateNet && host.EUID != 0 {
		out = append(out, Gap{"isolation.isolate_net", "a network namespace needs root (CAP_SYS_ADMIN)"})
	}
	if p.UID != nil && host.EUID != 0 {
		out = append(out, Gap{settingUser, "running the child as another user needs root"})
	}
	if p.NeedsGPU && p.GPUs != nil && len(p.GPUs) == 0 {
		out = append(out, Gap{settingGPU, "--gpus none turns GPU sampling off: they see nothing"})
	}
	if p.Cgroup != (limits.CgroupSpec{}) {
		err := host.CgroupsErr
		if err == nil {
			err = host.Cgroups.CanLimit(p.Cgroup)
		}
		if err != nil {
			out = append(out, p.cgroupGap(err))
		}
	}
	return out
}

// Settings named by gaps that are not single policy fields.
const (
	settingUser = "--user"
	settingGPU  = "the policy's GPU rules"
)

// cgroupGap is the gap of the cgroup limits the plan asks for.
func (p *Plan) cgroupGap(err error) Gap { return Gap{p.cgroupSetting(), err.Error()} }

// cgroupSetting names the cgroup limits the plan asks for.
func (p *Plan) cgroupSetting() string {
	var asked []string
	for _, x := range []struct {
		name string
		set  bool
	}{{"memory", p.Cgroup.Memory > 0}, {"memory_high", p.Cgroup.MemoryHigh > 0}, {"cpus", p.Cgroup.CPUs > 0}, {"pids", p.Cgroup.Pids > 0}} {
		if x.set {
			asked = append(asked, "limits."+x.name)
		}
	}
	return strings.Join(asked, ", ")
}

// HasCgroupGap reports whether the cgroup limits are known not to be
// enforceable.
func (p *Plan) HasCgroupGap() bool {
	return p.Cgroup != (limits.CgroupSpec{}) && p.hasGap(p.cgroupSetting())
}

// Refusal is the error of a strict plan with gaps (nil otherwise): every
// gap, named.
func (p *Plan) Refusal() error {
	if !p.Strict || len(p.Gaps) == 0 {
		return nil
	}
	return refusal(p.Gaps)
}

func refusal(gaps []Gap) error {
	names := make([]string, 0, len(gaps))
	whys := make([]string, 0, len(gaps))
	for _, g := range gaps {
		names = append(names, g.Setting)
		whys = append(whys, g.Why)
	}
	return fmt.Errorf("%w: cannot enforce %s (%s)", ErrRefused, strings.Join(names, ", "), strings.Join(whys, "; "))
}

func isSet(b *bool) bool { return b != nil && *b }

// rlimitsOf turns a resolved [limits] into the child's rlimits.
func rlimitsOf(l policies.Limits) ([]limits.Rlimit, error) {
	var out []limits.Rlimit
	for _, x := range []struct {
		name string
		set  bool
		v    func() uint64
	}{
		{"as", l.AS != nil, func() uint64 { return uint64(*l.AS) }},
		{"nofile", l.Nofile != nil, func() uint64 { return uint64(*l.Nofile) }},
		{"nproc", l.Nproc != nil, func() uint64 { return uint64(*l.Nproc) }},
		{"core", l.Core != nil, func() uint64 { return uint64(*l.Core) }},
		// RLIMIT_CPU is in seconds; round up so that "1500ms" is not 1s.
		{"cpu_time", l.CPUTime != nil, func() uint64 { return uint64(math.Ceil(l.CPUTime.D().Seconds())) }},
		{"fsize", l.Fsize != nil, func() uint64 { return uint64(*l.Fsize) }},
	} {
		if !x.set {
			continue
		}
		r, err := limits.NewRlimit(x.name, x.v())
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInput, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// cgroupSpecOf is the run cgroup's share of [limits].
func cgroupSpecOf(l policies.Limits) limits.CgroupSpec {
	var spec limits.CgroupSpec
	if l.Memory != nil {
		spec.Memory = int64(*l.Memory)
	}
	if l.MemoryHigh != nil {
		spec.MemoryHigh = int64(*l.MemoryHigh)
	}
	if l.CPUs != nil {
		spec.CPUs = *l.CPUs
	}
	if l.Pids != nil {
		spec.Pids = *l.Pids
	}
	return spec
}

// userSpec is who --user names: ids, the supplementary groups and the
// environment (HOME, USER, LOGNAME) the user has in the user database, as
// su and sudo -H give them.
type userSpec struct {
	uid, gid *int
	groups   []int
	env      []string
}

// maxID is the largest uid or gid: (uid_t)-1 is "no change" to
// setresuid(2), not a user.
const maxID = 1<<32 - 2

// lookupUser reads --user: UID[:GID] or NAME[:GROUP]. A name must exist;
// a number need not (a container's user), and then has no groups, and "/"
// for its home.
func lookupUser(s string) (userSpec, error) {
	var out userSpec
	if s == "" {
		return out, nil
	}
	bad := func(err error) (userSpec, error) { return out, fmt.Errorf("%w: --user %q: %v", ErrInput, s, err) }
	name, group, hasGroup := strings.Cut(s, ":")
	var u *user.User
	uid, err := strconv.Atoi(name)
	switch {
	case err == nil && (uid < 0 || uid > maxID):
		return bad(fmt.Errorf("a uid is 0..%d", maxID))
	case err == nil:
		u, _ = user.LookupId(name)
	default:
		if u, err = user.Lookup(name); err != nil {
			return bad(err)
		}
		uid, _ = strconv.Atoi(u.Uid)
	}
	gid := uid
	// A uid the database does not know has no home: "/", as Docker gives
	// it, never prism-run's own.
	out.env = []string{"HOME=/"}
	if u != nil {
		gid, _ = strconv.Atoi(u.Gid)
		out.env = []string{"HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username}
	}
	if hasGroup {
		n, err := strconv.Atoi(group)
		if err != nil {
			g, gerr := user.LookupGroup(group)
			if gerr != nil {
				return bad(gerr)
			}
			n, _ = strconv.Atoi(g.Gid)
		}
		if n < 0 || n > maxID {
			return bad(fmt.Errorf("a gid is 0..%d", maxID))
		}
		gid = n
	} else if u != nil {
		// The user's own groups, as su, sudo and Docker give them
		// (initgroups(3)); an explicit :GROUP is that group alone.
		ids, _ := u.GroupIds()
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil && n != gid {
				out.groups = append(out.groups, n)
			}
		}
	}
	out.uid, out.gid = &uid, &gid
	return out, nil
}

// parseGPUs reads --gpus: "" or "all" = every GPU (nil), "none" = no
// GPU sampling (empty; the child's CUDA_VISIBLE_DEVICES is left as it
// is), "0,2" = those, also given to the child as CUDA_VISIBLE_DEVICES.
// inherited is the CUDA_VISIBLE_DEVICES prism-run was given: a GPU
// outside it is refused (withinAllocation).
func parseGPUs(s string, inherited *string) ([]int, []string, error) {
	switch strings.TrimSpace(s) {
	case "", "all":
		return nil, nil, nil
	case "none":
		return []int{}, nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("%w: --gpus %q: want indices such as 0,2, all or none (GPU UUIDs and ranges are not read)", ErrInput, s)
		}
		if slices.Contains(out, n) {
			// A mistake, whatever CUDA would make of it (its documented
			// rule: the list ends at the first invalid index).
			return nil, nil, fmt.Errorf("%w: --gpus %q: GPU %d is named twice", ErrInput, s, n)
		}
		out = append(out, n)
	}
	var names []string
	for _, n := range out {
		names = append(names, strconv.Itoa(n))
	}
	if err := withinAllocation(fmt.Sprintf("--gpus %q", s), names, inherited); err != nil {
		return nil, nil, err
	}
	return out, []string{"CUDA_VISIBLE_DEVICES=" + strings.ReplaceAll(s, " ", "")}, nil
}

// withinAllocation refuses GPUs (CUDA_VISIBLE_DEVICES entries) outside
// the CUDA_VISIBLE_DEVICES prism-run was given, a scheduler's allocation
// (nil: none was given; set empty: no GPU at all): whether by --gpus or
// --env, the child's GPUs are never more than the job's.
func withinAllocation(what string, gpus []string, inherited *string) error {
	if inherited == nil {
		return nil
	}
	var have []string
	for _, g := range strings.Split(*inherited, ",") {
		have = append(have, strings.TrimSpace(g))
	}
	for _, g := range gpus {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(have, g) {
			return fmt.Errorf("%w: %s: GPU %s is not among this job's (CUDA_VISIBLE_DEVICES=%s): prism-run never widens a scheduler's allocation", ErrInput, what, g, *inherited)
		}
	}
	return nil
}

// needsGPU reports whether a policy has a rule that only GPU samples can
// feed (a GPU metric, or GPU health).
func needsGPU(p *policies.Policy) bool {
	for _, r := range p.Rules {
		if r.Enabled != nil && !*r.Enabled {
			continue
		}
		if (r.Metric != nil && policies.IsGPUMetric(*r.Metric)) || (r.Kind != nil && *r.Kind == policies.KindHealth) {
			return true
		}
	}
	return false
}
