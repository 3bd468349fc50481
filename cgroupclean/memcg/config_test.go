package memcg

import (
	"errors"
	"testing"

	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
)

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		text string
		key  string
	}{
		{"mode = \"sometimes\"", "memcg.mode"},
		{"probe_interval = \"10ms\"", "memcg.probe_interval"},
		{"confirm_samples = 9", "memcg.confirm_samples"},
		{"latency_act = \"1ms\"", "memcg.latency_act"},
		{"dying_act = 10", "memcg.dying_act"},
		{"dying_ratio_act = -1.0", "memcg.dying_ratio_act"},
		{"reclaim_step_bytes = 12", "memcg.reclaim_step_bytes"},
		{"reclaim_max_bytes = 4096", "memcg.reclaim_max_bytes"},
		{"drop_caches_value = 4", "memcg.drop_caches_value"},
		{"drop_caches_daily_cap = -1", "memcg.drop_caches_daily_cap"},
		{"pressure_max = 0.0", "memcg.pressure_max"},
		{"min_effect = 1.5", "memcg.min_effect"},
		{"backoff_max = \"-1s\"", "memcg.backoff_max"},
		{"stat_timeout = \"0s\"", "memcg.stat_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			_, err := config.Parse("t.toml", "[memcg]\n"+tt.text+"\n")
			var ce *config.Errors
			if !errors.As(err, &ce) || len(ce.List) == 0 || ce.List[0].Key != tt.key || ce.List[0].Line != 2 {
				t.Errorf("err = %v, want one on %s line 2", err, tt.key)
			}
		})
	}
}
