package supervisor

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/prism-run/prism-run/markers"
	"github.com/prism-run/prism-run/policies"
)

// Environment variables of systemd's notification protocol
// (sd_notify(3), sd_watchdog_enabled(3)).
const (
	EnvNotifySocket = "NOTIFY_SOCKET"
	EnvWatchdogUsec = "WATCHDOG_USEC"
	EnvWatchdogPID  = "WATCHDOG_PID"
)

// notifySocket is an attempt's sd_notify socket: a unix datagram socket
// in the run folder whose path the child gets as NOTIFY_SOCKET. Each
// datagram becomes observations (markers.ParseNotify) on the attempt's
// loop, in the order sent. One per attempt, so a message of an earlier
// child never reaches a later one's rules.
type notifySocket struct {
	conn  *net.UnixConn
	path  string
	token []byte        // the end-of-stream datagram: random, so no child can forge it
	done  chan struct{} // closed when the reader has handed on everything
	ready bool          // READY=1 was logged
	// outerPrism: the outer socket is a prism-run's (this one is its
	// child): the marker lines go on too, and may wait for room.
	outerPrism bool
	// outer is prism-run's own NOTIFY_SOCKET (it runs under systemd with
	// Type=notify): READY=1 and STATUS= are passed on to it.
	outer string
}

// maxSunPath is the room for a path in a sockaddr_un (unix(7): 108
// bytes, NUL included).
const maxSunPath = 107

// openNotify binds the attempt's socket in dir, 0600 and owned by the
// child's user when it runs as another (so only the child's user and
// root can send). A path too long for a unix socket is an error.
func openNotify(dir string, uid *int, outer string, outerPrism bool) (*notifySocket, error) {
	path := filepath.Join(dir, "notify")
	if len(path) > maxSunPath {
		return nil, fmt.Errorf("sd_notify socket %s: longer than a unix socket path may be (%d bytes; a shorter $TMPDIR or --run-id)", path, maxSunPath)
	}
	_ = os.Remove(path) // an earlier attempt's
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("sd_notify socket: %w", err)
	}
	err = os.Chmod(path, 0o600)
	if err == nil && uid != nil {
		err = os.Lchown(path, *uid, -1)
	}
	if err == nil {
		// A bigger queue than the default 212 KiB (a burst of markers
		// from a child that speaks only sd_notify); the kernel caps it
		// at net.core.rmem_max.
		err = conn.SetReadBuffer(1 << 20)
	}
	if err != nil {
		_ = conn.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("sd_notify socket %s: %w", path, err)
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	return &notifySocket{conn: conn, path: path, token: []byte("PRISM_RUN_END=" + hex.EncodeToString(tok)),
		done: make(chan struct{}), outer: outer, outerPrism: outerPrism}, nil
}

// read hands each datagram's observations to the loop until the end
// token (or a read error: the socket closed); then closes done.
// Descriptors sent along (FDSTORE=1, BARRIER=1) are closed at once: the
// barrier's sender waits for exactly that.
func (n *notifySocket) read(p *markers.Parser, clock policies.Clock, out chan<- batch, log zerolog.Logger) {
	defer close(n.done)
	buf := make([]byte, markers.MaxNotifyMessage)
	oob := make([]byte, unix.CmsgSpace(253*4)) // SCM_MAX_FD descriptors
	names := markers.Names{}
	for {
		k, oobn, flags, _, err := n.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		closeRights(oob[:oobn])
		msg := buf[:k]
		if string(msg) == string(n.token) {
			return
		}
		var obs []policies.Observation
		var bad []error
		if flags&unix.MSG_TRUNC != 0 {
			// Cut by the socket: none of it is read (a value cut short
			// must not reach a rule), as systemd drops it whole.
			bad = []error{fmt.Errorf("%w: an sd_notify message over %d bytes, dropped whole", markers.ErrMalformed, markers.MaxNotifyMessage)}
		} else {
			obs, bad = p.ParseNotify(nil, msg, clock.Now(), names)
		}
		for _, o := range obs {
			if o.Name == markers.NotifyReady && !n.ready { // many daemons send READY=1 with every STATUS
				n.ready = true
				log.Info().Msg("the child is ready (sd_notify READY=1)")
			}
			if o.Name == markers.NotifyStatus {
				log.Debug().Str("status", o.Text).Msg("sd_notify STATUS")
			}
		}
		if len(obs) > 0 && n.outer != "" {
			n.passOn(relayed(msg, p.Prefix(), n.outerPrism))
		}
		if len(obs) > 0 || len(bad) > 0 {
			out <- batch{obs: obs, bad: bad}
		}
	}
}

