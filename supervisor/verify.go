package supervisor

import (
	"errors"
	"fmt"
	"strings"

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
