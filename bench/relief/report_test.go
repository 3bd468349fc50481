package relief

import (
	"fmt"
	"image/color"
	"slices"
	"strings"

	"github.com/cgroupclean/cgroupclean/bench"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// windowKey names a row: the same window of every run.
type windowKey struct {
	Phase  string
	Query  bool
	Leaked int
}

// rows groups the runs' windows by key, in the order of the first run.
func rows(runs []*cadvisorRun) ([]windowKey, map[windowKey][]Window) {
	var keys []windowKey
	by := map[windowKey][]Window{}
	for _, r := range runs {
		for _, w := range r.Windows {
			key := windowKey{w.Phase, w.Query, w.Leaked}
			if _, ok := by[key]; !ok {
				keys = append(keys, key)
			}
			by[key] = append(by[key], w)
		}
	}
	return keys, by
}

func series(ws []Window, f func(Window) float64) bench.Series {
	s := make(bench.Series, len(ws))
	for i, w := range ws {
		s[i] = f(w)
	}
	return s
}

func f2(v float64) string  { return fmt.Sprintf("%.2f", v) }
func f0(v float64) string  { return fmt.Sprintf("%.0f", v) }
func mib(v float64) string { return fmt.Sprintf("%.0f MiB", v/(1<<20)) }

// reliefTarget: cAdvisor's CPU per minute back within 10% of the
// live-pods baseline in the first window after the clean.
const reliefTarget = 1.10

// summarize writes the markdown rows: every window as median (range) over
// the runs, then the relief ratio against its target.
func summarize(runs []*cadvisorRun, k knobs) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	keys, by := rows(runs)
	p("%d run(s), %d live pods (real containerd sandboxes), windows of %s (CPU scaled to a minute), stats query every 10 s where marked.", len(runs), k.live, k.window)
	p("")
	p("| phase | leaked pods | stats query | cAdvisor CPU s/min | RSS | tracked cgroups | inotify watches |")
	p("|---|---:|---|---|---|---|---|")
	for _, key := range keys {
		ws := by[key]
		p("| %s | %d | %s | %s | %s | %s | %s |", key.Phase, key.Leaked, map[bool]string{true: "every 10 s", false: "none"}[key.Query],
			series(ws, func(w Window) float64 { return w.CPUPerMin }).Stats().Format(f2),
			series(ws, func(w Window) float64 { return float64(w.RSS) }).Stats().Format(mib),
			series(ws, func(w Window) float64 { return float64(w.Tracked) }).Stats().Format(f0),
			series(ws, func(w Window) float64 { return float64(w.Watches) }).Stats().Format(f0))
	}
	p("")
	cleanS := make(bench.Series, 0, len(runs))
	for _, r := range runs {
		cleanS = append(cleanS, r.CleanS)
	}
	p("`cgroupcleand clean` of the %d leaked pods: %s s.", k.leaks[len(k.leaks)-1], cleanS.Stats().Format(f2))
	for _, q := range []bool{false, true} {
		base := series(by[windowKey{"live", q, 0}], func(w Window) float64 { return w.CPUPerMin })
		after := series(by[windowKey{"after-clean", q, 0}], func(w Window) float64 { return w.CPUPerMin })
		peak := series(by[windowKey{"leaked", q, k.leaks[len(k.leaks)-1]}], func(w Window) float64 { return w.CPUPerMin })
		ratio := bench.Ratios(after, base).Stats()
		verdict := "met"
		switch {
		case ratio.N == 0:
			verdict = "not measured"
		case ratio.Median > reliefTarget:
			verdict = "missed"
		}
		// The after-clean windows run query off, then on: minutes 1 and 2.
		p("%s after the clean, stats query %s: %s of the live-pods baseline with the same query (target at most %.2fx: %s); with the leaks it was %s of it.",
			map[bool]string{false: "First minute", true: "Second minute"}[q], map[bool]string{true: "every 10 s", false: "off"}[q],
			ratio.Format(bench.X), reliefTarget, verdict, bench.Ratios(peak, base).Stats().Format(bench.X))
	}
	return b.String()
}

// plotCPU draws cAdvisor's CPU per minute over time, one line per run,
// time 0 at the end of the clean.
func plotCPU(runs []*cadvisorRun, file string) error {
	p := plot.New()
	p.Title.Text = "cAdvisor (kubelet's settings) CPU before and after one cgroupcleand clean"
	p.X.Label.Text = "seconds from the end of the clean"
	p.Y.Label.Text = "CPU-seconds per minute"
	p.Add(plotter.NewGrid())
	palette := []color.Color{color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}}
	for i, r := range runs {
		pts := make(plotter.XYs, 0, len(r.Points))
		for _, pt := range r.Points {
			pts = append(pts, plotter.XY{X: pt.T, Y: pt.CPUPerMin})
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int { return int(a.X - b.X) })
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("run %d: %w", r.run, err)
		}
		line.Color = palette[i%len(palette)]
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("run %d", r.run), line)
	}
	clean, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 0, Y: p.Y.Max}})
	if err != nil {
		return err
	}
	clean.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(clean)
	p.Legend.Add("clean ends", clean)
	p.Legend.Top = true
	return p.Save(9*vg.Inch, 4.5*vg.Inch, file)
}
