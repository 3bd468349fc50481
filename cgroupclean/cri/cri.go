// Package cri asks the container runtime which pod sandboxes and containers
// are alive, over the Kubernetes CRI gRPC API runtime.v1 (k8s.io/cri-api),
// as served by CRI-O (/var/run/crio/crio.sock) and containerd
// (/run/containerd/containerd.sock). It implements live.Runtime.
//
// An answer that does not make sense (a sandbox without id or pod UID, a
// container without sandbox) is an error, not a partial list: the caller
// removes nothing when the runtime cannot be trusted.
package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cgroupclean/cgroupclean/cgroupclean/live"
)

// maxMsgSize is kubelet's limit for CRI answers: a node with many
// containers answers ListContainers with more than gRPC's default 4 MiB.
const maxMsgSize = 16 << 20

// ErrInvalidAnswer is wrapped by every error about a runtime answer that
// fails validation.
var ErrInvalidAnswer = errors.New("invalid CRI answer")

// Client is a CRI runtime.v1 client. It is safe for concurrent use.
type Client struct {
	endpoint string
	path     string
	timeout  time.Duration
	conn     *grpc.ClientConn
	rt       runtimeapi.RuntimeServiceClient

	driverMu   sync.Mutex
	driverDone bool
	driver     string
}

var _ live.Runtime = (*Client)(nil)

// Dial prepares a client for endpoint ("unix:///path" or "/path"). It does
// not connect: the connection is made by the first call and remade after
// the runtime restarts. Every call is bounded by timeout.
func Dial(endpoint string, timeout time.Duration) (*Client, error) {
	path, err := socketPath(endpoint)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("cri endpoint %s: timeout must be positive, got %v", endpoint, timeout)
	}
	// gRPC's default reconnect backoff grows to 120 s: cap it as kubelet
	// does, so a restarted runtime is asked again within seconds.
	bo := backoff.DefaultConfig
	bo.BaseDelay, bo.MaxDelay = 100*time.Millisecond, 3*time.Second
	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 5 * time.Second}),
	)
	if err != nil {
		return nil, fmt.Errorf("cri endpoint %s: %w", endpoint, err)
	}
	return &Client{
		endpoint: endpoint,
		path:     path,
		timeout:  timeout,
		conn:     conn,
		rt:       runtimeapi.NewRuntimeServiceClient(conn),
	}, nil
}

