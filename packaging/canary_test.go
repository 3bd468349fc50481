package packaging

import (
	"bufio"
	"bytes"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The canary rollout on OKD (README.md, "Canary rollout"): the
// worker-canary pool, its observe MachineConfig and MachineOSConfig, and
// the act MachineConfig of every worker.
const (
	canaryPool    = "okd/worker-canary-pool.yaml"
	canaryMOSC    = "okd/machineosconfig-worker-canary.yaml"
	workerMOSC    = "okd/machineosconfig-worker.yaml"
	observeMC     = "okd/99-worker-canary-cgroupclean-observe.yaml"
	actMC         = "okd/99-worker-cgroupclean.yaml"
	observeConfig = "packaging/okd/config-observe.toml"
	canaryRole    = "worker-canary"
	canaryNodeSel = "node-role.kubernetes.io/worker-canary"
)

// objectHead is what every object here starts with.
type objectHead struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
}

type machineConfigPool struct {
	objectHead `yaml:",inline"`
	Spec       struct {
		MachineConfigSelector struct {
			MatchLabels      map[string]string `yaml:"matchLabels"`
			MatchExpressions []struct {
				Key      string   `yaml:"key"`
				Operator string   `yaml:"operator"`
				Values   []string `yaml:"values"`
			} `yaml:"matchExpressions"`
		} `yaml:"machineConfigSelector"`
		NodeSelector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"nodeSelector"`
	} `yaml:"spec"`
}

// selects reports whether the pool renders a MachineConfig with these
// labels (matchLabels and In expressions, what the pools here use).
func (p machineConfigPool) selects(labels map[string]string) bool {
	sel := p.Spec.MachineConfigSelector
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			return false
		}
	}
	for _, e := range sel.MatchExpressions {
		if e.Operator != "In" || !slices.Contains(e.Values, labels[e.Key]) {
			return false
		}
	}
	return len(sel.MatchLabels)+len(sel.MatchExpressions) > 0
}

// The worker pool every OKD cluster has: it renders the MachineConfigs of
// role worker.
func workerPool() machineConfigPool {
	var p machineConfigPool
	p.Metadata.Name = "worker"
	p.Spec.MachineConfigSelector.MatchLabels = map[string]string{roleLabel: "worker"}
	return p
}

func rolloutsByFile(t *testing.T) map[string]rollout {
	out := map[string]rollout{}
	for _, r := range findRollouts(t) {
		out[r.file] = r
	}
	return out
}

// The pool takes the labelled nodes and renders the worker MachineConfigs
// and its own; the observe MachineConfig reaches the canaries only; the
// act one every worker, canaries included, and wins over the observe one
// there once applied (MachineConfigs merge in name order, the last wins).
func TestCanaryPoolSelection(t *testing.T) {
	var pool machineConfigPool
	if err := yaml.Unmarshal(readRepo(t, "packaging/"+canaryPool), &pool); err != nil {
		t.Fatal(err)
	}
	if pool.APIVersion != mcAPI || pool.Kind != "MachineConfigPool" || pool.Metadata.Name != canaryRole {
		t.Fatalf("%s: %s %s %q", canaryPool, pool.APIVersion, pool.Kind, pool.Metadata.Name)
	}
	if v, ok := pool.Spec.NodeSelector.MatchLabels[canaryNodeSel]; !ok || v != "" || len(pool.Spec.NodeSelector.MatchLabels) != 1 {
		t.Errorf("nodeSelector %v, want only %s", pool.Spec.NodeSelector.MatchLabels, canaryNodeSel)
	}
	rs := rolloutsByFile(t)
	obs, act := rs[observeMC], rs[actMC]
	if obs.mc == nil || act.mc == nil {
		t.Fatalf("MachineConfigs %s and %s not found", observeMC, actMC)
	}
	worker := workerPool()
	for _, c := range []struct {
		name               string
		mc                 *machineConfig
		toWorker, toCanary bool
	}{
		{observeMC, obs.mc, false, true},
		{actMC, act.mc, true, true},
	} {
		if got := worker.selects(c.mc.Metadata.Labels); got != c.toWorker {
			t.Errorf("%s: rendered by the worker pool = %v, want %v", c.name, got, c.toWorker)
		}
		if got := pool.selects(c.mc.Metadata.Labels); got != c.toCanary {
			t.Errorf("%s: rendered by the worker-canary pool = %v, want %v", c.name, got, c.toCanary)
		}
	}
	if obs.mc.Metadata.Labels[roleLabel] != canaryRole {
		t.Errorf("%s: role %q, want %s", observeMC, obs.mc.Metadata.Labels[roleLabel], canaryRole)
	}
	if !(obs.mc.Metadata.Name < act.mc.Metadata.Name) {
		t.Errorf("%s sorts after %s: the act config would not win on the canaries", obs.mc.Metadata.Name, act.mc.Metadata.Name)
	}
	// Both write the config at the same path and the same unit: the
	// later one replaces the earlier on a canary.
	oc, err := parseIgnition(obs.raw)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := parseIgnition(act.raw)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(oc.Systemd, ac.Systemd) {
		t.Error("the observe and act MachineConfigs install different units or drop-ins")
	}
	if len(oc.Storage.Files) != 1 || len(ac.Storage.Files) != 1 || oc.Storage.Files[0].Path != configPath || ac.Storage.Files[0].Path != configPath {
		t.Errorf("want both to write only %s", configPath)
	}
}

var tomlSection = regexp.MustCompile(`^\[([a-z_.]+)\]`)

// tomlKeys maps section.key to its value as written, comments and blank
// lines aside.
func tomlKeys(t *testing.T, data []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if m := tomlSection.FindStringSubmatch(l); m != nil {
			section = m[1]
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("not a key: %q", l)
		}
		out[section+"."+strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

// The canaries' config is the example with clean.mode = "observe" and
// nothing else changed.
func TestObserveConfigIsExampleObserving(t *testing.T) {
	ex, obs := tomlKeys(t, readRepo(t, configSrc)), tomlKeys(t, readRepo(t, observeConfig))
	if obs["clean.mode"] != `"observe"` {
		t.Errorf("clean.mode = %s, want \"observe\"", obs["clean.mode"])
	}
	delete(ex, "clean.mode")
	delete(obs, "clean.mode")
	if !reflect.DeepEqual(ex, obs) {
		t.Errorf("%s differs from %s beyond clean.mode: run make machineconfig", observeConfig, configSrc)
	}
}

type mosc struct {
	objectHead `yaml:",inline"`
	Spec       struct {
		MachineConfigPool struct {
			Name string `yaml:"name"`
		} `yaml:"machineConfigPool"`
		RenderedImagePushSpec string `yaml:"renderedImagePushSpec"`
		ContainerFile         []struct {
			Content string `yaml:"content"`
		} `yaml:"containerFile"`
	} `yaml:"spec"`
}

// The canary pool layers the same rpm as the worker pool, into an image of
// its own (two pools pushing one tag would overwrite each other's image).
func TestCanaryMachineOSConfig(t *testing.T) {
	var c, w mosc
	if err := yaml.Unmarshal(readRepo(t, "packaging/"+canaryMOSC), &c); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(readRepo(t, "packaging/"+workerMOSC), &w); err != nil {
		t.Fatal(err)
	}
	if c.APIVersion != mcAPI || c.Kind != "MachineOSConfig" || c.Metadata.Name != canaryRole || c.Spec.MachineConfigPool.Name != canaryRole {
		t.Errorf("%s: %s %s %q for pool %q", canaryMOSC, c.APIVersion, c.Kind, c.Metadata.Name, c.Spec.MachineConfigPool.Name)
	}
	if c.Spec.RenderedImagePushSpec == "" || c.Spec.RenderedImagePushSpec == w.Spec.RenderedImagePushSpec {
		t.Errorf("push spec %q: want one of its own (the worker pool's is %q)", c.Spec.RenderedImagePushSpec, w.Spec.RenderedImagePushSpec)
	}
	cf, err := os.ReadFile("okd/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Spec.ContainerFile) != 1 || instructions(c.Spec.ContainerFile[0].Content) != instructions(string(cf)) {
		t.Error("the canary MachineOSConfig's containerFile differs from okd/Containerfile")
	}
}

// packaging/README.md applies the files of the rollout, in order.
func TestCanaryRolloutDocumented(t *testing.T) {
	readme := string(readRepo(t, "packaging/README.md"))
	i := strings.Index(readme, "## Canary rollout")
	if i < 0 {
		t.Fatal(`packaging/README.md has no "## Canary rollout" section`)
	}
	sec := readme[i:]
	if j := strings.Index(sec[3:], "\n## "); j >= 0 {
		sec = sec[:j+3]
	}
	last := -1
	for _, step := range []string{
		"oc apply -f packaging/okd/" + strings.TrimPrefix(canaryPool, "okd/"),
		"oc label node",
		"oc apply -f packaging/okd/" + strings.TrimPrefix(canaryMOSC, "okd/"),
		"oc apply -f packaging/okd/" + strings.TrimPrefix(observeMC, "okd/"),
		"oc apply -f packaging/okd/metrics/",
		"oc apply -f packaging/okd/" + strings.TrimPrefix(workerMOSC, "okd/"),
		"oc apply -f packaging/okd/" + strings.TrimPrefix(actMC, "okd/"),
	} {
		k := strings.Index(sec, step)
		if k < 0 {
			t.Errorf("the canary rollout does not run %q", step)
			continue
		}
		if k < last {
			t.Errorf("%q comes too early", step)
		}
		last = k
	}
}
