package daemon

import (
	"errors"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// Clock is the time the loop runs on, injected so the scheduling and the
// watchdog rule are tested without waiting.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Notifier sends sd_notify(3) states ("READY=1", "STATUS=...").
type Notifier interface {
	Notify(state string) error
}

// ErrNoNotifySocket is returned by SystemdNotifier when $NOTIFY_SOCKET is
// not set: the daemon was not started by systemd as Type=notify.
var ErrNoNotifySocket = errors.New("NOTIFY_SOCKET not set")

// SystemdNotifier sends states to $NOTIFY_SOCKET.
type SystemdNotifier struct{}

// Notify sends state. Without $NOTIFY_SOCKET it returns ErrNoNotifySocket.
func (SystemdNotifier) Notify(state string) error {
	sent, err := sddaemon.SdNotify(false, state)
	if err != nil {
		return err
	}
	if !sent {
		return ErrNoNotifySocket
	}
	return nil
}

// WatchdogFromEnv returns WATCHDOG_USEC when systemd runs a watchdog for
// this process (WATCHDOG_PID, if set, is ours), else 0.
func WatchdogFromEnv() (time.Duration, error) {
	return sddaemon.SdWatchdogEnabled(false)
}
