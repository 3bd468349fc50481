package relief

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cgroupclean/cgroupclean/bench"
	"github.com/cgroupclean/cgroupclean/internal/testbed"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
)

// peer is one removal method, given the tree and its leaked pods.
type peer struct {
	name string
	// remove removes the leaked pods its own way; it gets the pod list only
	// where the method itself has one (kubelet knows its pods).
	remove func(ctx context.Context, t *testing.T, e *peerEnv, leaked []pod)
}

type peerEnv struct {
	r        *testbed.CgroupRoot
	cd       *testbed.Containerd
	podRoot  string
	crictl   string
	binary   string
	cleanCfg string
}

// kubeletDestroy is kubelet's removal path with the cgroupfs driver: its
// pod container manager calls the opencontainers/cgroups manager's
// Destroy for each pod it knows is gone, with the pod's path in every
// hierarchy (cgroups.RemovePaths: leaf-first, with retries).
func kubeletDestroy(_ context.Context, t *testing.T, e *peerEnv, leaked []pod) {
	for _, p := range leaked {
		paths := map[string]string{}
		for _, h := range e.r.Hierarchies {
			paths[h.Mountpoint] = h.Path(e.r.Rel(p.Rel))
		}
		m, err := fs.NewManager(&cgroups.Cgroup{Resources: &cgroups.Resources{}}, paths)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Destroy(); err != nil {
			t.Fatalf("Destroy %s: %v", p.Rel, err)
		}
	}
}

// crictlScript is the widely used script's method: for every pod cgroup
// under the pod root, one crictl process asks the runtime for a sandbox
// of that UID; none: the pod's dirs go, leaf-first, in every hierarchy.
func crictlScript(ctx context.Context, t *testing.T, e *peerEnv, _ []pod) {
	var pods []string
	for _, q := range []string{"", "burstable/", "besteffort/"} {
		ents, err := os.ReadDir(e.r.Hierarchies[0].Path(e.r.Rel(e.podRoot + "/" + q)))
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ents {
			if d.IsDir() && strings.HasPrefix(d.Name(), "pod") {
				pods = append(pods, e.podRoot+"/"+q+d.Name())
			}
		}
	}
	for _, rel := range pods {
		uid := strings.TrimPrefix(filepath.Base(rel), "pod")
		// The scripts filter on kubelet's io.kubernetes.pod.uid label; the
		// test's sandboxes carry the UID in their metadata only.
		out, err := exec.CommandContext(ctx, e.crictl, "--runtime-endpoint", e.cd.Endpoint(), "pods", "-o", "json").Output()
		if err != nil {
			t.Fatalf("crictl pods for %s: %v", uid, err)
		}
		var list struct {
			Items []struct {
				Metadata struct{ UID string } `json:"metadata"`
			} `json:"items"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("crictl pods -o json: %v", err)
		}
		if slices.ContainsFunc(list.Items, func(it struct {
			Metadata struct{ UID string } `json:"metadata"`
		}) bool {
			return it.Metadata.UID == uid
		}) {
			continue // the runtime has it: live
		}
		if err := removeUnder(e.r, rel); err != nil {
			t.Fatal(err)
		}
	}
}

func oursClean(ctx context.Context, t *testing.T, e *peerEnv, _ []pod) {
	runClean(ctx, t, e.binary, e.cleanCfg)
}

// TestPeers removes the same leaked pods with each peer's method, on fresh
// trees of the same shape in the same run, order rotated per run: pods
// removed per second, and whether any live pod (real sandbox) lost a dir.
func TestPeers(t *testing.T) {
	testbed.RequireRoot(t)
	k := getKnobs(t)
	crictl := os.Getenv("RELIEF_CRICTL")
	if crictl == "" {
		t.Skip("RELIEF_CRICTL (crictl built from cri-tools v1.37.0) not set: `make relief` sets it")
	}
	ctx := context.Background()
	r, kubelet, cd, live, liveDirs := newNode(t, "relief-peers", k.podRoot, 5)
	e := &peerEnv{r: r, cd: cd, podRoot: k.podRoot, crictl: crictl, binary: k.binary,
		cleanCfg: writeConfig(t, binConfig(t, r.Rel(k.podRoot), kubelet, cd.Endpoint(), true))}
	peers := []peer{
		{"kubelet's path: cgroups fs manager Destroy per pod", kubeletDestroy},
		{"script: one crictl process per pod, then rmdir", crictlScript},
		{"ours: cgroupcleand clean", oursClean},
	}
	rates := map[string]bench.Series{}
	touched := map[string]int{}
	for run := 0; run < k.runs; run++ {
		for i := range peers {
			p := peers[(i+run)%len(peers)]
			leaked := leakedPods(ctx, t, r, k.podRoot, k.peerPods)
			start := time.Now()
			p.remove(ctx, t, e, leaked)
			took := time.Since(start)
			if left := leftover(r, k.podRoot, liveDirs); left != 0 {
				t.Fatalf("%s left %d leaked dirs", p.name, left)
			}
			touched[p.name] += len(missing(liveDirs))
			rates[p.name] = append(rates[p.name], float64(len(leaked))/took.Seconds())
			t.Logf("run %d %s: %d pods in %.2f s", run+1, p.name, len(leaked), took.Seconds())
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d leaked whole pods (pod dir and 2 container dirs in each of %d hierarchies) next to %d live pods (real sandboxes), %d run(s), order rotated.\n\n",
		k.peerPods, len(r.Hierarchies), len(live), k.runs)
	b.WriteString("| method | pods removed per second | live pod dirs touched |\n|---|---|---|\n")
	base := rates[peers[2].name]
	for _, p := range peers {
		fmt.Fprintf(&b, "| %s | %s (%s of ours) | %d |\n", p.name, rates[p.name].Stats().Format(f0),
			bench.Ratios(rates[p.name], base).Stats().Format(bench.X), touched[p.name])
	}
	writeFile(t, filepath.Join(k.out, "relief-peers.md"), b.String())
	t.Log("\n" + b.String())
	if gone := missing(liveDirs); len(gone) > 0 {
		t.Fatalf("live pod dirs removed: %d, first %s", len(gone), gone[0])
	}
}
