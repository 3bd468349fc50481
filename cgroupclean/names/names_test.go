package names

import (
	"strings"
	"testing"
)

const uid = "3f1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0f"
const uidEsc = "3f1c2b7a_9d41_4e0b_8c2e_5a6b7c8d9e0f"

var id64 = strings.Repeat("ab12", 16)

func TestParsePodDir(t *testing.T) {
	tests := []struct {
		name    string
		driver  Driver
		qos     QoS
		base    string
		wantUID string
		wantOK  bool
	}{
		{"systemd guaranteed", Systemd, Guaranteed, "kubepods-pod" + uidEsc + ".slice", uid, true},
		{"systemd burstable", Systemd, Burstable, "kubepods-burstable-pod" + uidEsc + ".slice", uid, true},
		{"systemd besteffort", Systemd, BestEffort, "kubepods-besteffort-pod" + uidEsc + ".slice", uid, true},
		{"systemd static pod hash", Systemd, Burstable, "kubepods-burstable-pod0123456789abcdef0123456789abcdef.slice", "0123456789abcdef0123456789abcdef", true},
		{"systemd wrong qos prefix", Systemd, BestEffort, "kubepods-burstable-pod" + uidEsc + ".slice", "", false},
		{"systemd raw dash is another level", Systemd, Burstable, "kubepods-burstable-pod" + uid + ".slice", "", false},
		{"systemd no suffix", Systemd, Burstable, "kubepods-burstable-pod" + uidEsc, "", false},
		{"systemd qos dir is not a pod", Systemd, Guaranteed, "kubepods-burstable.slice", "", false},
		{"systemd empty uid", Systemd, Guaranteed, "kubepods-pod.slice", "", false},
		{"cgroupfs guaranteed", Cgroupfs, Guaranteed, "pod" + uid, uid, true},
		{"cgroupfs burstable", Cgroupfs, Burstable, "pod" + uid, uid, true},
		{"cgroupfs systemd name", Cgroupfs, Burstable, "kubepods-burstable-pod" + uidEsc + ".slice", "", false},
		{"cgroupfs qos dir", Cgroupfs, Guaranteed, "burstable", "", false},
		{"cgroupfs bad chars", Cgroupfs, Burstable, "pod../../etc", "", false},
		{"cgroupfs underscore uid", Cgroupfs, Burstable, "pod" + uidEsc, "", false},
		{"cgroupfs empty", Cgroupfs, Burstable, "pod", "", false},
		{"cgroupfs dash edge", Cgroupfs, Burstable, "pod-abc", "", false},
		{"container id is not a pod", Cgroupfs, Burstable, id64, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParsePodDir(tt.driver, tt.qos, tt.base)
			if got != tt.wantUID || ok != tt.wantOK {
				t.Fatalf("ParsePodDir(%s, %s, %q) = %q, %v; want %q, %v", tt.driver, tt.qos, tt.base, got, ok, tt.wantUID, tt.wantOK)
			}
		})
	}
}

func TestSystemdPodSliceRoundTrip(t *testing.T) {
	for _, q := range []QoS{Guaranteed, Burstable, BestEffort} {
		got, ok := ParsePodDir(Systemd, q, SystemdPodSlice(q, uid))
		if !ok || got != uid {
			t.Errorf("%s: round trip gave %q, %v", q, got, ok)
		}
	}
}

func TestParseQoSDir(t *testing.T) {
	tests := []struct {
		driver Driver
		base   string
		want   QoS
		ok     bool
	}{
		{Systemd, "kubepods-burstable.slice", Burstable, true},
		{Systemd, "kubepods-besteffort.slice", BestEffort, true},
		{Systemd, "burstable", "", false},
		{Cgroupfs, "burstable", Burstable, true},
		{Cgroupfs, "besteffort", BestEffort, true},
		{Cgroupfs, "kubepods-besteffort.slice", "", false},
		{Cgroupfs, "guaranteed", "", false},
	}
	for _, tt := range tests {
		got, ok := ParseQoSDir(tt.driver, tt.base)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseQoSDir(%s, %q) = %q, %v", tt.driver, tt.base, got, ok)
		}
	}
}

func TestParseContainerDir(t *testing.T) {
	tests := []struct {
		base string
		id   string
		kind ContainerKind
		ok   bool
	}{
		{"crio-" + id64 + ".scope", id64, CrioContainer, true},
		{"crio-conmon-" + id64 + ".scope", id64, CrioConmon, true},
		{"crio-" + id64, id64, CrioContainer, true},
		{"crio-conmon-" + id64, id64, CrioConmon, true},
		{"cri-containerd-" + id64 + ".scope", id64, ContainerdScope, true},
		{id64, id64, BareID, true},
		{"cri-containerd-" + id64, "", "", false},
		{id64 + ".scope", "", "", false},
		{"crio-" + id64[:63], "", "", false},
		{"crio-" + strings.ToUpper(id64), "", "", false},
		{"crio-conmon-", "", "", false},
		{"container", "", "", false},
		{"docker-" + id64 + ".scope", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		id, kind, ok := ParseContainerDir(tt.base)
		if id != tt.id || kind != tt.kind || ok != tt.ok {
			t.Errorf("ParseContainerDir(%q) = %q, %q, %v; want %q, %q, %v", tt.base, id, kind, ok, tt.id, tt.kind, tt.ok)
		}
	}
}

func TestDriverOfPodRoot(t *testing.T) {
	if DriverOfPodRoot("/kubepods.slice") != Systemd || DriverOfPodRoot("/kubepods") != Cgroupfs || DriverOfPodRoot("/x/kubepods") != Cgroupfs {
		t.Fatal("driver guess wrong")
	}
}

// FuzzParseNames checks that whatever a directory is called, a parsed UID or
// ID can never carry a path separator or "..", and that systemd names
// round-trip.
func FuzzParseNames(f *testing.F) {
	for _, s := range []string{"kubepods-burstable-pod" + uidEsc + ".slice", "pod" + uid, "crio-" + id64 + ".scope", id64, "kubepods-pod_.slice", "pod/..", "crio-conmon-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		for _, d := range []Driver{Systemd, Cgroupfs} {
			for _, q := range []QoS{Guaranteed, Burstable, BestEffort} {
				if u, ok := ParsePodDir(d, q, base); ok {
					if strings.ContainsAny(u, "/._") || u == "" {
						t.Fatalf("unsafe uid %q from %q", u, base)
					}
					if d == Systemd && SystemdPodSlice(q, u) != base {
						t.Fatalf("no round trip: %q -> %q -> %q", base, u, SystemdPodSlice(q, u))
					}
				}
			}
		}
		if id, _, ok := ParseContainerDir(base); ok && (len(id) != 64 || strings.ContainsAny(id, "/.")) {
			t.Fatalf("unsafe id %q from %q", id, base)
		}
	})
}
