package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"
)

// Server serves /metrics on one listener.
type Server struct {
	srv *http.Server
	ln  net.Listener
	// done is closed when Serve has returned.
	done chan struct{}
}

// Listen binds addr, a loopback IP literal with a port, and serves the
// registry at /metrics until Close. The endpoint has no authentication, so
// an address that is not a loopback literal is refused before the bind,
// and a bound address that is not loopback is closed again. A bind that
// fails is returned: the daemon logs it and goes on cleaning without
// metrics.
func (m *Metrics) Listen(addr string) (*Server, error) {
	if err := loopbackLiteral(addr); err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	if err := boundLoopback(ln.Addr()); err != nil {
		ln.Close()
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "cgroupcleand: metrics at /metrics")
	})
	s := &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    16 << 10,
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // Serve only fails when the listener does; Close follows.
		}
	}()
	return s, nil
}

// loopbackLiteral refuses anything but an IP literal in 127.0.0.0/8 or
// ::1, without a zone (config validation says the same, with the key).
func loopbackLiteral(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" || ip.Is4In6() || !ip.IsLoopback() {
		return fmt.Errorf("host %q is not a loopback IP literal (127.0.0.1, [::1])", host)
	}
	return nil
}

// boundLoopback checks the address the kernel bound.
func boundLoopback(a net.Addr) error {
	ta, ok := a.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() || ta.Zone != "" {
		return fmt.Errorf("bound %s, which is not loopback: refused, the endpoint has no authentication", a)
	}
	return nil
}

// Addr is the address actually bound.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving, letting scrapes in flight end for up to a second.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
