package testbed

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
)

// PauseImage is the name of the sandbox image every testbed containerd has.
const PauseImage = "localhost/pause:testbed"

// PodNamespace is the Kubernetes namespace RunPod gives its sandboxes.
const PodNamespace = "cgroupclean-test"

// criTimeout bounds one harness call to containerd; RunPodSandbox takes
// about 150 ms here.
const criTimeout = 30 * time.Second

// Containerd is a private containerd with its CRI plugin, its root, state,
// sockets and runc root all under Dir. It uses the cgroupfs driver and host
// networking (no CNI).
type Containerd struct {
	// Dir holds everything; it is short (/run/cgct-*) because a unix socket
	// path may not exceed 108 bytes.
	Dir string
	// Socket is containerd's gRPC socket (CRI included).
	Socket string

	config string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
	conn   *grpc.ClientConn
	rt     runtimeapi.RuntimeServiceClient

	mu      sync.Mutex
	pods    map[string]*runtimeapi.PodSandboxConfig
	parents map[string]bool
}

// StartContainerd starts a containerd for the test, ready for CRI calls with
// PauseImage imported. When the test ends it stops and removes every
// sandbox (restarting containerd first if the test killed it), kills what
// is left of the sandboxes, stops containerd, unmounts what it left under
// Dir and removes Dir. Make the test's cgroup root BEFORE calling it, so the
// sandboxes are gone before the root is removed.
func StartContainerd(t testing.TB) *Containerd {
	t.Helper()
	RequireRoot(t)
	for _, bin := range []string{"containerd", "ctr", "runc"} {
		_, err := exec.LookPath(bin)
		Need(t, err == nil, bin+" on PATH (apt-get install containerd runc)")
	}
	image, err := pauseImage()
	if err != nil {
		t.Fatalf("build pause image: %v", err)
	}
	dir, err := os.MkdirTemp("/run", "cgct-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Containerd{
		Dir:     dir,
		Socket:  filepath.Join(dir, "containerd.sock"),
		config:  filepath.Join(dir, "config.toml"),
		log:     filepath.Join(dir, "containerd.log"),
		pods:    map[string]*runtimeapi.PodSandboxConfig{},
		parents: map[string]bool{},
	}
	t.Cleanup(func() { c.cleanup(t) })
	for _, d := range []string{"cni-bin", "cni-conf", "logs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var cfg bytes.Buffer
	if err := configTemplate.Execute(&cfg, struct{ Dir, Image string }{dir, PauseImage}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.config, cfg.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	// Reconnect fast after a restart: gRPC's default backoff grows to 120 s.
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = 20*time.Millisecond, 200*time.Millisecond
	c.conn, err = grpc.NewClient("unix://"+c.Socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	c.rt = runtimeapi.NewRuntimeServiceClient(c.conn)
	c.start(t)

	tarPath := filepath.Join(dir, "pause.tar")
	if err := os.WriteFile(tarPath, image, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ctr", "-a", c.Socket, "-n", "k8s.io", "images", "import", tarPath).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr images import: %v: %s", err, out)
	}
	return c
}

var configTemplate = template.Must(template.New("config").Parse(`version = 2
root = "{{.Dir}}/root"
state = "{{.Dir}}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{{.Dir}}/containerd.sock"
[ttrpc]
  address = "{{.Dir}}/containerd.sock.ttrpc"
[debug]
  address = "{{.Dir}}/debug.sock"
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{.Dir}}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{.Image}}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  systemd_cgroup = false
  # root lacks CAP_SYS_RESOURCE here: without this runc fails to set
  # oom_score_adj=-998 ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{.Dir}}/cni-bin"
    conf_dir = "{{.Dir}}/cni-conf"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{{.Dir}}/runc"
`))

// start runs containerd and waits until its CRI service answers.
func (c *Containerd) start(t testing.TB) {
	t.Helper()
	if err := c.startErr(); err != nil {
		t.Fatal(err)
	}
}

func (c *Containerd) startErr() error {
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("containerd", "--config", c.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	c.cmd, c.exited = cmd, exited

	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		_, err := c.rt.Version(ctx, &runtimeapi.VersionRequest{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("containerd exited during start: %s\n%s", cmd.ProcessState, c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd CRI not ready after 15s: %v\n%s", err, c.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *Containerd) running() bool {
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

func (c *Containerd) logTail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Endpoint is the CRI endpoint, as kubelet's --container-runtime-endpoint
// spells it.
func (c *Containerd) Endpoint() string { return "unix://" + c.Socket }

// PID is the PID of the running containerd.
func (c *Containerd) PID() int { return c.cmd.Process.Pid }

// Runtime is a raw CRI runtime client on containerd (it reconnects after
// Restart).
func (c *Containerd) Runtime() runtimeapi.RuntimeServiceClient { return c.rt }

func criCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), criTimeout)
}

// RunPod runs a sandbox with host networking whose cgroups go under
// cgroupParent (a cgroup path such as CgroupRoot.Rel("kubepods/burstable/
// pod<uid>")): containerd makes <cgroupParent>/<sandboxID> in every
// hierarchy. It returns the sandbox ID.
func (c *Containerd) RunPod(t testing.TB, cgroupParent, uid, name string) string {
	t.Helper()
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: PodNamespace},
		LogDirectory: filepath.Join(c.Dir, "logs", uid),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cgroupParent,
			// No Hostname: runc refuses one with the host UTS namespace.
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	c.mu.Lock()
	c.parents[cgroupParent] = true
	c.mu.Unlock()
	ctx, cancel := criCtx()
	defer cancel()
	res, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatalf("RunPodSandbox %s: %v\n%s", name, err, c.logTail())
	}
	c.mu.Lock()
	c.pods[res.GetPodSandboxId()] = cfg
	c.mu.Unlock()
	return res.GetPodSandboxId()
}

// CreateStartContainer runs a container of PauseImage in the sandbox; its
// cgroup is <cgroupParent>/<containerID>. It returns the container ID.
func (c *Containerd) CreateStartContainer(t testing.TB, sandboxID, name string) string {
	t.Helper()
	return c.startContainer(t, "CreateStartContainer", sandboxID, name, nil, nil)
}

// startContainer creates and starts a container of PauseImage named name
// in a sandbox made by RunPod, with command and args (nil: the image's).
// caller names the exported function in a failure.
func (c *Containerd) startContainer(t testing.TB, caller, sandboxID, name string, command, args []string) string {
	t.Helper()
	c.mu.Lock()
	sbCfg := c.pods[sandboxID]
	c.mu.Unlock()
	if sbCfg == nil {
		t.Fatalf("%s: sandbox %s was not made by RunPod", caller, sandboxID)
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name},
		Image:    &runtimeapi.ImageSpec{Image: PauseImage},
		Command:  command,
		Args:     args,
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
		PodSandboxId: sandboxID, Config: cfg, SandboxConfig: sbCfg,
	})
	if err != nil {
		t.Fatalf("CreateContainer %s: %v\n%s", name, err, c.logTail())
	}
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: res.GetContainerId()}); err != nil {
		t.Fatalf("StartContainer %s: %v\n%s", name, err, c.logTail())
	}
	return res.GetContainerId()
}

