package daemon

import (
	"errors"
	"syscall"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/metrics"
	"github.com/sirupsen/logrus"
)

// MetricsDropIn is where the packages put the drop-in that lets the unit
// open loopback IP sockets (its sandbox allows AF_UNIX only).
const MetricsDropIn = "/usr/share/cgroupclean/systemd/metrics.conf"

// ServeMetrics starts the /metrics endpoint on cfg.Metrics.Listen and
// returns the function that stops it. A bind that fails is logged and
// nothing else happens: cleaning does not depend on being observed.
func ServeMetrics(cfg config.Config, m *metrics.Metrics, log logrus.FieldLogger) (stop func()) {
	addr := cfg.Metrics.Listen
	if addr == "" || m == nil {
		return func() {}
	}
	srv, err := m.Listen(addr)
	if err != nil {
		f := log.WithFields(logrus.Fields{audit.Error: err.Error(), "LISTEN": addr})
		if errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			// The unit's sandbox (RestrictAddressFamilies=AF_UNIX) at work.
			f.Warnf("metrics not served: the service may not open IP sockets; install %s as /etc/systemd/system/cgroupcleand.service.d/metrics.conf, or set metrics.listen = \"\" to silence this", MetricsDropIn)
		} else {
			f.Warnf("metrics not served: %v (cleaning goes on)", err)
		}
		return func() {}
	}
	log.WithField("LISTEN", srv.Addr()).Infof("metrics served at http://%s/metrics", srv.Addr())
	return func() { _ = srv.Close() }
}
