package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every numeric key, present or future, has a range, and the range holds:
// a value just outside it is refused naming key, line and range, and its
// ends are accepted. A key added without a range fails here.
func TestEveryNumericKeyHasALimit(t *testing.T) {
	keys := NumericKeys(Default())
	if len(keys) < 25 {
		t.Fatalf("found only %d numeric keys", len(keys))
	}
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k.Key] = true
		l, ok := LimitOf(k.Key)
		if !ok {
			t.Errorf("%s has no range in limits", k.Key)
			continue
		}
		if !l.Holds(k.Value) {
			t.Errorf("default %s = %s is outside %s", k.Key, k.Format(k.Value), l.Range(k))
		}
		below, above := l.Min-step(k, l.Min), l.Max+step(k, l.Max)
		if l.MinOpen {
			below = l.Min
		}
		for _, v := range []float64{below, above} {
			errs := parseKey(t, k, v)
			if !hasRangeError(errs, k.Key, l.Range(k)) {
				t.Errorf("%s = %s: want an error on line 2 naming %s, got %v", k.Key, k.Format(v), l.Range(k), errs)
			}
		}
		ends := []float64{l.Max}
		if !l.MinOpen {
			ends = append(ends, l.Min)
		}
		for _, v := range ends {
			if errs := parseKey(t, k, v); hasRangeError(errs, k.Key, "") {
				t.Errorf("%s = %s (an end of %s) refused: %v", k.Key, k.Format(v), l.Range(k), errs)
			}
		}
	}
	for key := range limits {
		if !seen[key] {
			t.Errorf("limits names %s, which is not a key", key)
		}
	}
}

// step is the smallest change of a value in the key's unit.
func step(k NumericKey, x float64) float64 {
	switch k.Kind {
	case reflect.Float32, reflect.Float64:
		return math.Max(math.Abs(x)*1e-3, 1e-3)
	}
	return 1
}

func parseKey(t *testing.T, k NumericKey, v float64) []FieldError {
	t.Helper()
	section, name, _ := strings.Cut(k.Key, ".")
	val := k.Format(v)
	switch k.Kind {
	case reflect.Struct:
		val = fmt.Sprintf("%q", time.Duration(v).String())
	case reflect.Float64:
		if !strings.ContainsAny(val, ".eEn") {
			val += ".0"
		}
	}
	_, err := Parse("t.toml", fmt.Sprintf("[%s]\n%s = %s\n", section, name, val))
	if err == nil {
		return nil
	}
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("%s = %s: %v", k.Key, val, err)
	}
	return errs.List
}

func hasRangeError(errs []FieldError, key, rng string) bool {
	for _, fe := range errs {
		if fe.Key == key && fe.Line == 2 && strings.Contains(fe.Msg, "must be in "+rng) {
			return true
		}
	}
	return false
}

// docs/configuration.md gives every key's range as the error prints it.
func TestDocsNameEveryLimit(t *testing.T) {
	data, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range NumericKeys(Default()) {
		l, _ := LimitOf(k.Key)
		row := "| `" + k.Key + "` | " + l.Range(k) + " |"
		if !strings.Contains(string(data), row) {
			t.Errorf("docs/configuration.md has no row %q", row)
		}
	}
}
