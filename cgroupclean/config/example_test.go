package config

import (
	"os"
	"reflect"
	"testing"
)

// The shipped example documents every key with its default: parsing it
// must give exactly Default(), so the two cannot drift apart.
func TestExampleIsTheDefaults(t *testing.T) {
	cfg, err := Load("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("config.example.toml differs from Default():\nexample %+v\ndefault %+v", cfg, Default())
	}
}

// Every key of the configuration appears in the example.
func TestExampleNamesEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	lines := keyLines(string(data))
	var walk func(prefix string, v reflect.Type)
	walk = func(prefix string, v reflect.Type) {
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			key := f.Tag.Get("toml")
			if key == "" {
				continue
			}
			if prefix != "" {
				key = prefix + "." + key
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration{}) {
				walk(key, f.Type)
				continue
			}
			if lines[key] == 0 {
				t.Errorf("config.example.toml does not document %s", key)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
}
