package live

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// KubeletPods returns the pod UIDs kubelet still tracks: the directories
// under <kubeletRoot>/pods. kubelet keeps that directory until it has torn
// the pod down (volumes unmounted), so its pod cgroup is not ours to take.
// A missing pods directory means no kubelet state on this node (an empty
// set); any other error means we cannot tell, and the caller must keep
// everything.
func KubeletPods(kubeletRoot string) (map[string]bool, error) {
	dir := filepath.Join(kubeletRoot, "pods")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read kubelet pod dirs %s: %w", dir, err)
	}
	out := make(map[string]bool, len(entries))
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out, nil
}

// KubeletTracks reports whether kubelet still has the pod's directory, asked
// again right before a removal.
func KubeletTracks(kubeletRoot, uid string) (bool, error) {
	_, err := os.Lstat(filepath.Join(kubeletRoot, "pods", uid))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("check kubelet pod dir of %s: %w", uid, err)
}
