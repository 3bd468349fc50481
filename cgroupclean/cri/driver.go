package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Cgroup driver names, as kubelet's --cgroup-driver spells them.
const (
	DriverSystemd  = "systemd"
	DriverCgroupfs = "cgroupfs"
)

// cgroupDriver returns the runtime's cgroup driver, "" when it cannot be
// told. The answer is cached once the runtime has answered Version, so a
// runtime that was down during the first call is asked again later.
func (c *Client) cgroupDriver(ctx context.Context) string {
	c.driverMu.Lock()
	defer c.driverMu.Unlock()
	if c.driverDone {
		return c.driver
	}
	vctx, cancel := context.WithTimeout(ctx, c.timeout)
	v, err := c.rt.Version(vctx, &runtimeapi.VersionRequest{})
	cancel()
	if err != nil {
		return ""
	}
	c.driverDone = true
	// Ask each runtime in its own way: an HTTP request on containerd's
	// gRPC-only socket only earns an error in its log.
	switch v.GetRuntimeName() {
	case "cri-o":
		c.driver, _ = c.crioInfoDriver(ctx)
	default:
		c.driver = c.statusConfigDriver(ctx)
	}
	return c.driver
}

// statusConfigDriver reads containerd's CRI config from the verbose Status
// answer (info["config"]).
func (c *Client) statusConfigDriver(ctx context.Context) string {
	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	st, err := c.rt.Status(sctx, &runtimeapi.StatusRequest{Verbose: true})
	if err != nil {
		return ""
	}
	return parseContainerdConfig([]byte(st.GetInfo()["config"]))
}

// containerdConfig is the part of containerd's CRI config (as its verbose
// Status marshals it, 1.6 to 2.x) that names the cgroup driver: the
// default runtime's runc option SystemdCgroup.
type containerdConfig struct {
	Containerd struct {
		DefaultRuntimeName string `json:"defaultRuntimeName"`
		Runtimes           map[string]struct {
			Options map[string]any `json:"options"`
		} `json:"runtimes"`
	} `json:"containerd"`
}

// parseContainerdConfig returns "systemd" or "cgroupfs" when the default
// runtime sets SystemdCgroup explicitly, "" otherwise.
func parseContainerdConfig(data []byte) string {
	var cfg containerdConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return ""
	}
	rt, ok := cfg.Containerd.Runtimes[cfg.Containerd.DefaultRuntimeName]
	if !ok {
		return ""
	}
	switch rt.Options["SystemdCgroup"] {
	case true:
		return DriverSystemd
	case false:
		return DriverCgroupfs
	}
	return ""
}

// crioInfoDriver asks CRI-O's HTTP endpoint GET /info, served on the same
// unix socket as CRI, for cgroup_driver.
func (c *Client) crioInfoDriver(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.path)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://crio/info", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", fmt.Errorf("crio info %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("crio info %s: HTTP %s", c.path, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("crio info %s: %w", c.path, err)
	}
	return parseCrioInfo(body)
}

// parseCrioInfo reads cgroup_driver from CRI-O's /info JSON; an unknown
// value gives "".
func parseCrioInfo(body []byte) (string, error) {
	var info struct {
		CgroupDriver string `json:"cgroup_driver"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return "", fmt.Errorf("crio info: %w", err)
	}
	switch info.CgroupDriver {
	case DriverSystemd, DriverCgroupfs:
		return info.CgroupDriver, nil
	}
	return "", nil
}
