package packaging

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
)

const (
	dropInSource = "packaging/systemd/metrics.conf"
	okdMetrics   = "okd/metrics/cgroupclean-metrics.yaml"
	// maxExposureMetrics bounds the unit with the metrics drop-in: it adds
	// the host network (PrivateNetwork=no), AF_INET/AF_INET6 and a
	// localhost-only IP allow list to the closed unit. It scores 1.9.
	maxExposureMetrics = 2.0
)

// dropInRoot lays out a root with the unit in /usr/lib and, when withDropIn,
// the metrics drop-in in /etc/systemd/system/cgroupcleand.service.d.
func dropInRoot(t *testing.T, withDropIn bool) string {
	t.Helper()
	root := t.TempDir()
	unitDir := filepath.Join(root, "usr/lib/systemd/system")
	dropDir := filepath.Join(root, "etc/systemd/system", unitName+".d")
	for _, d := range []string{unitDir, dropDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, filepath.Join(repoRoot, unitSource), filepath.Join(unitDir, unitName))
	if withDropIn {
		copyFile(t, filepath.Join(repoRoot, dropInSource), filepath.Join(dropDir, "metrics.conf"))
	}
	return root
}

func exposure(t *testing.T, root string) float64 {
	t.Helper()
	v, _ := securityExposure(t, "--root="+root, unitName)
	return v
}

// The drop-in opens loopback and costs a bounded exposure; the unit
// without it (what the packages activate) keeps the closed score.
func TestMetricsDropInSecurity(t *testing.T) {
	closed, open := exposure(t, dropInRoot(t, false)), exposure(t, dropInRoot(t, true))
	t.Logf("exposure: unit %.1f, unit + metrics drop-in %.1f", closed, open)
	if closed > maxExposure {
		t.Errorf("unit alone %.1f > %.1f", closed, maxExposure)
	}
	if open > maxExposureMetrics || open <= closed {
		t.Errorf("with the drop-in %.1f: want above the closed unit's %.1f (it opens loopback) and at most %.1f", open, closed, maxExposureMetrics)
	}
}

// systemd-analyze verify of the unit with the drop-in: no unknown key, no
// bad value.
func TestMetricsDropInVerify(t *testing.T) {
	needSystemdAnalyze(t)
	if _, err := os.Stat(filepath.Join(hostUnits, "multi-user.target")); err != nil {
		t.Skip("no host units") // TestUnitVerify reports it with Need
	}
	if out, err := verifyInRoot(t, dropInRoot(t, true)); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify with the drop-in: err=%v\n%s", err, out)
	}
}

// What the drop-in sets, and that it keeps the rest of the sandbox.
func TestMetricsDropInDirectives(t *testing.T) {
	keys := parseUnit(t, filepath.Join(repoRoot, dropInSource))
	want := map[string]string{
		"Service.PrivateNetwork":          "no",
		"Service.RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"Service.IPAddressDeny":           "any",
		"Service.IPAddressAllow":          "localhost",
	}
	for k, v := range want {
		if keys[k] != v {
			t.Errorf("%s = %q, want %q", k, keys[k], v)
		}
	}
	for k := range keys {
		if _, ok := want[k]; !ok {
			t.Errorf("the drop-in sets %s: it must only open loopback", k)
		}
	}
	// The OKD MachineConfig installs this very file.
	mc := string(readRepo(t, "packaging/okd/99-worker-cgroupclean.bu"))
	if !strings.Contains(mc, "contents_local: "+dropInSource) {
		t.Errorf("99-worker-cgroupclean.bu does not install %s", dropInSource)
	}
}

type kobj struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	RoleRef struct {
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
	} `yaml:"roleRef"`
	Subjects []struct {
		Kind      string `yaml:"kind"`
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"subjects"`
	Rules []struct {
		APIGroups       []string `yaml:"apiGroups"`
		Resources       []string `yaml:"resources"`
		NonResourceURLs []string `yaml:"nonResourceURLs"`
		Verbs           []string `yaml:"verbs"`
	} `yaml:"rules"`
	Spec yaml.Node `yaml:"spec"`
}

type daemonSetSpec struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			ServiceAccountName string `yaml:"serviceAccountName"`
			HostNetwork        bool   `yaml:"hostNetwork"`
			Containers         []struct {
				Name  string   `yaml:"name"`
				Image string   `yaml:"image"`
				Args  []string `yaml:"args"`
				Ports []struct {
					Name          string `yaml:"name"`
					ContainerPort int    `yaml:"containerPort"`
					HostPort      int    `yaml:"hostPort"`
				} `yaml:"ports"`
				VolumeMounts []struct {
					Name      string `yaml:"name"`
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
			} `yaml:"containers"`
			Volumes []struct {
				Name   string `yaml:"name"`
				Secret struct {
					SecretName string `yaml:"secretName"`
				} `yaml:"secret"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
	} `yaml:"ports"`
}

