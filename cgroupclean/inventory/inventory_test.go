package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/hierarchy"
	"github.com/cgroupclean/cgroupclean/cgroupclean/names"
)

const (
	uidA = "3f1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0f"
	uidB = "0123456789abcdef0123456789abcdef"
)

var id64 = strings.Repeat("ab12", 16)

// fakeHierarchies lays out directories in a temp dir the way cgroupfs
// does (the walk only reads directories, so a plain filesystem shows the
// same shape); this is a unit test of the walk, the real cgroupfs is in
// the engine's integration tests.
func fakeHierarchies(t *testing.T, names ...string) []hierarchy.Hierarchy {
	t.Helper()
	base := t.TempDir()
	var hs []hierarchy.Hierarchy
	for _, n := range names {
		hs = append(hs, hierarchy.Hierarchy{Name: n, Mountpoint: filepath.Join(base, n), Version: 1})
		if err := os.MkdirAll(filepath.Join(base, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return hs
}

func mk(t *testing.T, hs []hierarchy.Hierarchy, rel string) {
	t.Helper()
	for _, h := range hs {
		if err := os.MkdirAll(h.Path(rel), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadBothDrivers(t *testing.T) {
	tests := []struct {
		driver names.Driver
		root   string
		dirs   []string
		want   []string // path qos uid containers
	}{
		{names.Cgroupfs, "/kubepods", []string{
			"/kubepods/pod" + uidA + "/" + id64,
			"/kubepods/burstable/pod" + uidB + "/crio-conmon-" + id64,
			"/kubepods/besteffort/pod" + uidA,
			"/kubepods/besteffort/not-a-pod",
		}, []string{
			"/kubepods/besteffort/pod" + uidA + " besteffort " + uidA + " 0",
			"/kubepods/burstable/pod" + uidB + " burstable " + uidB + " 1",
			"/kubepods/pod" + uidA + " guaranteed " + uidA + " 1",
		}},
		{names.Systemd, "/kubepods.slice", []string{
			"/kubepods.slice/" + names.SystemdPodSlice(names.Guaranteed, uidA) + "/crio-" + id64 + ".scope",
			"/kubepods.slice/kubepods-burstable.slice/" + names.SystemdPodSlice(names.Burstable, uidB) + "/cri-containerd-" + id64 + ".scope",
			"/kubepods.slice/kubepods-besteffort.slice/" + names.SystemdPodSlice(names.BestEffort, uidA) + "/container",
			"/kubepods.slice/kubepods-besteffort.slice/unrelated.slice",
		}, []string{
			"/kubepods.slice/kubepods-besteffort.slice/" + names.SystemdPodSlice(names.BestEffort, uidA) + " besteffort " + uidA + " 0",
			"/kubepods.slice/kubepods-burstable.slice/" + names.SystemdPodSlice(names.Burstable, uidB) + " burstable " + uidB + " 1",
			"/kubepods.slice/" + names.SystemdPodSlice(names.Guaranteed, uidA) + " guaranteed " + uidA + " 1",
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.driver), func(t *testing.T) {
			hs := fakeHierarchies(t, "memory", "pids", "name=systemd")
			for _, d := range tt.dirs {
				mk(t, hs, d)
			}
			inv, err := Read(hs, tt.root, tt.driver)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range inv.Pods {
				got = append(got, strings.Join([]string{p.Path, string(p.QoS), p.UID, itoa(len(p.Containers))}, " "))
				if len(p.In) != 3 {
					t.Errorf("%s in %v", p.Path, p.In)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if len(inv.Skipped) != 1 {
				t.Fatalf("skipped %v", inv.Skipped)
			}
		})
	}
}

func TestPodInSomeHierarchiesOnly(t *testing.T) {
	hs := fakeHierarchies(t, "cpu", "memory", "misc")
	mk(t, hs, "/kubepods/burstable")
	if err := os.MkdirAll(hs[2].Path("/kubepods/burstable/pod"+uidA), 0o755); err != nil {
		t.Fatal(err)
	}
	inv, err := Read(hs, "/kubepods", names.Cgroupfs)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Pods) != 1 || strings.Join(inv.Pods[0].In, ",") != "misc" {
		t.Fatalf("a pod leaked only in misc must be found there: %+v", inv.Pods)
	}
}

func TestSymlinksAreNotCgroups(t *testing.T) {
	hs := fakeHierarchies(t, "memory")
	mk(t, hs, "/kubepods/burstable")
	outside := t.TempDir()
	if err := os.Symlink(outside, hs[0].Path("/kubepods/burstable/pod"+uidA)); err != nil {
		t.Fatal(err)
	}
	inv, err := Read(hs, "/kubepods", names.Cgroupfs)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Pods) != 0 {
		t.Fatalf("a symlink was taken for a pod cgroup: %+v", inv.Pods[0])
	}
	if len(inv.Skipped) != 1 || inv.Skipped[0].Why != NotADir {
		t.Fatalf("the symlink must be reported: %+v", inv.Skipped)
	}
}

func TestSymlinkedPodRootRefused(t *testing.T) {
	hs := fakeHierarchies(t, "memory")
	elsewhere := t.TempDir()
	if err := os.MkdirAll(filepath.Join(elsewhere, "burstable", "pod"+uidA), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, hs[0].Path("/kubepods")); err != nil {
		t.Fatal(err)
	}
	_, err := Read(hs, "/kubepods", names.Cgroupfs)
	if err == nil || !strings.Contains(err.Error(), "resolves to") {
		t.Fatalf("a pod root that is a symlink out of the hierarchy must be refused, got %v", err)
	}
}

func TestNoPodRoot(t *testing.T) {
	hs := fakeHierarchies(t, "memory")
	if _, err := Read(hs, "/kubepods", names.Cgroupfs); !errors.Is(err, ErrNoPodRoot) {
		t.Fatalf("got %v", err)
	}
	if _, err := DetectPodRoot(hs); !errors.Is(err, ErrNoPodRoot) {
		t.Fatalf("detect: %v", err)
	}
	mk(t, hs, "/kubepods.slice")
	if r, err := DetectPodRoot(hs); err != nil || r != "/kubepods.slice" {
		t.Fatalf("detect: %q %v", r, err)
	}
}

func TestUnreadablePodDirIsAnError(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any directory; the permission case needs a non-root user")
	}
	hs := fakeHierarchies(t, "memory")
	mk(t, hs, "/kubepods/burstable/pod"+uidA)
	if err := os.Chmod(hs[0].Path("/kubepods/burstable"), 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(hs[0].Path("/kubepods/burstable"), 0o755)
	if _, err := Read(hs, "/kubepods", names.Cgroupfs); err == nil {
		t.Fatal("an unreadable QoS dir must fail the inventory, not shrink it")
	}
}

func itoa(n int) string { return string(rune('0' + n)) }
