package limits

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/internal/procfs"
)

// Signal sends sig to the process id names, and to no other. It opens a
// pidfd for the pid (pidfd_open(2), Linux >= 5.3), checks that the process
// with that pid started when id says (a reused pid has a later start), and
// signals through the pidfd (pidfd_send_signal(2)), which refers to that
// one process: the pid cannot be reused between the check and the signal.
// It returns procfs.ErrGone when id's process is not there any more. On a
// kernel without pidfds it checks and then uses kill(2), which leaves the
// race the pidfd closes.
func Signal(root string, id procfs.Identity, sig unix.Signal) error {
	fd, err := unix.PidfdOpen(id.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w: %d", procfs.ErrGone, id.PID)
	}
	pidfd := err == nil
	if pidfd {
		defer unix.Close(fd)
	} else if !errors.Is(err, unix.ENOSYS) {
		return err
	}
	now, err := procfs.IdentityOf(root, id.PID)
	if err != nil {
		return err
	}
	if now != id {
		return fmt.Errorf("%w: pid %d is another process now", procfs.ErrGone, id.PID)
	}
	if pidfd {
		return unix.PidfdSendSignal(fd, sig, nil, 0)
	}
	return unix.Kill(id.PID, sig)
}
