package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Metrics holds the settings of the Prometheus endpoint. Keys, defaults and
// validation live together in this file; every key is documented in the
// [metrics] section of config.example.toml.
type Metrics struct {
	// Listen is the loopback host:port that serves /metrics; "" turns the
	// endpoint off. Only loopback: on a cluster, kube-rbac-proxy (or another
	// authenticating proxy on the node) is what listens on the network.
	Listen string `toml:"listen"`
}

// DefaultMetricsListen is 9863 on IPv4 loopback.
const DefaultMetricsListen = "127.0.0.1:9863"

// DefaultMetrics returns the endpoint defaults.
func DefaultMetrics() Metrics { return Metrics{Listen: DefaultMetricsListen} }

func (m Metrics) validate() []FieldError {
	if m.Listen == "" {
		return nil
	}
	if msg := checkLoopback(m.Listen); msg != "" {
		return []FieldError{{Key: "metrics.listen", Msg: msg}}
	}
	return nil
}

// checkLoopback says what is wrong with addr as a loopback listen address,
// or "" when it is one: an IP literal in 127.0.0.0/8 or ::1, without a
// zone, and a port from 1 to 65535. Names (localhost) are refused: what
// they resolve to is up to /etc/hosts and the resolver at bind time.
func checkLoopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Sprintf("must be host:port on loopback (e.g. %q), or \"\" for off; got %q", DefaultMetricsListen, addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return fmt.Sprintf("port must be a number from 1 to 65535, got %q", port)
	}
	const why = "the endpoint has no authentication, so it must not be reachable from the network"
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil:
		return fmt.Sprintf("host must be a loopback IP literal (127.0.0.1 or [::1]), got %q: names are resolved at bind time; %s", host, why)
	case ip.Zone() != "":
		return fmt.Sprintf("host must be a loopback IP literal without a zone, got %q: %s", host, why)
	case ip.Is4In6():
		return fmt.Sprintf("host must be a loopback IP literal (write %s, not %s): %s", ip.Unmap(), host, why)
	case !ip.IsLoopback():
		return fmt.Sprintf("host must be a loopback IP literal (127.0.0.1 or [::1]), got %s: %s", host, why)
	}
	return ""
}

// CheckLoopback returns an error naming what is wrong with addr as the
// metrics listen address, or nil.
func CheckLoopback(addr string) error {
	if msg := checkLoopback(addr); msg != "" {
		return fmt.Errorf("metrics listen %q: %s", addr, msg)
	}
	return nil
}