// StopPod stops a sandbox and its containers: it stays listed, NOTREADY,
// and its <sandboxID> cgroup leaf is removed.
func (c *Containerd) StopPod(t testing.TB, id string) {
	t.Helper()
	ctx, cancel := criCtx()
	defer cancel()
	if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("StopPodSandbox %s: %v", id, err)
	}
}

// StopRemovePod stops and removes a sandbox. Its parent (the pod<uid>
// cgroup kubelet would own) is left behind: a real orphan pod cgroup.
func (c *Containerd) StopRemovePod(t testing.TB, id string) {
	t.Helper()
	c.StopPod(t, id)
	ctx, cancel := criCtx()
	defer cancel()
	if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatalf("RemovePodSandbox %s: %v", id, err)
	}
}

// Kill9 kills containerd alone with SIGKILL and waits for it; shims and
// sandboxes keep running.
func (c *Containerd) Kill9(t testing.TB) {
	t.Helper()
	if !c.running() {
		t.Fatal("Kill9: containerd is not running")
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill containerd: %v", err)
	}
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("containerd did not exit 10s after SIGKILL")
	}
}

// Restart starts containerd again after Kill9, on the same root and state:
// it finds the sandboxes that survived.
func (c *Containerd) Restart(t testing.TB) {
	t.Helper()
	if c.running() {
		t.Fatal("Restart: containerd is still running")
	}
	c.start(t)
}

// cleanup undoes StartContainerd even when the test failed half-way.
func (c *Containerd) cleanup(t testing.TB) {
	if c.rt != nil && !c.running() {
		if err := c.startErr(); err != nil {
			t.Errorf("containerd cleanup: restart to remove sandboxes: %v", err)
		}
	}
	if c.running() {
		if err := c.removeAllPods(); err != nil {
			t.Errorf("containerd cleanup: %v", err)
		}
	}
	// Whatever CRI could not stop: kill it by cgroup and by shim pid file.
	c.killLeftovers(t)
	if c.running() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Signal(syscall.SIGKILL)
			<-c.exited
		}
	}
	if c.conn != nil {
		_ = c.conn.Close()
	}
	if err := unmountUnder(c.Dir); err != nil {
		t.Errorf("containerd cleanup: %v", err)
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		t.Errorf("containerd cleanup: %v", err)
	}
}