// closeRights closes every descriptor an SCM_RIGHTS message carried.
func closeRights(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil {
			for _, fd := range fds {
				_ = unix.Close(fd)
			}
		}
	}
}

// relayed is what of a child's message goes on to prism-run's own
// NOTIFY_SOCKET: READY=1 and STATUS= (for a service manager), and, when
// the outer socket is a prism-run's, the marker assignments
// (PREFIX_name=value: the outer prism-run reads them as this one does, a
// checkpoint acknowledgement included).
func relayed(msg []byte, prefix string, markers bool) []byte {
	var out []byte
	for line := range bytes.SplitSeq(msg, []byte{'\n'}) {
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if string(line) == "READY=1" || bytes.HasPrefix(line, []byte("STATUS=")) || markers && bytes.HasPrefix(line, []byte(prefix+"_")) {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

// relayWait bounds how long a relayed message waits for room in the
// outer socket's queue (net.unix.max_dgram_qlen, 10 by default): as long
// as the child's own send would block, within reason.
const relayWait = time.Second

// passOn sends msg to prism-run's own NOTIFY_SOCKET: a service manager
// waiting for READY=1 hears it when the child is ready, not when
// prism-run started; an outer prism-run hears the child's markers. It
// waits up to relayWait for room (a full queue must not drop an outer
// prism-run's checkpoint acknowledgement), so a flood slows the child
// as its own sends to a full socket would.
func (n *notifySocket) passOn(msg []byte) {
	if len(msg) > 0 {
		_ = sendDatagram(n.outer, msg, relayWait)
	}
}

// sendDatagram sends msg to the unix datagram socket at addr (a path, or
// "@name" for an abstract one, as sd_notify(3) reads NOTIFY_SOCKET),
// from a socket of its own; it waits up to wait for room in a full
// queue (0: not at all, EAGAIN).
func sendDatagram(addr string, msg []byte, wait time.Duration) error {
	if addr != "" && addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	typ := unix.SOCK_DGRAM | unix.SOCK_CLOEXEC
	if wait == 0 {
		typ |= unix.SOCK_NONBLOCK
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if wait > 0 {
		tv := unix.NsecToTimeval(wait.Nanoseconds())
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	}
	return unix.Sendto(fd, msg, unix.MSG_NOSIGNAL, &unix.SockaddrUnix{Name: addr})
}

// notifyDrain bounds how long the end of an attempt waits for the
// reader to hand on what the child sent before it exited.
const notifyDrain = time.Second

// finish ends the socket once no process of the attempt is left: the end
// token, sent last, makes the reader hand on every datagram queued
// before it and stop (unix datagram sockets keep their order). A full
// queue takes the token late or not at all: the reader then stops at
// the deadline.
func (n *notifySocket) finish() {
	if sendDatagram(n.path, n.token, 0) != nil {
		_ = n.conn.SetReadDeadline(time.Now().Add(notifyDrain / 10))
	}
}

// close closes the socket and removes its file (a unixgram socket's
// file outlives it otherwise); closing twice is harmless.
func (n *notifySocket) close() error {
	err := n.conn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	_ = os.Remove(n.path)
	return err
}
