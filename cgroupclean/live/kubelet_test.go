package live

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A kubelet root without kubelet's pods/ is not "kubelet tracks no pod":
// every way of asking fails closed with ErrNoKubeletState, and the message
// names the key to set and where other distributions keep kubelet.
func TestMissingKubeletStateFailsClosed(t *testing.T) {
	base := t.TempDir()
	ok := filepath.Join(base, "ok")
	must(t, os.MkdirAll(filepath.Join(ok, "pods", "u1"), 0o755))
	noPods := filepath.Join(base, "no-pods")
	must(t, os.Mkdir(noPods, 0o755))
	podsFile := filepath.Join(base, "pods-file")
	must(t, os.Mkdir(podsFile, 0o755))
	must(t, os.WriteFile(filepath.Join(podsFile, "pods"), nil, 0o644))

	for _, root := range []string{filepath.Join(base, "missing"), noPods, podsFile} {
		t.Run(filepath.Base(root), func(t *testing.T) {
			err := CheckKubeletRoot(root)
			if !errors.Is(err, ErrNoKubeletState) || !strings.Contains(err.Error(), "cgroup.kubelet_root") {
				t.Fatalf("CheckKubeletRoot: %v", err)
			}
			if root != podsFile && (!strings.Contains(err.Error(), "k0s") || !strings.Contains(err.Error(), "MicroK8s")) {
				t.Errorf("message does not say where other distributions keep kubelet: %v", err)
			}
			if pods, err := KubeletPods(root); !errors.Is(err, ErrNoKubeletState) || pods != nil {
				t.Errorf("KubeletPods: %v, %v", pods, err)
			}
			if tracked, err := KubeletTracks(root, "u1"); !errors.Is(err, ErrNoKubeletState) || tracked {
				t.Errorf("KubeletTracks: %v, %v", tracked, err)
			}
		})
	}
	if err := CheckKubeletRoot(ok); err != nil {
		t.Fatal(err)
	}
	if pods, err := KubeletPods(ok); err != nil || !pods["u1"] || len(pods) != 1 {
		t.Fatalf("KubeletPods: %v, %v", pods, err)
	}
	for uid, want := range map[string]bool{"u1": true, "u2": false} {
		if tracked, err := KubeletTracks(ok, uid); err != nil || tracked != want {
			t.Errorf("KubeletTracks(%s): %v, %v", uid, tracked, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
