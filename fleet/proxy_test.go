package fleet

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
)

// criProxy is a node's CRI endpoint: a unix socket that forwards every
// connection to the one shared containerd. Closing it is a runtime outage
// for that node alone.
type criProxy struct {
	path, target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	done  chan struct{}
}

func newCRIProxy(t *testing.T, path, target string) *criProxy {
	t.Helper()
	p := &criProxy{path: path, target: target}
	if err := p.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// open listens again (after close).
func (p *criProxy) open() error {
	_ = os.Remove(p.path)
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln, p.done = ln, make(chan struct{})
	p.mu.Unlock()
	go p.serve(ln, p.done)
	return nil
}

func (p *criProxy) serve(ln net.Listener, done chan struct{}) {
	defer close(done)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("unix", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go pipe(c, up)
		go pipe(up, c)
	}
}

func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		_ = src.Close()
	}
	_ = dst.Close()
}

// close stops listening and cuts every connection: the node's runtime is
// gone (connection refused from now on).
func (p *criProxy) close() {
	p.mu.Lock()
	ln, done, conns := p.ln, p.done, p.conns
	p.ln, p.conns = nil, nil
	p.mu.Unlock()
	if ln == nil {
		return
	}
	_ = ln.Close()
	<-done
	for _, c := range conns {
		_ = c.Close()
	}
}
