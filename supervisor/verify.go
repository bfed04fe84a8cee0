package supervisor

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/prism-run/prism-run/internal/procfs"
)

// verifyNoNewPrivs reads NoNewPrivs from /proc/PID/status (proc(5)).
func verifyNoNewPrivs(procRoot string, pid int) error {
	st, err := procfs.ReadStatus(procRoot, pid)
	switch {
	case err != nil:
		return fmt.Errorf("verify no_new_privs: %w", err)
	case !st.HasNoNewPrivs:
		return errors.New("verify no_new_privs: this kernel does not report NoNewPrivs")
	case !st.NoNewPrivs:
		return errors.New("verify no_new_privs: the child has NoNewPrivs 0")
	}
	return nil
}

// envSettle is how long a mismatched environment is read again
// (verifyEnvSettled), in envSettleStep steps.
const (
	envSettle     = 200 * time.Millisecond
	envSettleStep = 5 * time.Millisecond
)

// verifyEnvSettled is verifyEnv read again while it finds a variable not
// given, for up to envSettle. The child's environment is read as soon as
// its exec is known to have succeeded (its close-on-exec pipe closed),
// and the kernel closes those (begin_new_exec) before it has written the
// new program's environment bounds (create_elf_tables): a read in
// between saw a cut name ("PRISM_RESTART_", 1 run in ~300 under load).
// A variable that is really there stays, and fails the check.
func verifyEnvSettled(c clock.Clock, procRoot string, pid int, want []string) error {
	err := verifyEnv(procRoot, pid, want)
	for waited := time.Duration(0); err != nil && !errors.Is(err, procfs.ErrGone) && waited < envSettle; waited += envSettleStep {
		c.Sleep(envSettleStep)
		err = verifyEnv(procRoot, pid, want)
	}
	return err
}

// verifyEnv checks /proc/PID/environ (the environment the command was
// exec'd with) holds nothing beyond want.
func verifyEnv(procRoot string, pid int, want []string) error {
	env, err := procfs.ReadEnviron(procRoot, pid)
	if err != nil {
		return fmt.Errorf("verify clean environment: %w", err)
	}
	allowed := map[string]bool{}
	for _, kv := range want {
		allowed[kv] = true
	}
	for _, kv := range env {
		if !allowed[kv] {
			k, _, _ := strings.Cut(kv, "=")
			return fmt.Errorf("verify clean environment: the child has %s, which was not given", k)
		}
	}
	return nil
}
