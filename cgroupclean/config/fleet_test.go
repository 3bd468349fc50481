package config

import (
	"strings"
	"testing"
)

// A mode that is neither act nor observe, and a doctor cadence out of its
// bounds, are refused with the key, its line and the allowed values: a
// typo must not turn observe into act.
func TestFleetKeysRejected(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[clean]\nmode = \"Observe\"\n", `clean.mode (line 2): must be act or observe, got "Observe"`},
		{"[clean]\nmode = \"dry-run\"\n", `clean.mode (line 2): must be act or observe, got "dry-run"`},
		{"[clean]\nmode = \"\"\n", `clean.mode (line 2): must be act or observe, got ""`},
		{"[doctor]\nevery_passes = -1\n", "doctor.every_passes (line 2): must be in [0, 288] (0 turns it off), got -1"},
		{"[doctor]\nevery_passes = 289\n", "doctor.every_passes (line 2): must be in [0, 288] (0 turns it off), got 289"},
	} {
		_, err := Parse("t.toml", tc.text)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to say %q", tc.text, err, tc.want)
		}
	}
}

func TestFleetKeysAccepted(t *testing.T) {
	cfg, err := Parse("t.toml", "[clean]\nmode = \"observe\"\n[doctor]\nevery_passes = 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Clean.Observing() || cfg.Doctor.EveryPasses != 0 {
		t.Fatalf("got %+v %+v", cfg.Clean, cfg.Doctor)
	}
	if d := Default(); d.Clean.Mode != ModeAct || d.Clean.Observing() || d.Doctor.EveryPasses != DefaultDoctorEveryPasses {
		t.Fatalf("defaults %+v %+v", d.Clean, d.Doctor)
	}
}
