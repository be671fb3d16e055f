package analyze

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkRun analyzes real cores of the crasher with 1k, 10k and 100k
// goroutines parked in leakyWorker (plus the runtime's own), the whole
// Run: opening the core with delve, listing and grouping every goroutine,
// the crashing goroutine, the job queue probe and the report.
//
//	go test -run '^$' -bench Run -benchtime 3x ./diag/analyze/
func BenchmarkRun(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("goroutines=%d", n), func(b *testing.B) {
			dir := crash(b, "leak", "-n", fmt.Sprint(n))
			opts, err := OptionsFromBundle(dir)
			if err != nil {
				b.Fatal(err)
			}
			var r *Report
			for b.Loop() {
				r, err = Run(context.Background(), opts)
				if err != nil {
					b.Fatal(err)
				}
			}
			if r.Groups[0].Culprit != "main.leakyWorker" || r.Groups[0].Count != n {
				b.Fatalf("first group %d × %s, want %d × main.leakyWorker", r.Groups[0].Count, r.Groups[0].Culprit, n)
			}
			b.ReportMetric(float64(r.Goroutines), "goroutines")
		})
	}
}
