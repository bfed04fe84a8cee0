package main

import (
	"fmt"
	"math"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/prism-run/prism-run/limits"
	"github.com/prism-run/prism-run/policies"
)

// rlimitLayer puts the rlimit flags into the flags layer's [limits], read
// as the policy file reads them, so --dry-run shows them and they layer.
func rlimitLayer(flags map[string]string, l *policies.Limits) error {
	for key, v := range flags {
		switch key {
		case "nofile", "nproc":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return fmt.Errorf("%w: --%s %q: want a count", errUsage, key, v)
			}
			if key == "nofile" {
				l.Nofile = &n
			} else {
				l.Nproc = &n
			}
		case "pids":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return fmt.Errorf("%w: --pids %q: want a positive count", errUsage, v)
			}
			l.Pids = &n
		case "cpus":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f > 0) {
				return fmt.Errorf("%w: --cpus %q: want a positive number of cores", errUsage, v)
			}
			l.CPUs = &f
		case "cpu_time":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%w: --cpu-time %q: want a duration such as 2h", errUsage, v)
			}
			pd := policies.Duration(d)
			l.CPUTime = &pd
		default: // sizes
			f, err := policies.ParseSize(v)
			if err != nil {
				return fmt.Errorf("%w: --%s: %v", errUsage, key, err)
			}
			z := policies.Size(f)
			switch key {
			case "memory":
				l.Memory = &z
			case "memory_high":
				l.MemoryHigh = &z
			case "as":
				l.AS = &z
			case "core":
				l.Core = &z
			case "fsize":
				l.Fsize = &z
			}
		}
	}
	return nil
}

// rlimitsOf turns a resolved [limits] into the child's rlimits.
func rlimitsOf(l policies.Limits) ([]limits.Rlimit, error) {
	var out []limits.Rlimit
	add := func(name string, v uint64) error {
		r, err := limits.NewRlimit(name, v)
		if err == nil {
			out = append(out, r)
		}
		return err
	}
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
		if x.set {
			if err := add(x.name, x.v()); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// lookupUser reads --user: UID[:GID] or a user name (its primary group).
func lookupUser(s string) (*int, *int, error) {
	if s == "" {
		return nil, nil, nil
	}
	name, group, hasGroup := strings.Cut(s, ":")
	var uid, gid int
	if n, err := strconv.Atoi(name); err == nil {
		uid, gid = n, n
		if u, err := user.LookupId(name); err == nil {
			gid, _ = strconv.Atoi(u.Gid)
		}
	} else {
		u, err := user.Lookup(name)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: --user %q: %v", errUsage, s, err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	if hasGroup {
		n, err := strconv.Atoi(group)
		if err != nil {
			g, gerr := user.LookupGroup(group)
			if gerr != nil {
				return nil, nil, fmt.Errorf("%w: --user %q: %v", errUsage, s, gerr)
			}
			n, _ = strconv.Atoi(g.Gid)
		}
		gid = n
	}
	return &uid, &gid, nil
}

// runCgroup makes the run's own cgroup when this host allows it, with the
// policy's cgroup limits. Without limits asked for, a cgroup that cannot
// be made is no error (the tree is then tracked through /proc); with
// limits it is, and the caller decides (strict refuses).
func runCgroup(log zerologger, l policies.Limits, runID string) (limits.Cgroup, limits.CgroupSpec, error) {
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
	host, err := limits.ReadHost()
	if err != nil {
		return nil, spec, err
	}
	if removed, err := limits.CleanStale(host); err != nil {
		log.Warn().Err(err).Msg("stale cgroups of an earlier prism-run")
	} else if len(removed) > 0 {
		log.Info().Strs("cgroups", removed).Msg("removed the cgroups of a prism-run that is gone")
	}
	cg, err := limits.NewCgroup(host, limits.RunCgroupName(os.Getpid(), runID), spec)
	if err != nil {
		if spec == (limits.CgroupSpec{}) {
			log.Debug().Err(err).Msg("no cgroup for this run; the process tree is tracked through /proc")
		}
		return nil, spec, err
	}
	log.Info().Str("cgroup", cg.Path()).Stringer("mode", cg.Mode()).Msg("run cgroup created")
	return cg, spec, nil
}
