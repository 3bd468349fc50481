// Command observe-config writes the configuration of the worker-canary
// pool (packaging/okd/config-observe.toml): config.example.toml with
// clean.mode = "observe", so the canary nodes decide and record every
// removal and make none (docs/fleet.md). `make machineconfig` runs it
// before Butane embeds the file.
//
//	observe-config [-in config.example.toml] [-out packaging/okd/config-observe.toml]
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
)

const header = `# Generated from config.example.toml by ` + "`make machineconfig`" + `; do not edit.
# The worker-canary pool's configuration: the defaults, with clean.mode =
# "observe" (every pass decides and records, nothing is removed). The act
# MachineConfig (99-worker-cgroupclean) writes config.example.toml itself.
`

var (
	sectionRe = regexp.MustCompile(`^\s*\[([a-z_.]+)\]\s*(#.*)?$`)
	modeRe    = regexp.MustCompile(`^\s*mode\s*=`)
)

const observeLine = `mode = "observe"`

// observe returns example with clean.mode set to "observe": the [clean]
// section's mode line replaced, or one added right after the [clean]
// header when the section has none.
func observe(example []byte) ([]byte, error) {
	lines := bytes.SplitAfter(example, []byte("\n"))
	section, cleanAt, modeAt := "", -1, -1
	for i, l := range lines {
		if m := sectionRe.FindSubmatch(l); m != nil {
			section = string(m[1])
			if section == "clean" {
				if cleanAt >= 0 {
					return nil, errors.New("[clean] appears twice")
				}
				cleanAt = i
			}
			continue
		}
		if section == "clean" && modeRe.Match(l) {
			if modeAt >= 0 {
				return nil, errors.New("clean.mode appears twice")
			}
			modeAt = i
		}
	}
	if cleanAt < 0 {
		return nil, errors.New("no [clean] section")
	}
	var out bytes.Buffer
	out.WriteString(header)
	for i, l := range lines {
		switch {
		case i == modeAt:
			out.WriteString(observeLine + "\n")
		case i == cleanAt && modeAt < 0:
			out.Write(l)
			out.WriteString("# Canary: decide and record, remove nothing (docs/fleet.md).\n" + observeLine + "\n")
		default:
			out.Write(l)
		}
	}
	return out.Bytes(), nil
}

func main() {
	in := flag.String("in", "config.example.toml", "the example configuration")
	out := flag.String("out", "packaging/okd/config-observe.toml", "where to write the observe configuration")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "observe-config:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	example, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("read example config: %w", err)
	}
	b, err := observe(example)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
