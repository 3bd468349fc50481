package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cgroupclean/cgroupclean/packaging/prometheus"
)

func TestOKD(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"okd"}, &out); err != nil {
		t.Fatal(err)
	}
	f, err := prometheus.Parse(prometheus.Source)
	if err != nil {
		t.Fatal(err)
	}
	want, err := prometheus.PrometheusRule(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Error("okd output is not PrometheusRule(Source)")
	}
}

func TestScale(t *testing.T) {
	var out bytes.Buffer
	if err := run([]string{"scale", "-factor", "0.1", "-floor", "2s", "-runbook-base", "https://wiki.example/rb/"}, &out); err != nil {
		t.Fatal(err)
	}
	f, err := prometheus.Parse(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	r := f.Groups[0].Rules[0]
	if r.Alert != "CgroupcleanDown" || r.For != "1m" || r.Annotations["runbook_url"] != "https://wiki.example/rb/CgroupcleanDown.md" {
		t.Errorf("first rule %s for %s runbook %s: want CgroupcleanDown, 1m (10m x 0.1), the new base", r.Alert, r.For, r.Annotations["runbook_url"])
	}
}

func TestRejects(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"nope"},
		{"scale"},                         // no factor
		{"scale", "-factor", "-1"},        // negative
		{"okd", "-factor", "0.5"},         // factor is for scale
		{"okd", "extra"},                  // stray argument
		{"okd", "-in", "/nonexistent"},    // unreadable input
		{"okd", "-runbook-base", "x.org"}, // no trailing slash
	} {
		var out bytes.Buffer
		if err := run(args, &out); err == nil {
			t.Errorf("%q: accepted", strings.Join(args, " "))
		} else if out.Len() > 0 {
			t.Errorf("%q: wrote output on error", strings.Join(args, " "))
		}
	}
}
