package logging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"golang.org/x/sys/unix"
)

// JournalSocket is where journald takes native-protocol datagrams.
const JournalSocket = "/run/systemd/journal/socket"

// Bounds on waiting for journald: within any Window, sends wait at most
// Budget in all. go-systemd's journal.Send writes on an unconnected
// datagram socket with no deadline: when journald stops reading (SIGSTOP,
// a hung disk) its queue fills (net.unix.max_dgram_qlen datagrams) and
// Send blocks until journald reads again, holding a pass forever.
const (
	DefaultSendBudget = time.Second
	DefaultSendWindow = 30 * time.Second
)

// ErrJournalStalled is returned when journald did not take an entry
// within the wait left in the budget.
var ErrJournalStalled = errors.New("journald did not read its socket in time")

// sender writes entries to journald over its own connected datagram
// socket (connected, so the kernel reports the socket writable only when
// journald's queue has room, and a write deadline can end the wait).
type sender struct {
	path   string
	budget time.Duration
	window time.Duration

	mu          sync.Mutex
	conn        *net.UnixConn
	windowStart time.Time
	waited      time.Duration
}

func newSender(path string) *sender {
	return &sender{path: path, budget: DefaultSendBudget, window: DefaultSendWindow}
}

// send writes one entry. It returns nil once journald's socket holds the
// entry, ErrJournalStalled (wrapping os.ErrDeadlineExceeded) when the
// wait allowed ran out, or the socket's error (journald gone).
func (s *sender) send(msg string, pri journal.Priority, vars map[string]string) error {
	data := encodeEntry(msg, pri, vars)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.windowStart) >= s.window {
		s.windowStart, s.waited = now, 0
	}
	err := s.write(data, max(s.budget-s.waited, 0))
	s.waited += time.Since(now)
	return err
}

// write tries once without waiting, then, while wait lasts, waits for room
// in journald's queue. With no wait left it is one non-blocking sendmsg.
func (s *sender) write(data []byte, wait time.Duration) error {
	if s.conn == nil {
		c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: s.path, Net: "unixgram"})
		if err != nil {
			return fmt.Errorf("connect %s: %w", s.path, err)
		}
		s.conn = c
	}
	err := s.sendmsg(data, nil, wait)
	if errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS) {
		err = s.writeLarge(data, wait)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EAGAIN), errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w (waited up to %s): %w", ErrJournalStalled, wait, err)
	}
	// A journald that was restarted has a new socket: connect again next time.
	_ = s.conn.Close()
	s.conn = nil
	return err
}

// sendmsg writes one datagram on the connected socket, waiting at most
// wait for room. A deadline already passed would fail before trying, so
// no wait means no deadline and a single attempt.
func (s *sender) sendmsg(data, oob []byte, wait time.Duration) error {
	rc, err := s.conn.SyscallConn()
	if err != nil {
		return err
	}
	var deadline time.Time
	if wait > 0 {
		deadline = time.Now().Add(wait)
	}
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			serr = unix.Sendmsg(int(fd), data, oob, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
			if serr != unix.EINTR {
				break
			}
		}
		// false: wait until the socket is writable (or the deadline).
		return serr != unix.EAGAIN || wait == 0
	})
	if err != nil {
		return err
	}
	return serr
}

// writeLarge passes an entry too large for one datagram as a sealed memfd,
// as sd_journal_send does.
func (s *sender) writeLarge(data []byte, wait time.Duration) error {
	fd, err := unix.MemfdCreate("journal-entry", unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd for a large journal entry: %w", err)
	}
	defer unix.Close(fd)
	for b := data; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			return fmt.Errorf("write memfd: %w", err)
		}
		b = b[n:]
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fmt.Errorf("seal memfd: %w", err)
	}
	return s.sendmsg(nil, unix.UnixRights(fd), wait)
}

// encodeEntry is the native protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/):
// "NAME=value\n", or for a value with a newline "NAME\n", its length as a
// 64-bit little-endian number, the value and "\n".
func encodeEntry(msg string, pri journal.Priority, vars map[string]string) []byte {
	size := len(msg) + 32
	for k, v := range vars {
		size += len(k) + len(v) + 10
	}
	var b bytes.Buffer
	b.Grow(size)
	appendField(&b, "PRIORITY", strconv.Itoa(int(pri)))
	appendField(&b, "MESSAGE", msg)
	for k, v := range vars {
		appendField(&b, k, v)
	}
	return b.Bytes()
}

func appendField(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	if !strings.Contains(value, "\n") {
		b.WriteByte('=')
		b.WriteString(value)
		b.WriteByte('\n')
		return
	}
	b.WriteByte('\n')
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(value)))
	b.Write(n[:])
	b.WriteString(value)
	b.WriteByte('\n')
}
