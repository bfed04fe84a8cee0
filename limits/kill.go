package limits

import (
	"errors"
	"fmt"
	"time"
)

// Kill rounds: how many, and how far apart. A process that dies of
// SIGKILL is gone within a scheduler tick; one that keeps forking, or is
// in uninterruptible sleep, takes more rounds; 100 rounds of 10 ms is a
// second before giving up and saying so.
const (
	killRounds = 100
	killEvery  = 10 * time.Millisecond
)

// errSurvivors: processes were still there after every round.
var errSurvivors = errors.New("processes survive SIGKILL")

// untilEmpty is prism-run's one kill-and-retry loop: it runs round (which
// kills what it finds and says how many it found) until a round finds
// nothing, sleeping killEvery between rounds, at most killRounds times.
// It returns how many were left after the last round.
func untilEmpty(sleep func(time.Duration), round func() (left int, err error)) (int, error) {
	left := 0
	for i := 0; i < killRounds; i++ {
		n, err := round()
		if err != nil {
			return n, err
		}
		if n == 0 {
			return 0, nil
		}
		left = n
		sleep(killEvery)
	}
	return left, fmt.Errorf("%w (%d after %d rounds)", errSurvivors, left, killRounds)
}

// Sleeper is the part of a clock the kill loops need (k8s.io/utils/clock
// has it); tests pass a fake one.
type Sleeper interface{ Sleep(time.Duration) }

// KillAndDelete removes a run's cgroup, killing whatever is still in it
// first: rmdir(2) fails with EBUSY while the cgroup holds a process (a
// zombie not yet reaped included), so it is tried until it succeeds,
// with a kill of the whole cgroup between tries.
func KillAndDelete(cg Cgroup, s Sleeper) error {
	var lastErr error
	_, err := untilEmpty(s.Sleep, func() (int, error) {
		if lastErr = cg.Delete(); lastErr == nil {
			return 0, nil
		}
		_ = cg.Kill()
		return 1, nil
	})
	if err != nil {
		return fmt.Errorf("%w: remove %s: %w", ErrCgroup, cg.Path(), lastErr)
	}
	return nil
}
