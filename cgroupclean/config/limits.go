package config

import (
	"fmt"
	"reflect"
	"strconv"
	"time"
)

// Limit is the range a numeric key must lie in. Every numeric key has one,
// a test sees to it: without a ceiling a value can switch a guard off
// (mass_guard_min_pods = 1e9 keeps the runtime-empty guard from ever
// applying), without a floor a guard can turn into a loop.
type Limit struct {
	Min, Max float64 // durations in nanoseconds
	// MinOpen refuses Min itself: (Min, Max].
	MinOpen bool
	// Note follows the range in the error ("0 turns it off").
	Note string
}

func dur(d time.Duration) float64 { return float64(d) }

const day = 24 * time.Hour

// limits of every numeric key, by "section.key".
var limits = map[string]Limit{
	// Above a minute a hung runtime holds the pass past the watchdog's 2 min.
	"runtime.timeout":             {Min: dur(MinRuntimeTimeout), Max: dur(time.Minute)},
	"clean.min_age":               {Min: 0, Max: dur(7 * day)},
	"clean.max_removals_per_pass": {Min: 1, Max: 10000},
	"clean.max_removal_share":     {Min: 0, Max: 1, MinOpen: true},
	// kubelet's default max-pods is 110: a higher floor would keep the
	// mass guards from applying on most nodes.
	"clean.mass_guard_min_pods": {Min: 0, Max: 100},
	"clean.unit_stop_timeout":   {Min: dur(MinUnitStopTimeout), Max: dur(5 * time.Minute)},
	"clean.confirm_passes":      {Min: 1, Max: 100},
	"daemon.interval":           {Min: dur(MinInterval), Max: dur(day)},
	"daemon.jitter":             {Min: 0, Max: 0.5},
	"memcg.probe_interval":      {Min: dur(MinProbeInterval), Max: dur(day)},
	"memcg.stat_timeout":        {Min: dur(time.Millisecond), Max: dur(time.Minute)},
	"memcg.window":              {Min: 1, Max: 1000},
	"memcg.confirm_samples":     {Min: 1, Max: 1000},
	"memcg.latency_warn":        {Min: dur(time.Millisecond), Max: dur(time.Minute)},
	"memcg.latency_act":         {Min: dur(time.Millisecond), Max: dur(time.Minute)},
	// The kernel has 65535 memcg IDs: a threshold above can never be met.
	"memcg.dying_warn":            {Min: 1, Max: 65535},
	"memcg.dying_act":             {Min: 1, Max: 65535},
	"memcg.dying_ratio_act":       {Min: 0, Max: MaxDyingRatioAct, Note: "0 turns it off"},
	"memcg.prevent_timeout":       {Min: dur(10 * time.Millisecond), Max: dur(time.Minute)},
	"memcg.reclaim_step_bytes":    {Min: 4096, Max: 1 << 40},
	"memcg.reclaim_max_bytes":     {Min: 4096, Max: 1 << 40},
	"memcg.reclaim_timeout":       {Min: dur(100 * time.Millisecond), Max: dur(10 * time.Minute)},
	"memcg.reclaim_cooldown":      {Min: dur(MinReclaimCooldown), Max: dur(7 * day)},
	"memcg.drop_caches_value":     {Min: 0, Max: 3, Note: "0 is auto"},
	"memcg.drop_caches_cooldown":  {Min: dur(MinDropCachesCooldown), Max: dur(7 * day)},
	"memcg.drop_caches_daily_cap": {Min: 0, Max: MaxDropCachesDailyCap, Note: "0 turns it off"},
	"memcg.pressure_max":          {Min: 0, Max: 100, MinOpen: true},
	"memcg.backoff_max":           {Min: dur(time.Minute), Max: dur(30 * day)},
	"memcg.min_effect":            {Min: 0, Max: 1, MinOpen: true},
	"doctor.every_passes":         {Min: 0, Max: MaxDoctorEveryPasses, Note: "0 turns it off"},
}

// NumericKey is one numeric key of a configuration and its value.
type NumericKey struct {
	Key   string
	Kind  reflect.Kind // Int, Int64, Float64, or Struct for a Duration
	Value float64
}

var durationType = reflect.TypeOf(Duration{})

// NumericKeys lists every int, float and duration key of c, in struct order.
func NumericKeys(c Config) []NumericKey {
	var out []NumericKey
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			key := f.Tag.Get("toml")
			if key == "" {
				continue
			}
			if prefix != "" {
				key = prefix + "." + key
			}
			fv := v.Field(i)
			switch {
			case f.Type == durationType:
				out = append(out, NumericKey{key, reflect.Struct, float64(fv.Interface().(Duration).Duration)})
			case fv.Kind() == reflect.Struct:
				walk(key, fv)
			case fv.CanInt():
				out = append(out, NumericKey{key, fv.Kind(), float64(fv.Int())})
			case fv.CanFloat():
				out = append(out, NumericKey{key, fv.Kind(), fv.Float()})
			}
		}
	}
	walk("", reflect.ValueOf(c))
	return out
}

// Format writes x as the key's kind is written in the file.
func (k NumericKey) Format(x float64) string {
	switch k.Kind {
	case reflect.Struct:
		return time.Duration(x).String()
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

// Range is the limit as the error prints it: "[1, 100]", "(0, 1]".
func (l Limit) Range(k NumericKey) string {
	open := "["
	if l.MinOpen {
		open = "("
	}
	return open + k.Format(l.Min) + ", " + k.Format(l.Max) + "]"
}

// Holds reports whether x is in the limit; NaN never is.
func (l Limit) Holds(x float64) bool {
	if l.MinOpen {
		return x > l.Min && x <= l.Max
	}
	return x >= l.Min && x <= l.Max
}

// checkLimits reports every numeric key out of its range, and every one
// that has no range (a key added without thinking about its bounds).
func checkLimits(c Config) []FieldError {
	var errs []FieldError
	for _, k := range NumericKeys(c) {
		l, ok := limits[k.Key]
		if !ok {
			errs = append(errs, FieldError{Key: k.Key, Msg: "has no declared range (a bug in cgroupcleand: add it to config.limits)"})
			continue
		}
		if !l.Holds(k.Value) {
			msg := "must be in " + l.Range(k)
			if l.Note != "" {
				msg += " (" + l.Note + ")"
			}
			errs = append(errs, FieldError{Key: k.Key, Msg: fmt.Sprintf("%s, got %s", msg, k.Format(k.Value))})
		}
	}
	return errs
}

// LimitOf is the range of a numeric key ("section.key").
func LimitOf(key string) (Limit, bool) {
	l, ok := limits[key]
	return l, ok
}