type serviceMonitorSpec struct {
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	NamespaceSelector struct {
		MatchNames []string `yaml:"matchNames"`
	} `yaml:"namespaceSelector"`
	Endpoints []struct {
		Port            string `yaml:"port"`
		Scheme          string `yaml:"scheme"`
		Path            string `yaml:"path"`
		BearerTokenFile string `yaml:"bearerTokenFile"`
		TLSConfig       struct {
			CAFile     string `yaml:"caFile"`
			ServerName string `yaml:"serverName"`
		} `yaml:"tlsConfig"`
	} `yaml:"endpoints"`
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// The kube-rbac-proxy DaemonSet, its Service and the ServiceMonitor agree
// with each other and with the daemon: the proxy forwards to the daemon's
// default loopback listener from the host network, the Service selects the
// proxy's pods and names its port, the ServiceMonitor selects the Service
// and scrapes that port over TLS with the Service's serving certificate,
// and the RBAC lets the proxy review tokens and the platform Prometheus
// read /metrics.
func TestOKDMetricsManifests(t *testing.T) {
	dec := yaml.NewDecoder(bytes.NewReader(readRepo(t, "packaging/"+okdMetrics)))
	objs := map[string]kobj{}
	for {
		var o kobj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", okdMetrics, err)
		}
		if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
			t.Fatalf("object without kind, apiVersion or name: %+v", o)
		}
		key := o.Kind + "/" + o.Metadata.Name
		if _, dup := objs[key]; dup {
			t.Fatalf("%s twice", key)
		}
		objs[key] = o
	}
	must := func(key string) kobj {
		o, ok := objs[key]
		if !ok {
			t.Fatalf("%s missing; have %v", key, keysOf(objs))
		}
		return o
	}
	ns := must("Namespace/openshift-cgroupclean")
	if ns.Metadata.Labels["openshift.io/cluster-monitoring"] != "true" {
		t.Error("the namespace lacks openshift.io/cluster-monitoring=true: the platform Prometheus would not scrape it")
	}
	for k, o := range objs {
		namespaced := !strings.HasPrefix(k, "Namespace/") && !strings.HasPrefix(k, "Cluster")
		if namespaced && o.Metadata.Namespace != ns.Metadata.Name {
			t.Errorf("%s is in namespace %q", k, o.Metadata.Namespace)
		}
	}

	ds := must("DaemonSet/cgroupclean-metrics")
	var dss daemonSetSpec
	if err := ds.Spec.Decode(&dss); err != nil {
		t.Fatal(err)
	}
	pod := dss.Template.Spec
	if !subset(dss.Selector.MatchLabels, dss.Template.Metadata.Labels) {
		t.Error("DaemonSet selector does not match its pod template")
	}
	if !pod.HostNetwork {
		t.Error("the proxy must run on the host network to reach the daemon's loopback listener")
	}
	must("ServiceAccount/" + pod.ServiceAccountName)
	if len(pod.Containers) != 1 || !strings.Contains(pod.Containers[0].Image, "kube-rbac-proxy") {
		t.Fatalf("want one kube-rbac-proxy container, got %+v", pod.Containers)
	}
	proxy := pod.Containers[0]
	args := map[string]string{}
	for _, a := range proxy.Args {
		k, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		args[k] = v
	}
	if args["upstream"] != "http://"+config.DefaultMetricsListen+"/" {
		t.Errorf("--upstream=%s, want the daemon's default listener %s", args["upstream"], config.DefaultMetricsListen)
	}
	_, listenPort, err := net.SplitHostPort(args["secure-listen-address"])
	if err != nil {
		t.Fatalf("--secure-listen-address: %v", err)
	}
	if len(proxy.Ports) != 1 || strconv.Itoa(proxy.Ports[0].ContainerPort) != listenPort || proxy.Ports[0].HostPort != proxy.Ports[0].ContainerPort {
		t.Errorf("container ports %+v do not match --secure-listen-address port %s", proxy.Ports, listenPort)
	}
	if _, defPort, _ := net.SplitHostPort(config.DefaultMetricsListen); defPort == listenPort {
		t.Error("the proxy and the daemon would both bind the same port on the host network")
	}
	if args["allow-paths"] != "/metrics" {
		t.Errorf("--allow-paths=%q, want /metrics only", args["allow-paths"])
	}
	certDir := filepath.Dir(args["tls-cert-file"])
	if certDir != filepath.Dir(args["tls-private-key-file"]) || len(proxy.VolumeMounts) != 1 || proxy.VolumeMounts[0].MountPath != certDir {
		t.Errorf("TLS files %s, %s not in the mounted %+v", args["tls-cert-file"], args["tls-private-key-file"], proxy.VolumeMounts)
	}

	svc := must("Service/cgroupclean-metrics")
	var ss serviceSpec
	if err := svc.Spec.Decode(&ss); err != nil {
		t.Fatal(err)
	}
	if !subset(ss.Selector, dss.Template.Metadata.Labels) {
		t.Error("the Service does not select the proxy's pods")
	}
	if len(ss.Ports) != 1 || ss.Ports[0].TargetPort != proxy.Ports[0].Name || strconv.Itoa(ss.Ports[0].Port) != listenPort {
		t.Errorf("Service ports %+v vs container port %+v", ss.Ports, proxy.Ports)
	}
	secret := svc.Metadata.Annotations["service.beta.openshift.io/serving-cert-secret-name"]
	if len(pod.Volumes) != 1 || pod.Volumes[0].Secret.SecretName != secret || pod.Volumes[0].Name != proxy.VolumeMounts[0].Name {
		t.Errorf("the proxy mounts %+v, the service CA writes secret %q", pod.Volumes, secret)
	}

	sm := must("ServiceMonitor/cgroupclean")
	if sm.APIVersion != "monitoring.coreos.com/v1" {
		t.Errorf("ServiceMonitor apiVersion %s", sm.APIVersion)
	}
	var sms serviceMonitorSpec
	if err := sm.Spec.Decode(&sms); err != nil {
		t.Fatal(err)
	}
	if !subset(sms.Selector.MatchLabels, svc.Metadata.Labels) {
		t.Error("the ServiceMonitor does not select the Service")
	}
	if len(sms.NamespaceSelector.MatchNames) != 1 || sms.NamespaceSelector.MatchNames[0] != ns.Metadata.Name {
		t.Errorf("ServiceMonitor namespaces %v", sms.NamespaceSelector.MatchNames)
	}
	if len(sms.Endpoints) != 1 {
		t.Fatalf("endpoints %+v", sms.Endpoints)
	}
	ep := sms.Endpoints[0]
	if ep.Port != ss.Ports[0].Name || ep.Scheme != "https" || ep.Path != "/metrics" || ep.BearerTokenFile == "" {
		t.Errorf("endpoint %+v: want port %s, https, /metrics, a bearer token", ep, ss.Ports[0].Name)
	}
	if want := svc.Metadata.Name + "." + ns.Metadata.Name + ".svc"; ep.TLSConfig.ServerName != want || ep.TLSConfig.CAFile == "" {
		t.Errorf("tlsConfig %+v, want serverName %s (the serving certificate's name) and the service CA", ep.TLSConfig, want)
	}

	// RBAC: the proxy reviews tokens and access; Prometheus may GET /metrics.
	bindsTo := func(binding, role, saNS, sa string) {
		b := must(binding)
		if b.RoleRef.Name != role {
			t.Errorf("%s binds %s, want %s", binding, b.RoleRef.Name, role)
		}
		for _, s := range b.Subjects {
			if s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == saNS {
				return
			}
		}
		t.Errorf("%s does not bind %s/%s", binding, saNS, sa)
	}
	bindsTo("ClusterRoleBinding/cgroupclean-metrics-proxy", "cgroupclean-metrics-proxy", ns.Metadata.Name, pod.ServiceAccountName)
	bindsTo("ClusterRoleBinding/cgroupclean-metrics-reader", "cgroupclean-metrics-reader", "openshift-monitoring", "prometheus-k8s")
	bindsTo("RoleBinding/prometheus-k8s", "prometheus-k8s", "openshift-monitoring", "prometheus-k8s")
	proxyRole := must("ClusterRole/cgroupclean-metrics-proxy")
	var reviews []string
	for _, r := range proxyRole.Rules {
		reviews = append(reviews, r.Resources...)
	}
	if strings.Join(reviews, ",") != "tokenreviews,subjectaccessreviews" {
		t.Errorf("proxy role grants %v", reviews)
	}
	reader := must("ClusterRole/cgroupclean-metrics-reader")
	if len(reader.Rules) != 1 || strings.Join(reader.Rules[0].NonResourceURLs, ",") != "/metrics" || strings.Join(reader.Rules[0].Verbs, ",") != "get" {
		t.Errorf("reader role %+v: want GET /metrics only", reader.Rules)
	}
}

func keysOf(m map[string]kobj) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