// socketPath accepts the forms kubelet's --container-runtime-endpoint
// takes for a unix socket.
func socketPath(endpoint string) (string, error) {
	p := endpoint
	if rest, ok := strings.CutPrefix(endpoint, "unix://"); ok {
		p = rest
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("cri endpoint %q: want unix:///path or /path", endpoint)
	}
	return p, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Snapshot lists every pod sandbox (READY and NOTREADY) and every container
// (any state). TakenAt is the time before the first request was sent: a
// sandbox created after TakenAt may be missing from the answer. It returns
// an error, and no partial snapshot, when either list fails or fails
// validation. The cgroup driver is detected on the first successful call
// and cached; a failed detection leaves CgroupDriver "" and is not an error.
func (c *Client) Snapshot(ctx context.Context) (live.Snapshot, error) {
	taken := time.Now()
	sctx, cancel := context.WithTimeout(ctx, c.timeout)
	sres, err := c.rt.ListPodSandbox(sctx, &runtimeapi.ListPodSandboxRequest{})
	cancel()
	if err != nil {
		return live.Snapshot{}, fmt.Errorf("cri %s: list pod sandboxes: %w", c.endpoint, err)
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	cres, err := c.rt.ListContainers(cctx, &runtimeapi.ListContainersRequest{})
	cancel()
	if err != nil {
		return live.Snapshot{}, fmt.Errorf("cri %s: list containers: %w", c.endpoint, err)
	}
	sandboxes, err := convertSandboxes(sres.GetItems())
	if err != nil {
		return live.Snapshot{}, fmt.Errorf("cri %s: %w", c.endpoint, err)
	}
	containers, err := convertContainers(cres.GetContainers())
	if err != nil {
		return live.Snapshot{}, fmt.Errorf("cri %s: %w", c.endpoint, err)
	}
	return live.Snapshot{
		Sandboxes:    sandboxes,
		Containers:   containers,
		TakenAt:      taken,
		CgroupDriver: c.cgroupDriver(ctx),
	}, nil
}

// convertSandboxes validates and converts ListPodSandbox items. Several
// sandboxes with one pod UID are kept: they are attempts of one pod. One
// sandbox ID listed with two pod UIDs is an error: which pod owns it cannot
// be known, so the whole answer is not trusted.
func convertSandboxes(items []*runtimeapi.PodSandbox) ([]live.Sandbox, error) {
	out := make([]live.Sandbox, 0, len(items))
	uidOf := make(map[string]string, len(items))
	for i, s := range items {
		switch {
		case s == nil:
			return nil, fmt.Errorf("%w: sandbox #%d is nil", ErrInvalidAnswer, i)
		case s.GetId() == "":
			return nil, fmt.Errorf("%w: sandbox #%d has an empty id", ErrInvalidAnswer, i)
		case s.GetMetadata() == nil:
			return nil, fmt.Errorf("%w: sandbox %s has no metadata", ErrInvalidAnswer, s.GetId())
		case s.GetMetadata().GetUid() == "":
			return nil, fmt.Errorf("%w: sandbox %s has an empty metadata.uid", ErrInvalidAnswer, s.GetId())
		}
		uid := s.GetMetadata().GetUid()
		if prev, seen := uidOf[s.GetId()]; seen && prev != uid {
			return nil, fmt.Errorf("%w: sandbox %s is listed twice, with pod UIDs %s and %s", ErrInvalidAnswer, s.GetId(), prev, uid)
		}
		uidOf[s.GetId()] = uid
		var created time.Time
		if s.GetCreatedAt() > 0 {
			created = time.Unix(0, s.GetCreatedAt())
		}
		m := s.GetMetadata()
		out = append(out, live.Sandbox{
			ID:        s.GetId(),
			PodUID:    m.GetUid(),
			Name:      m.GetName(),
			Namespace: m.GetNamespace(),
			Ready:     s.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: created,
		})
	}
	return out, nil
}

// convertContainers validates and converts ListContainers items. State is
// the CRI enum name (CONTAINER_RUNNING, CONTAINER_EXITED, ...). A container
// whose sandbox is not in the sandbox list is kept: the two lists are not
// taken atomically. One container ID listed in two sandboxes is an error.
func convertContainers(items []*runtimeapi.Container) ([]live.Container, error) {
	out := make([]live.Container, 0, len(items))
	sandboxOf := make(map[string]string, len(items))
	for i, c := range items {
		switch {
		case c == nil:
			return nil, fmt.Errorf("%w: container #%d is nil", ErrInvalidAnswer, i)
		case c.GetId() == "":
			return nil, fmt.Errorf("%w: container #%d has an empty id", ErrInvalidAnswer, i)
		case c.GetPodSandboxId() == "":
			return nil, fmt.Errorf("%w: container %s has an empty pod_sandbox_id", ErrInvalidAnswer, c.GetId())
		case c.GetMetadata() == nil:
			return nil, fmt.Errorf("%w: container %s has no metadata", ErrInvalidAnswer, c.GetId())
		}
		if prev, seen := sandboxOf[c.GetId()]; seen && prev != c.GetPodSandboxId() {
			return nil, fmt.Errorf("%w: container %s is listed twice, in sandboxes %s and %s", ErrInvalidAnswer, c.GetId(), prev, c.GetPodSandboxId())
		}
		sandboxOf[c.GetId()] = c.GetPodSandboxId()
		out = append(out, live.Container{
			ID:        c.GetId(),
			SandboxID: c.GetPodSandboxId(),
			State:     c.GetState().String(),
		})
	}
	return out, nil
}
