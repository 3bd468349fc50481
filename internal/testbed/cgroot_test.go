package testbed

import (
	"os"
	"os/exec"
	"testing"
)

func TestCgroupRootCleansUpEvenWithProcess(t *testing.T) {
	var name string
	var hier int
	var mount0 string
	t.Run("inner", func(t *testing.T) {
		r := NewCgroupRoot(t, "self")
		name, hier, mount0 = r.Name, len(r.Hierarchies), r.Hierarchies[0].Mountpoint
		if err := r.Mkdir("kubepods/burstable/podx/ctr"); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		if err := r.AddProc("kubepods/burstable/podx/ctr", cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if got := r.Exists("kubepods/burstable/podx/ctr"); got != hier {
			t.Fatalf("exists in %d of %d hierarchies", got, hier)
		}
	})
	if _, err := os.Stat(mount0 + "/" + name); !os.IsNotExist(err) {
		t.Fatalf("test root %s left behind: %v", name, err)
	}
}