func (c *Containerd) removeAllPods() error {
	ctx, cancel := criCtx()
	defer cancel()
	res, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	var errs []error
	for _, s := range res.GetItems() {
		if _, err := c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox %s: %w", s.GetId(), err))
			continue
		}
		if _, err := c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.GetId()}); err != nil {
			errs = append(errs, fmt.Errorf("remove sandbox %s: %w", s.GetId(), err))
		}
	}
	return errors.Join(errs...)
}

// killLeftovers SIGKILLs the processes still in the cgroups under the
// parents RunPod was given (inside the test's own cgroup root) and the
// shims containerd started for this Dir.
func (c *Containerd) killLeftovers(t testing.TB) {
	var pids []int
	if hs, err := hierarchy.Discover("/sys/fs/cgroup"); err == nil {
		for parent := range c.parents {
			for _, h := range hs {
				_ = filepath.WalkDir(h.Path(parent), func(p string, d os.DirEntry, err error) error {
					if err == nil && d.Name() == "cgroup.procs" {
						pids = append(pids, readPids(p)...)
					}
					return nil
				})
			}
		}
	}
	shims, _ := filepath.Glob(filepath.Join(c.Dir, "state", "io.containerd.runtime.v2.task", "*", "*", "shim.pid"))
	for _, f := range shims {
		for _, pid := range readPids(f) {
			// Guard against a reused PID: only a shim is killed this way.
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if bytes.Contains(cmdline, []byte("containerd-shim")) {
				pids = append(pids, pid)
			}
		}
	}
	for _, pid := range pids {
		if pid > 1 && pid != os.Getpid() {
			t.Logf("containerd cleanup: SIGKILL leftover pid %d", pid)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func readPids(file string) []int {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// unmountUnder detaches every mount below dir, deepest first (sandbox shm
// and container rootfs mounts survive a containerd that died).
func unmountUnder(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	var errs []error
	for _, m := range mounts {
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
		}
	}
	return errors.Join(errs...)
}

var pauseOnce struct {
	sync.Once
	tar []byte
	err error
}

// pauseImage builds internal/testbed/pause (static) and packs it as an OCI
// layout tar, once per test process.
func pauseImage() ([]byte, error) {
	pauseOnce.Do(func() {
		pauseOnce.tar, pauseOnce.err = buildPauseImage()
	})
	return pauseOnce.tar, pauseOnce.err
}

func buildPauseImage() ([]byte, error) {
	tmp, err := os.MkdirTemp("", "cgct-pause-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(tmp, "pause")
	// The test runs in its package dir, inside the module: the import path
	// resolves without knowing where the checkout is.
	cmd := exec.Command(goBin, "build", "-o", bin, "-ldflags=-s -w", "github.com/cgroupclean/cgroupclean/internal/testbed/pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build pause: %w: %s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return ociImage(data, PauseImage)
}

// ociImage packs one static binary as /pause into an OCI image layout tar
// that `ctr images import` takes, the image named name.
func ociImage(binary []byte, name string) ([]byte, error) {
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	if err := lw.WriteHeader(&tar.Header{
		Name: "pause", Mode: 0o755, Size: int64(len(binary)),
		ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX,
	}); err != nil {
		return nil, err
	}
	if _, err := lw.Write(binary); err != nil {
		return nil, err
	}
	if err := lw.Close(); err != nil {
		return nil, err
	}
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Platform    map[string]string `json:"platform,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	blobs := map[string][]byte{}
	put := func(mediaType string, b []byte) desc {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return desc{MediaType: mediaType, Digest: d, Size: len(b)}
	}
	layerDesc := put("application/vnd.oci.image.layer.v1.tar", layer.Bytes())
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{"/pause"}, "WorkingDir": "/"},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
	})
	if err != nil {
		return nil, err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        put("application/vnd.oci.image.config.v1+json", config),
		"layers":        []desc{layerDesc},
	})
	if err != nil {
		return nil, err
	}
	mDesc := put("application/vnd.oci.image.manifest.v1+json", manifest)
	mDesc.Platform = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
	mDesc.Annotations = map[string]string{"io.containerd.image.name": name}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []desc{mDesc}})
	if err != nil {
		return nil, err
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	add := func(name string, b []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, err
	}
	if err := add("index.json", index); err != nil {
		return nil, err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: time.Unix(0, 0), Typeflag: tar.TypeDir}); err != nil {
			return nil, err
		}
	}
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	sort.Strings(digests)
	for _, d := range digests {
		if err := add("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), blobs[d]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// RandomUID returns a random pod UID in the form Kubernetes uses.
func RandomUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
