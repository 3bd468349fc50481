package cri

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
)

func TestSocketPath(t *testing.T) {
	tests := []struct {
		endpoint, want string
		wantErr        bool
	}{
		{endpoint: "unix:///var/run/crio/crio.sock", want: "/var/run/crio/crio.sock"},
		{endpoint: "/run/containerd/containerd.sock", want: "/run/containerd/containerd.sock"},
		{endpoint: "tcp://127.0.0.1:1234", wantErr: true},
		{endpoint: "unix://relative.sock", wantErr: true},
		{endpoint: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := socketPath(tc.endpoint)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("socketPath(%q) = %q, %v; want %q, error %v", tc.endpoint, got, err, tc.want, tc.wantErr)
		}
	}
}

func sandbox(id, uid string, state runtimeapi.PodSandboxState) *runtimeapi.PodSandbox {
	return &runtimeapi.PodSandbox{
		Id:        id,
		Metadata:  &runtimeapi.PodSandboxMetadata{Name: "n-" + id, Uid: uid, Namespace: "ns"},
		State:     state,
		CreatedAt: 1_700_000_000_000_000_000,
	}
}

func TestConvertSandboxes(t *testing.T) {
	created := time.Unix(0, 1_700_000_000_000_000_000)
	tests := []struct {
		name    string
		items   []*runtimeapi.PodSandbox
		want    []live.Sandbox
		wantErr string
	}{
		{
			name: "ready and notready both kept, attempts of one uid kept",
			items: []*runtimeapi.PodSandbox{
				sandbox("a", "u1", runtimeapi.PodSandboxState_SANDBOX_READY),
				sandbox("b", "u1", runtimeapi.PodSandboxState_SANDBOX_NOTREADY),
				sandbox("c", "u2", runtimeapi.PodSandboxState_SANDBOX_NOTREADY),
			},
			want: []live.Sandbox{
				{ID: "a", PodUID: "u1", Name: "n-a", Namespace: "ns", Ready: true, CreatedAt: created},
				{ID: "b", PodUID: "u1", Name: "n-b", Namespace: "ns", CreatedAt: created},
				{ID: "c", PodUID: "u2", Name: "n-c", Namespace: "ns", CreatedAt: created},
			},
		},
		{name: "empty list", items: nil, want: []live.Sandbox{}},
		{name: "nil item", items: []*runtimeapi.PodSandbox{nil}, wantErr: "sandbox #0 is nil"},
		{
			name:    "empty id",
			items:   []*runtimeapi.PodSandbox{sandbox("a", "u1", 0), sandbox("", "u2", 0)},
			wantErr: "sandbox #1 has an empty id",
		},
		{
			name:    "nil metadata",
			items:   []*runtimeapi.PodSandbox{{Id: "a"}},
			wantErr: "sandbox a has no metadata",
		},
		{
			name:    "empty uid",
			items:   []*runtimeapi.PodSandbox{sandbox("a", "", 0)},
			wantErr: "sandbox a has an empty metadata.uid",
		},
		{
			name:    "one id, two uids",
			items:   []*runtimeapi.PodSandbox{sandbox("a", "u1", 0), sandbox("c", "u2", 0), sandbox("a", "u2", 0)},
			wantErr: "sandbox a is listed twice, with pod UIDs u1 and u2",
		},
		{
			name:  "one sandbox listed twice alike",
			items: []*runtimeapi.PodSandbox{sandbox("a", "u1", 0), sandbox("a", "u1", 0)},
			want: []live.Sandbox{
				{ID: "a", PodUID: "u1", Name: "n-a", Namespace: "ns", Ready: true, CreatedAt: created},
				{ID: "a", PodUID: "u1", Name: "n-a", Namespace: "ns", Ready: true, CreatedAt: created},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := convertSandboxes(tc.items)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestConvertContainers(t *testing.T) {
	md := &runtimeapi.ContainerMetadata{Name: "c"}
	tests := []struct {
		name    string
		items   []*runtimeapi.Container
		want    []live.Container
		wantErr string
	}{
		{
			name: "every state kept, unknown sandbox kept",
			items: []*runtimeapi.Container{
				{Id: "c1", PodSandboxId: "s1", Metadata: md, State: runtimeapi.ContainerState_CONTAINER_RUNNING},
				{Id: "c2", PodSandboxId: "s1", Metadata: md, State: runtimeapi.ContainerState_CONTAINER_EXITED},
				{Id: "c3", PodSandboxId: "gone", Metadata: md, State: runtimeapi.ContainerState_CONTAINER_CREATED},
			},
			want: []live.Container{
				{ID: "c1", SandboxID: "s1", State: "CONTAINER_RUNNING"},
				{ID: "c2", SandboxID: "s1", State: "CONTAINER_EXITED"},
				{ID: "c3", SandboxID: "gone", State: "CONTAINER_CREATED"},
			},
		},
		{name: "nil item", items: []*runtimeapi.Container{nil}, wantErr: "container #0 is nil"},
		{
			name:    "empty id",
			items:   []*runtimeapi.Container{{PodSandboxId: "s1", Metadata: md}},
			wantErr: "container #0 has an empty id",
		},
		{
			name:    "empty sandbox id",
			items:   []*runtimeapi.Container{{Id: "c1", Metadata: md}},
			wantErr: "container c1 has an empty pod_sandbox_id",
		},
		{
			name:    "nil metadata",
			items:   []*runtimeapi.Container{{Id: "c1", PodSandboxId: "s1"}},
			wantErr: "container c1 has no metadata",
		},
		{
			name: "one id, two sandboxes",
			items: []*runtimeapi.Container{
				{Id: "c1", PodSandboxId: "s1", Metadata: md},
				{Id: "c1", PodSandboxId: "s2", Metadata: md},
			},
			wantErr: "container c1 is listed twice, in sandboxes s1 and s2",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := convertContainers(tc.items)
			checkErr(t, err, tc.wantErr)
			if tc.wantErr == "" && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
	if !errors.Is(err, ErrInvalidAnswer) {
		t.Fatalf("error %v does not wrap ErrInvalidAnswer", err)
	}
}

// containerdStatusConfig is a trimmed info["config"] of containerd 1.6.20's
// verbose Status, as seen on the testbed.
const containerdStatusConfig = `{"containerd":{"defaultRuntime":{"options":null,"runtimeType":""},
"defaultRuntimeName":"runc","runtimes":{"runc":{"options":{"Root":"/run/x/runc","SystemdCgroup":false},
"runtimeType":"io.containerd.runc.v2"}},"snapshotter":"overlayfs"},"systemdCgroup":false}`

func TestParseContainerdConfig(t *testing.T) {
	tests := []struct {
		name, config, want string
	}{
		{name: "containerd 1.6 testbed answer", config: containerdStatusConfig, want: DriverCgroupfs},
		{name: "systemd", config: strings.Replace(containerdStatusConfig, `"SystemdCgroup":false`, `"SystemdCgroup":true`, 1), want: DriverSystemd},
		{name: "option not set", config: strings.Replace(containerdStatusConfig, `"SystemdCgroup":false`, `"X":1`, 1), want: ""},
		{name: "options null", config: `{"containerd":{"defaultRuntimeName":"runc","runtimes":{"runc":{"options":null}}}}`, want: ""},
		{name: "default runtime not listed", config: `{"containerd":{"defaultRuntimeName":"kata","runtimes":{"runc":{"options":{"SystemdCgroup":true}}}}}`, want: ""},
		{name: "option not a bool", config: `{"containerd":{"defaultRuntimeName":"runc","runtimes":{"runc":{"options":{"SystemdCgroup":"true"}}}}}`, want: ""},
		{name: "empty", config: ``, want: ""},
		{name: "garbage", config: `{"containerd":[`, want: ""},
	}
	for _, tc := range tests {
		if got := parseContainerdConfig([]byte(tc.config)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func FuzzParseContainerdConfig(f *testing.F) {
	f.Add([]byte(containerdStatusConfig))
	f.Add([]byte(`{"containerd":{"runtimes":null}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		switch got := parseContainerdConfig(data); got {
		case "", DriverSystemd, DriverCgroupfs:
		default:
			t.Fatalf("driver %q", got)
		}
	})
}

// TestCrioInfoDriver serves CRI-O's /info on a unix socket, as CRI-O does
// beside CRI (CRI-O itself is not packaged for the testbed).
func TestCrioInfoDriver(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    string
		wantErr bool
	}{
		{name: "systemd", status: 200, body: `{"storage_driver":"overlay","storage_root":"/var/lib/containers/storage","cgroup_driver":"systemd","default_id_mappings":{"uids":[],"gids":[]}}`, want: DriverSystemd},
		{name: "cgroupfs", status: 200, body: `{"storage_driver":"overlay","cgroup_driver":"cgroupfs"}`, want: DriverCgroupfs},
		{name: "unknown driver", status: 200, body: `{"cgroup_driver":"weird"}`, want: ""},
		{name: "missing field", status: 200, body: `{}`, want: ""},
		{name: "not json", status: 200, body: `<html>`, wantErr: true},
		{name: "not found", status: 404, body: `404 page not found`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "crio")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			sock := filepath.Join(dir, "crio.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			mux.HandleFunc("GET /info", func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			srv := &http.Server{Handler: mux}
			go func() { _ = srv.Serve(l) }()
			t.Cleanup(func() { _ = srv.Close() })

			c := &Client{path: sock, timeout: 2 * time.Second}
			got, err := c.crioInfoDriver(t.Context())
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %q, %v; want %q, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
