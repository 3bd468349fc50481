package main

import (
	"bytes"
	"os"
	"reflect"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
)

const (
	exampleFile = "../../../config.example.toml"
	observeFile = "../../okd/config-observe.toml"
)

func TestObserve(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"adds the key": {
			"[runtime]\nmode = \"x\"\n\n[clean]\n# c\nmin_age = \"1m\"\n[memcg]\nmode = \"act\"\n",
			header + "[runtime]\nmode = \"x\"\n\n[clean]\n# Canary: decide and record, remove nothing (docs/fleet.md).\nmode = \"observe\"\n# c\nmin_age = \"1m\"\n[memcg]\nmode = \"act\"\n",
		},
		"replaces the key": {
			"[clean]\n# act or observe\nmode = \"act\"\nmin_age = \"1m\"\n\n[memcg]\nmode = \"observe\"\n",
			header + "[clean]\n# act or observe\nmode = \"observe\"\nmin_age = \"1m\"\n\n[memcg]\nmode = \"observe\"\n",
		},
	} {
		got, err := observe([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", name, got, tc.want)
		}
	}
	for name, in := range map[string]string{
		"no clean section": "[memcg]\nmode = \"act\"\n",
		"clean twice":      "[clean]\n[clean]\n",
		"mode twice":       "[clean]\nmode = \"act\"\nmode = \"act\"\n",
	} {
		if _, err := observe([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The committed config-observe.toml is what the command makes of
// config.example.toml today.
func TestObserveConfigCurrent(t *testing.T) {
	example, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := observe(example)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(observeFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run make machineconfig", observeFile)
	}
}

// The daemon's own parser reads it as observe mode, everything else at
// the example's values.
func TestObserveConfigLoads(t *testing.T) {
	text, err := os.ReadFile(observeFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(observeFile, string(text))
	if err != nil {
		t.Fatal(err)
	}
	mode := reflect.ValueOf(cfg.Clean).FieldByName("Mode")
	if !mode.IsValid() || mode.String() != "observe" {
		t.Fatalf("clean.mode = %v, want observe", mode)
	}
	example, err := config.Load(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	reflect.ValueOf(&example.Clean).Elem().FieldByName("Mode").Set(mode)
	if !reflect.DeepEqual(cfg, example) {
		t.Errorf("config-observe.toml differs from config.example.toml beyond clean.mode:\n%+v\n%+v", cfg, example)
	}
}
