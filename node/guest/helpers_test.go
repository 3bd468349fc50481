//go:build nodeguest

// Package guest is the node test's guest side: Go tests compiled on the
// host (`go test -c -tags nodeguest`) and run inside the VM that
// node/run.sh boots, where systemd is PID 1 on a cgroup v2 only kernel and
// containerd runs with the systemd cgroup driver. The build tag keeps them
// out of `go test ./...`: they install packages and start units on the
// machine they run on, which must be that VM.
package guest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cgroupclean/cgroupclean/internal/testbed"
)

const (
	cgroupRoot       = "/sys/fs/cgroup"
	containerdSocket = "/run/containerd/containerd.sock"
	kubeletPods      = "/var/lib/kubelet/pods"
)

// share is the 9p share the host hands the package and programs in.
func share(t testing.TB) string {
	t.Helper()
	s := os.Getenv("NODE_SHARE")
	if s == "" {
		t.Fatal("NODE_SHARE is not set: these tests run only inside the node test's VM (make node-test)")
	}
	return s
}

// requireNode fails unless this is the node the tests are meant for:
// systemd as PID 1 on a cgroup v2 only mount.
func requireNode(t testing.TB) {
	t.Helper()
	share(t)
	testbed.RequireRoot(t)
	var st = mustRun(t, 10*time.Second, "stat", "-fc", "%T", cgroupRoot)
	if strings.TrimSpace(st) != "cgroup2fs" {
		t.Fatalf("%s is %q, want cgroup2fs (a v2 only node)", cgroupRoot, st)
	}
	comm, err := os.ReadFile("/proc/1/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "systemd" {
		t.Fatalf("PID 1 is %q (%v), want systemd", comm, err)
	}
}

// run runs a command with a time bound and returns its combined output.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %s: %w", name, strings.Join(args, " "), timeout, ctx.Err())
	} else if err != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return string(out), err
}

func mustRun(t testing.TB, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	start := time.Now()
	out, err := run(timeout, name, args...)
	if d := time.Since(start); d > 10*time.Second {
		t.Logf("%s %s took %s", name, strings.Join(args, " "), d.Round(100*time.Millisecond))
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// unitProps reads properties of a unit with systemctl show.
func unitProps(t testing.TB, unit string, props ...string) map[string]string {
	t.Helper()
	out := mustRun(t, 30*time.Second, "systemctl", "show", unit, "-p", strings.Join(props, ","))
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// sliceName is kubelet's systemd-driver name of a pod slice (the QoS
// classes as kubelet's pod_container_manager names them).
func sliceName(qos, uid string) string {
	u := strings.ReplaceAll(uid, "-", "_")
	if qos == "guaranteed" {
		return "kubepods-pod" + u + ".slice"
	}
	return "kubepods-" + qos + "-pod" + u + ".slice"
}

// slicePath is the cgroup directory of a slice: systemd nests a slice
// under every prefix of its name.
func slicePath(slice string) string {
	parts := strings.Split(strings.TrimSuffix(slice, ".slice"), "-")
	p := cgroupRoot
	for i := range parts {
		p = filepath.Join(p, strings.Join(parts[:i+1], "-")+".slice")
	}
	return p
}

// systemBus is a connection to PID 1 over the system bus.
func systemBus(t testing.TB) *sddbus.Conn {
	t.Helper()
	// The context lives as long as the connection (go-systemd closes it
	// when the context ends).
	c, err := sddbus.NewSystemConnectionContext(context.Background())
	if err != nil {
		t.Fatalf("connect to systemd on the system bus: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// startTransient starts a transient unit and waits for its job, as
// kubelet's (runc's libcontainer) systemd cgroup manager does.
func startTransient(t testing.TB, c *sddbus.Conn, name string, props []sddbus.Property) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ch := make(chan string, 1)
	if _, err := c.StartTransientUnitContext(ctx, name, "replace", props, ch); err != nil {
		if strings.Contains(err.Error(), "already exists") {
			return
		}
		t.Fatalf("StartTransientUnit %s: %v", name, err)
	}
	select {
	case r := <-ch:
		if r != "done" {
			t.Fatalf("StartTransientUnit %s: job %s", name, r)
		}
	case <-ctx.Done():
		t.Fatalf("StartTransientUnit %s: job not done in time", name)
	}
}

// kubeletSlice makes a slice the way kubelet makes pod and QoS slices
// (libcontainer's systemd manager: Wants= its parent, no default
// dependencies, accounting on).
func kubeletSlice(t testing.TB, c *sddbus.Conn, slice string) {
	t.Helper()
	parent := "-.slice"
	if i := strings.LastIndex(strings.TrimSuffix(slice, ".slice"), "-"); i > 0 {
		parent = slice[:i] + ".slice"
	}
	startTransient(t, c, slice, []sddbus.Property{
		sddbus.PropDescription("libcontainer container " + slice),
		sddbus.PropWants(parent),
		{Name: "DefaultDependencies", Value: dbus.MakeVariant(false)},
		{Name: "MemoryAccounting", Value: dbus.MakeVariant(true)},
		{Name: "CPUAccounting", Value: dbus.MakeVariant(true)},
		{Name: "IOAccounting", Value: dbus.MakeVariant(true)},
		{Name: "TasksAccounting", Value: dbus.MakeVariant(true)},
	})
}

// cri is a CRI client of the node's containerd.
type cri struct {
	rt   runtimeapi.RuntimeServiceClient
	pods map[string]*runtimeapi.PodSandboxConfig
}

func dialCRI(t testing.TB, socket string) *cri {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &cri{rt: runtimeapi.NewRuntimeServiceClient(conn), pods: map[string]*runtimeapi.PodSandboxConfig{}}
	testbed.WaitFor(t, 60*time.Second, 250*time.Millisecond, "containerd's CRI at "+socket, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{})
		return err == nil
	})
	return c
}

// criCtx bounds one CRI call; RunPodSandbox takes seconds under emulation.
func criCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 90*time.Second)
}

func (c *cri) runPod(t testing.TB, cgroupParent, uid, name string) string {
	t.Helper()
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: testbed.PodNamespace},
		LogDirectory: filepath.Join("/var/log/pods", uid),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cgroupParent,
			// No Hostname: runc refuses one with the host UTS namespace.
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	ctx, cancel := criCtx()
	defer cancel()
	res, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v", name, err)
	}
	c.pods[res.GetPodSandboxId()] = cfg
	return res.GetPodSandboxId()
}

