package main

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/decide"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
)

// encoderJSON is what `scan --json` printed before it streamed: the whole
// document through json.Encoder.
func encoderJSON(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestStreamedJSONIsTheEncodersBytes: the streamed document is byte for
// byte the one json.Encoder writes, for a document with every field set,
// one with several items (nested containers, HTML-escaped strings), and
// one with every field zero.
func TestStreamedJSONIsTheEncodersBytes(t *testing.T) {
	s, results, health := filledScan("/p/<x>&")
	full := newScanDoc("c.toml", s, results, health, true)

	var many engine.Scan
	many.Plan = decide.Plan{Items: []decide.Item{}, Kept: map[decide.Reason]int{decide.TooYoung: 2, decide.Busy: 1}}
	for i := range 3 {
		it := s.Plan.Items[0]
		it.Path = "/kubepods/pod" + string(rune('a'+i))
		it.Children = append([]decide.Item{}, it.Children...)
		if i == 1 {
			it.Children = nil
			it.Hierarchies = []string{}
		}
		many.Plan.Items = append(many.Plan.Items, it)
	}
	for name, doc := range map[string]any{
		"full":  full,
		"many":  newScanDoc("/etc/<cfg>.toml", &many, append(results, results...), nil, false),
		"zero":  scanDoc{},
		"empty": newScanDoc("", &engine.Scan{}, []engine.Result{}, nil, false),
	} {
		want := encoderJSON(t, doc)
		var got bytes.Buffer
		if err := writeIndentedJSON(&got, doc); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: streamed document differs\n got: %s\nwant: %s", name, got.Bytes(), want)
		}
	}
}
