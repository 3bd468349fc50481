package doctor

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints the report for a terminal: a header, then one block per
// finding, worst first. Findings that are ok take one line each.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "cgroupcleand doctor: kernel %s, cgroup %s, driver %s, pod root %s; cpu.stat read %s apart\n",
		orDash(r.Kernel), orDash(r.CgroupMode), orDash(r.Driver), orDash(r.PodRoot), r.Interval)
	fmt.Fprintf(&b, "verdict: %s\n\n", strings.ToUpper(string(r.Worst())))
	for _, f := range r.Findings {
		subj := ""
		if f.Subject != "" {
			subj = " " + f.Subject
		}
		fmt.Fprintf(&b, "%-8s %s%s: %s\n", strings.ToUpper(string(f.Severity)), f.ID, subj, f.Measured)
		if f.Severity == OK {
			continue
		}
		if f.Form != "" {
			fmt.Fprintf(&b, "         form: %s\n", f.Form)
		}
		if f.Cause != "" {
			fmt.Fprintf(&b, "         cause: %s\n", f.Cause)
		}
		if f.Threshold != "" {
			fmt.Fprintf(&b, "         threshold: %s (%s)\n", f.Threshold, f.Source)
		}
		if f.Action != "" {
			fmt.Fprintf(&b, "         do: %s\n", f.Action)
		}
		for _, ref := range f.Refs {
			fmt.Fprintf(&b, "         see: %s\n", ref)
		}
	}
	for _, n := range r.NotRun {
		fmt.Fprintf(&b, "NOT RUN  %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
