package supervisor

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
)

// Environment variables of the control protocol: what prism-run gives the
// child (docs/DESIGN.md, "Control protocol").
const (
	EnvRunID         = "PRISM_RUN_ID"
	EnvMission       = "PRISM_MISSION"
	EnvControl       = "PRISM_CONTROL"
	EnvCheckpointDir = "PRISM_CHECKPOINT_DIR"
	EnvResume        = "PRISM_RESUME"
	EnvRestartCount  = "PRISM_RESTART_COUNT"
	EnvSeed          = "PRISM_SEED"
)

// ProtocolVars are the variables prism-run gives the child: the child's,
// never prism-run's own settings.
func ProtocolVars() []string {
	return []string{EnvRunID, EnvMission, EnvControl, EnvCheckpointDir, EnvResume, EnvRestartCount, EnvSeed}
}

// childEnv is the attempt's environment: the base (prism-run's own, or
// Config.Env), cleaned when asked, then the protocol's variables.
func (a *attempt) childEnv() []string {
	cfg := &a.r.cfg
	base := cfg.Env
	if base == nil {
		base = os.Environ()
	}
	// prism-run's own settings, unless --env names one to pass on.
	drop := slices.DeleteFunc(slices.Clone(cfg.DropEnv), func(k string) bool { return slices.Contains(cfg.KeepEnv, k) })
	base = without(base, drop)
	if cfg.CleanEnv {
		base = cleanEnv(base, cfg.KeepEnv)
	} else {
		base = append(base[:len(base):len(base)], setEnv(cfg.KeepEnv)...)
	}
	for _, kv := range cfg.DefaultEnv {
		k, _, _ := strings.Cut(kv, "=")
		// Appended after an empty K: os/exec keeps a key's last value.
		if !slices.ContainsFunc(base, func(b string) bool { return strings.HasPrefix(b, k+"=") && len(b) > len(k)+1 }) {
			base = append(base, kv)
		}
	}
	ours := map[string]string{
		EnvRunID:         cfg.RunID,
		EnvControl:       a.r.rep.ControlFile,
		EnvCheckpointDir: a.r.rep.CheckpointDir,
		EnvSeed:          strconv.FormatUint(cfg.Seed, 10),
		EnvRestartCount:  strconv.Itoa(a.n),
	}
	if cfg.Mission != "" {
		ours[EnvMission] = cfg.Mission
	}
	if a.resume != "" {
		ours[EnvResume] = a.resume
	}
	if a.ckDir != "" {
		ours[EnvCheckpointDir] = a.ckDir
	}
	notify := []string{EnvNotifySocket, EnvWatchdogUsec, EnvWatchdogPID}
	if a.notify != nil {
		// prism-run's own (its service manager's) are not the child's.
		base = without(base, notify)
		ours[EnvNotifySocket] = a.notify.path
		if us := watchdogUsec(cfg.Rules); us > 0 {
			ours[EnvWatchdogUsec] = strconv.FormatInt(us, 10)
		}
	}
	env := make([]string, 0, len(base)+len(ours))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		// A nested prism-run replaces the outer one's protocol variables.
		if _, mine := ours[k]; !mine && k != EnvResume && k != EnvMission {
			env = append(env, kv)
		}
	}
	for _, k := range []string{EnvRunID, EnvMission, EnvControl, EnvCheckpointDir, EnvResume, EnvSeed, EnvRestartCount, EnvNotifySocket, EnvWatchdogUsec} {
		if v, ok := ours[k]; ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// cleanEnv keeps what a program needs to run at all, the GPUs a scheduler
// gave the job (CUDA_VISIBLE_DEVICES: without it the child would see
// every GPU of the node) and the protocol's variables, plus what keep
// names (the seed's zero trust: nothing of the caller's environment leaks
// in unasked).
func cleanEnv(base, keep []string) []string {
	allowed := map[string]bool{"PATH": true, "HOME": true, "LANG": true, "TERM": true, "CUDA_VISIBLE_DEVICES": true}
	for _, k := range keep {
		if !strings.Contains(k, "=") {
			allowed[k] = true
		}
	}
	var out []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if allowed[k] || strings.HasPrefix(k, "PRISM_") {
			out = append(out, kv)
		}
	}
	return append(out, setEnv(keep)...)
}

// setEnv returns the "K=V" entries of keep. They are appended after the
// base: os/exec keeps the last value of a duplicated key (Cmd.Env), so
// they override.
func setEnv(keep []string) []string {
	var out []string
	for _, kv := range keep {
		if strings.Contains(kv, "=") {
			out = append(out, kv)
		}
	}
	return out
}

// without returns env less the variables named in drop.
func without(env, drop []string) []string {
	if len(drop) == 0 {
		return env
	}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(drop, k) {
			out = append(out, kv)
		}
	}
	return out
}

// watchdogUsec is the WATCHDOG_USEC a child gets: the shortest timeout of
// the heartbeat rules that a WATCHDOG=1 feeds (metric "watchdog", or
// none: any message of the child), in microseconds; 0 when none would.
// A program using sd_watchdog_enabled(3) then sends WATCHDOG=1 every
// half of it, as it would under systemd's WatchdogSec=.
func watchdogUsec(rules []policies.Rule) int64 {
	var least time.Duration
	for _, r := range rules {
		h, ok := r.(*policies.Heartbeat)
		if ok && (h.Metric == "" || h.Metric == markers.NotifyWatchdog) && (least == 0 || h.Timeout < least) {
			least = h.Timeout
		}
	}
	return least.Microseconds()
}
