package live

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNoKubeletState means kubelet_root or its pods/ directory does not
// exist: kubelet keeps its state somewhere else (k0s, MicroK8s and others
// move it), or has not started. Reading that as "kubelet tracks no pod"
// would turn the kubelet gate off, so it fails closed like any other
// unreadable state.
var ErrNoKubeletState = errors.New("kubelet state not found")

// CheckKubeletRoot reports whether <kubeletRoot>/pods is a directory. The
// error names the configuration key to set.
func CheckKubeletRoot(kubeletRoot string) error {
	dir := filepath.Join(kubeletRoot, "pods")
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s does not exist: set cgroup.kubelet_root to kubelet's root directory "+
			"(its --root-dir; k0s: /var/lib/k0s/kubelet, MicroK8s: /var/snap/microk8s/common/var/lib/kubelet); "+
			"until then every pod cgroup the runtime does not list is kept (kubelet-state-unknown)", ErrNoKubeletState, dir)
	case err != nil:
		return fmt.Errorf("kubelet pod dirs %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory: check cgroup.kubelet_root", ErrNoKubeletState, dir)
	}
	return nil
}

// KubeletPods returns the pod UIDs kubelet still tracks: the directories
// under <kubeletRoot>/pods. kubelet keeps that directory until it has torn
// the pod down (volumes unmounted), so its pod cgroup is not ours to take.
// Any error, a missing pods directory included (ErrNoKubeletState), means
// we cannot tell, and the caller must keep every pod the runtime does not
// list.
func KubeletPods(kubeletRoot string) (map[string]bool, error) {
	dir := filepath.Join(kubeletRoot, "pods")
	entries, err := os.ReadDir(dir)
	if err != nil {
		// Say why in the words of the key to set when that is the cause.
		if cerr := CheckKubeletRoot(kubeletRoot); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("read kubelet pod dirs %s: %w", dir, err)
	}
	out := make(map[string]bool, len(entries))
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out, nil
}

// KubeletTracks reports whether kubelet still has the pod's directory, asked
// again right before a removal. A pods directory that is gone is an error
// (ErrNoKubeletState), not "not tracked".
func KubeletTracks(kubeletRoot, uid string) (bool, error) {
	_, err := os.Lstat(filepath.Join(kubeletRoot, "pods", uid))
	if err == nil {
		return true, nil
	}
	if cerr := CheckKubeletRoot(kubeletRoot); cerr != nil {
		return false, cerr
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("check kubelet pod dir of %s: %w", uid, err)
}

// Kubelet answers whether kubelet still tracks a pod, asked right before
// an action on the pod's cgroup.
type Kubelet interface {
	Tracks(uid string) (bool, error)
}

// KubeletDir is kubelet's state on disk: <Root>/pods/<uid>.
type KubeletDir struct{ Root string }

// Tracks is KubeletTracks.
func (k KubeletDir) Tracks(uid string) (bool, error) { return KubeletTracks(k.Root, uid) }
