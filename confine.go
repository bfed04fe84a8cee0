package main

import (
	"fmt"
	"math"
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