func (c *cri) startContainer(t testing.TB, sandboxID, name string) string {
	t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: testbed.PauseImage},
		LogPath:  name + ".log",
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	ctx, cancel := criCtx()
	defer cancel()
	res, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: sandboxID, Config: cfg, SandboxConfig: c.pods[sandboxID],
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v", name, err)
	}
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: res.GetContainerId()}); err != nil {
		t.Fatalf("StartContainer %s: %v", name, err)
	}
	return res.GetContainerId()
}

// stopRemovePod is what kubelet asks when a pod goes; the pod slice is
// kubelet's to remove, and here nobody does: the leak.
func (c *cri) stopRemovePod(t testing.TB, id string) {
	t.Helper()
	ctx, cancel := criCtx()
	defer cancel()
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox %s: %v", id, err)
	}
	if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox %s: %v", id, err)
	}
}

// importPause puts the testbed's pause image into the node's containerd.
func importPause(t testing.TB, address string) {
	t.Helper()
	tar, err := testbed.PauseImageTar()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "pause.tar")
	if err := os.WriteFile(f, tar, 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, 120*time.Second, "ctr", "-a", address, "-n", "k8s.io", "images", "import", f)
}

// journal returns the entries matching the journalctl arguments as JSON
// objects (only string fields).
func journal(t testing.TB, args ...string) []map[string]string {
	t.Helper()
	out := mustRun(t, 60*time.Second, "journalctl", append([]string{"--no-pager", "-o", "json", "-b"}, args...)...)
	var entries []map[string]string
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" || line == "-- No entries --" {
			continue
		}
		entries = append(entries, parseJSONStrings(t, line))
	}
	return entries
}

func parseJSONStrings(t testing.TB, line string) map[string]string {
	t.Helper()
	var raw map[string]any
	if err := json.Unmarshal([]byte(line), &raw); err != nil {
		t.Fatalf("journal entry %q: %v", line, err)
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		if s, ok := v.(string); ok {
			m[k] = s
		}
	}
	return m
}

// randomHex returns n random hex digits (container IDs).
func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
