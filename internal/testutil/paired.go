package testutil

import (
	"testing"
	"time"
)

// Paired measures subject against baseline in the same loop: each b.Loop
// iteration runs both, in turns (baseline first on even iterations, subject
// first on odd ones), so that a machine whose speed drifts during the run (a
// busy CI host, a CPU changing frequency) slows both alike. It reports
// subject's time per iteration as ns/op, and subject's total time over
// baseline's as ratioUnit (such as "x-plain").
func Paired(b *testing.B, ratioUnit string, baseline, subject func()) {
	b.Helper()
	var base, subj time.Duration
	timed := func(f func(), sum *time.Duration) {
		start := time.Now()
		f()
		*sum += time.Since(start)
	}
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			timed(baseline, &base)
			timed(subject, &subj)
		} else {
			timed(subject, &subj)
			timed(baseline, &base)
		}
	}
	if b.N == 0 || base == 0 {
		return
	}
	b.ReportMetric(float64(subj.Nanoseconds())/float64(b.N), "ns/op")
	b.ReportMetric(float64(subj)/float64(base), ratioUnit)
}
