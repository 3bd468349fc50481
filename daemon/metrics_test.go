package daemon

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/metrics"
)

// A port already taken: the bind failure is logged with the address and
// ServeMetrics returns (the caller goes on with its passes).
func TestServeMetricsBindFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	cfg := config.Default()
	cfg.Metrics.Listen = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		ServeMetrics(cfg, metrics.New("test"), log)()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeMetrics blocked on a failed bind")
	}
	if s := out.String(); !strings.Contains(s, "metrics not served") || !strings.Contains(s, ln.Addr().String()) || !strings.Contains(s, "address already in use") {
		t.Fatalf("log %q", s)
	}
}

// Serves /metrics on the configured address until stopped; "" serves
// nothing.
func TestServeMetrics(t *testing.T) {
	var out bytes.Buffer
	log := logrus.New()
	log.SetOutput(&out)
	cfg := config.Default()
	cfg.Metrics.Listen = ""
	ServeMetrics(cfg, metrics.New("test"), log)()
	if out.Len() != 0 {
		t.Fatalf("listen \"\" logged %q", out.String())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg.Metrics.Listen = addr
	stop := ServeMetrics(cfg, metrics.New("v9"), log)
	res, err := http.Get(fmt.Sprintf("http://%s/metrics", addr))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `cgroupclean_build_info{cgroup_mode="unknown",driver="unknown",version="v9"} 1`) {
		t.Fatalf("body lacks build_info:\n%s", body)
	}
	stop()
	if _, err := http.Get(fmt.Sprintf("http://%s/metrics", addr)); err == nil {
		t.Fatal("still served after stop")
	}
}
