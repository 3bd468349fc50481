// Command cgroupclean-rules writes the other forms of
// packaging/prometheus/cgroupclean-rules.yml to stdout:
//
//	cgroupclean-rules okd [-runbook-base URL]
//	    the OKD/OpenShift PrometheusRule (`make rules` writes it to
//	    packaging/okd/metrics/cgroupclean-prometheusrule.yaml)
//	cgroupclean-rules scale -factor F [-floor D] [-runbook-base URL]
//	    a plain rules file with every for: and window multiplied by F, for
//	    daemons whose interval is not the default 5m: F = interval / 5m
//	    (the fleet test's short copy)
//
// -in reads another rules file instead of the embedded source.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/cgroupclean/cgroupclean/packaging/prometheus"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cgroupclean-rules:", err)
		os.Exit(2)
	}
}

func run(args []string, w io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: cgroupclean-rules okd|scale [flags]")
	}
	cmd := args[0]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	in := fs.String("in", "", "rules file to read (default: the embedded cgroupclean-rules.yml)")
	base := fs.String("runbook-base", "", "point runbook_url at this base URL (ending in /) instead of "+prometheus.RunbookBase)
	factor := fs.Float64("factor", 0, "scale: multiply every duration by this (interval / 5m)")
	floor := fs.Duration("floor", 0, "scale: no window or for: below this (except a for: of 0)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	src := prometheus.Source
	if *in != "" {
		b, err := os.ReadFile(*in)
		if err != nil {
			return fmt.Errorf("read rules: %w", err)
		}
		src = b
	}
	f, err := prometheus.Parse(src)
	if err != nil {
		return err
	}
	if *base != "" {
		if f, err = prometheus.RebaseRunbooks(f, *base); err != nil {
			return err
		}
	}
	var out []byte
	switch cmd {
	case "okd":
		if *factor != 0 || *floor != 0 {
			return fmt.Errorf("okd: -factor and -floor are for scale")
		}
		out, err = prometheus.PrometheusRule(f)
	case "scale":
		scale, ferr := prometheus.Factor(*factor, *floor)
		if ferr != nil {
			return fmt.Errorf("scale: %w", ferr)
		}
		if f, err = prometheus.ScaleDurations(f, scale); err == nil {
			out, err = f.Marshal()
		}
	default:
		return fmt.Errorf("unknown command %q: want okd or scale", cmd)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}
