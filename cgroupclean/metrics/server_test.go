package metrics

import (
	"net"
	"strings"
	"testing"
)

// The endpoint has no authentication: whatever address reaches Listen,
// only a loopback IP literal is bound, and the bound address is checked.
func TestListenOnlyLoopback(t *testing.T) {
	m := New("test")
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		s, err := m.Listen(addr)
		if err != nil {
			if strings.Contains(err.Error(), "cannot assign requested address") {
				t.Logf("%s: no such address on this machine: %v", addr, err)
				continue
			}
			t.Fatalf("Listen(%s): %v", addr, err)
		}
		if ip := s.ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			t.Errorf("Listen(%s) bound %s", addr, ip)
		}
		s.Close()
	}
	for _, addr := range []string{":0", "0.0.0.0:0", "[::]:0", "localhost:0", "[::1%lo]:0", "[::ffff:127.0.0.1]:0", "10.0.0.1:0"} {
		if s, err := m.Listen(addr); err == nil {
			s.Close()
			t.Errorf("Listen(%s) bound %s, want refused", addr, s.Addr())
		} else if !strings.Contains(err.Error(), "not a loopback IP literal") {
			t.Errorf("Listen(%s): %v, want it to say why", addr, err)
		}
	}
}

func TestBoundAddressChecked(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4zero, Port: 9863},
		&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 9863},
		&net.TCPAddr{IP: net.IPv6loopback, Port: 9863, Zone: "eth0"},
		&net.UnixAddr{Name: "/tmp/x", Net: "unix"},
	} {
		if err := boundLoopback(a); err == nil || !strings.Contains(err.Error(), "not loopback") {
			t.Errorf("boundLoopback(%s) = %v", a, err)
		}
	}
	if err := boundLoopback(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}); err != nil {
		t.Error(err)
	}
}
