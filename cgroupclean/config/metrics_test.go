package config

import (
	"errors"
	"strings"
	"testing"
)

func TestMetricsListen(t *testing.T) {
	for _, tc := range []struct {
		listen string
		ok     bool
		msg    string
	}{
		{"", true, ""},
		{"127.0.0.1:9863", true, ""},
		{"127.1.2.3:1", true, ""},
		{"[::1]:9863", true, ""},
		{"127.255.255.254:65535", true, ""},
		{"localhost:9863", false, "IP literal"},
		{"[::ffff:127.0.0.1]:9863", false, "write 127.0.0.1"},
		{"[::1%eth0]:9863", false, "without a zone"},
		{"[::1%lo]:9863", false, "without a zone"},
		{"[fe80::1%eth0]:9863", false, "without a zone"},
		{"127.0.0.1:+9863", false, "port"},
		{"127.0.0.1:09863", false, "port"},
		{"ip6-localhost:9863", false, "IP literal"},
		{":9863", false, "loopback IP"},
		{"0.0.0.0:9863", false, "loopback IP"},
		{"[::]:9863", false, "loopback IP"},
		{"10.0.0.1:9863", false, "loopback IP"},
		{"node.example:9863", false, "loopback IP literal"},
		{"127.0.0.1", false, "host:port"},
		{"127.0.0.1:0", false, "port"},
		{"127.0.0.1:70000", false, "port"},
		{"127.0.0.1:http", false, "port"},
	} {
		t.Run(tc.listen, func(t *testing.T) {
			text := "[log]\nlevel = \"info\"\n\n[metrics]\nlisten = \"" + tc.listen + "\"\n"
			cfg, err := Parse("m.toml", text)
			if tc.ok {
				if err != nil || cfg.Metrics.Listen != tc.listen {
					t.Fatalf("Parse = %v, %q", err, cfg.Metrics.Listen)
				}
				return
			}
			var errs *Errors
			if !errors.As(err, &errs) || len(errs.List) != 1 {
				t.Fatalf("Parse error %v, want one field error", err)
			}
			fe := errs.List[0]
			if fe.Key != "metrics.listen" || fe.Line != 5 || !strings.Contains(fe.Msg, tc.msg) {
				t.Fatalf("error %+v, want metrics.listen line 5 containing %q", fe, tc.msg)
			}
		})
	}
}
