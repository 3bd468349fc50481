package names

import (
	"regexp"
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
		{"cgroupfs pod1 is not a pod", Cgroupfs, Burstable, "pod1", "", false},
		{"systemd pod1 is not a pod", Systemd, Burstable, "kubepods-burstable-pod1.slice", "", false},
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

// TestPodUIDs: the pod UIDs kubelet makes are accepted in both driver
// spellings, and every other name is refused (left alone, never removed).
func TestPodUIDs(t *testing.T) {
	const static = "0123456789abcdef0123456789abcdef" // kubelet's MD5-hex UID of a static pod
	accept := []string{uid, static, "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"}
	refuse := []struct{ name, uid string }{
		{"word", "1"},
		{"short hex", "abc123"},
		{"31 hex", static[:31]},
		{"33 hex", static + "0"},
		{"64 hex (a container ID)", id64},
		{"upper-case UUID", strings.ToUpper(uid)},
		{"upper-case static", strings.ToUpper(static)},
		{"one upper-case digit", "3F1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0f"},
		{"UUID without dashes but 36 long", "3f1c2b7a09d4104e0b08c2e05a6b7c8d9e0f"},
		{"dashes moved", "3f1c2b7a9-d41-4e0b-8c2e-5a6b7c8d9e0f"},
		{"UUID in braces", "{" + uid + "}"},
		{"UUID one digit short", uid[:35]},
		{"UUID one digit long", uid + "0"},
		{"non-hex letter", "3f1c2b7a-9d41-4e0b-8c2e-5a6b7c8d9e0g"},
		{"static with a dash", static[:16] + "-" + static[17:]},
		{"dots", "3f1c2b7a.9d41.4e0b.8c2e.5a6b7c8d9e0f"},
		{"empty", ""},
	}
	for _, u := range accept {
		for _, q := range []QoS{Guaranteed, Burstable, BestEffort} {
			if got, ok := ParsePodDir(Cgroupfs, q, "pod"+u); !ok || got != u {
				t.Errorf("cgroupfs %s pod%s: got %q, %v", q, u, got, ok)
			}
			if got, ok := ParsePodDir(Systemd, q, SystemdPodSlice(q, u)); !ok || got != u {
				t.Errorf("systemd %s %s: got %q, %v", q, SystemdPodSlice(q, u), got, ok)
			}
		}
	}
	for _, tc := range refuse {
		for _, base := range []string{"pod" + tc.uid, "kubepods-burstable-pod" + strings.ReplaceAll(tc.uid, "-", "_") + ".slice"} {
			for _, d := range []Driver{Systemd, Cgroupfs} {
				if got, ok := ParsePodDir(d, Burstable, base); ok {
					t.Errorf("%s: %s accepted %q as pod %q", tc.name, d, base, got)
				}
			}
		}
	}
	// Mixed separators: one dash left in the systemd spelling is another
	// slice level; an underscore in the cgroupfs spelling is not kubelet's.
	for _, base := range []string{
		"kubepods-burstable-pod3f1c2b7a_9d41-4e0b_8c2e_5a6b7c8d9e0f.slice",
		"kubepods-burstable-pod3f1c2b7a_9d41_4e0b_8c2e_5a6b7c8d9e0f_.slice",
		"pod3f1c2b7a_9d41-4e0b-8c2e-5a6b7c8d9e0f",
		"pod" + uidEsc,
	} {
		for _, d := range []Driver{Systemd, Cgroupfs} {
			if got, ok := ParsePodDir(d, Burstable, base); ok {
				t.Errorf("%s accepted mixed separators %q as pod %q", d, base, got)
			}
		}
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

// kubeletUID is what kubelet makes: a lower-case UUID or a static pod's
// 32 hex digits.
var kubeletUID = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32})$`)

// FuzzParseNames checks that whatever a directory is called, a parsed UID
// is one kubelet makes (so it can never carry a path separator or ".."),
// an ID is 64 hex digits, and both driver spellings round-trip.
func FuzzParseNames(f *testing.F) {
	for _, s := range []string{"kubepods-burstable-pod" + uidEsc + ".slice", "pod" + uid, "crio-" + id64 + ".scope", id64, "kubepods-pod_.slice", "pod/..", "crio-conmon-", "pod1", "pod" + strings.ToUpper(uid), "kubepods-pod0123456789abcdef0123456789abcdef.slice"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		for _, d := range []Driver{Systemd, Cgroupfs} {
			for _, q := range []QoS{Guaranteed, Burstable, BestEffort} {
				if u, ok := ParsePodDir(d, q, base); ok {
					if !kubeletUID.MatchString(u) {
						t.Fatalf("uid %q from %q is not one kubelet makes", u, base)
					}
					if d == Systemd && SystemdPodSlice(q, u) != base {
						t.Fatalf("no round trip: %q -> %q -> %q", base, u, SystemdPodSlice(q, u))
					}
					if d == Cgroupfs && "pod"+u != base {
						t.Fatalf("no round trip: %q -> %q", base, u)
					}
				}
			}
		}
		if id, _, ok := ParseContainerDir(base); ok && (len(id) != 64 || strings.ContainsAny(id, "/.")) {
			t.Fatalf("unsafe id %q from %q", id, base)
		}
	})
}
