package daemon

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/cgroupclean/cgroupclean/cgroupclean/audit"
	"github.com/cgroupclean/cgroupclean/cgroupclean/config"
	"github.com/cgroupclean/cgroupclean/cgroupclean/doctor"
	"github.com/cgroupclean/cgroupclean/cgroupclean/engine"
	"github.com/cgroupclean/cgroupclean/cgroupclean/memcg"
	"github.com/sirupsen/logrus"
)

// doctorChecks are the cheap doctor checks the daemon runs every
// doctor.every_passes passes, for the fleet view (metrics). The CFS
// throttling share needs two cpu.stat reads: the first is taken in the
// pass before the checks, so the share spans one interval and no pass
// waits for it.
type doctorChecks struct {
	before  *doctor.CPUReading
	beforeN uint64
}

// doctorDue tells whether pass n runs the checks (run) or takes the
// first cpu.stat read for the next pass's checks (read).
func doctorDue(every int, n uint64) (run, read bool) {
	if every <= 0 {
		return false, false
	}
	e := uint64(every)
	return n%e == 0, (n+1)%e == 0
}

// runDoctor runs the cheap checks when pass n is due, on the pass's scan,
// and records the findings in the metrics.
func (d *Daemon) runDoctor(ctx context.Context, cfg config.Config, n uint64, s *engine.Scan, stage func(string)) {
	run, read := doctorDue(cfg.Doctor.EveryPasses, n)
	if !run && !read {
		d.doctor = doctorChecks{}
		return
	}
	stage("doctor")
	in := doctor.Input{Config: cfg, Scan: s}
	if run {
		if d.links.runtime == nil {
			in.ContainersErr = errors.New("no connection to the runtime")
		} else {
			stage("cri")
			in.Containers, in.ContainersErr = d.links.runtime.Containers(ctx)
			stage("doctor")
		}
		// Only a reading of the pass just before spans one interval.
		before := d.doctor.before
		if d.doctor.beforeN+1 != n {
			before = nil
		}
		var sample *memcg.Sample
		if d.MemcgSample != nil {
			sample = d.MemcgSample()
		}
		rep := doctor.RunPeriodic(ctx, in, before, sample)
		d.Metrics.DoctorFindings(rep, time.Now())
		d.logDoctor(n, rep, before == nil)
	}
	d.doctor = doctorChecks{}
	if read {
		if r, err := doctor.ReadCPU(in); err == nil {
			d.doctor = doctorChecks{before: r, beforeN: n}
		}
	}
}

func (d *Daemon) logDoctor(n uint64, rep doctor.Report, noThrottle bool) {
	var flagged []string
	for k, c := range doctor.CountPeriodic(rep) {
		if c > 0 {
			flagged = append(flagged, k.ID+"/"+k.Severity)
		}
	}
	f := d.Log.WithFields(logrus.Fields{audit.Pass: n, "DOCTOR_FLAGGED": strings.Join(flagged, " ")})
	if len(rep.NotRun) > 0 {
		f = f.WithField("DOCTOR_NOT_RUN", strings.Join(rep.NotRun, "; "))
	}
	what := "doctor checks done"
	if noThrottle {
		what += " (CFS throttling not measured: no cpu.stat read in the pass before)"
	}
	f.Debug(what)
}
