package triage_test

import (
	"context"
	"testing"
	"time"

	"github.com/wardgate/wardgate/diag/findings"
)

// BenchmarkTimeToVerdict measures seconds from `diag triage` (or, for the
// crash classes, `diag analyze` of the core) to the report, per fault
// class of the corpus: the "time to root cause" of docs/benchmarks.md.
// The triage interval is the 3s default; each run is one verdict.
//
//	go test -run '^$' -bench TimeToVerdict -benchtime 1x ./diag/triage/
func BenchmarkTimeToVerdict(b *testing.B) {
	live := []struct {
		name, kind string
		setup      func(testing.TB, *service)
	}{
		{"deadlock", "deadlock", func(tb testing.TB, s *service) {
			s.post(context.Background(), 8, payloads("x"))
			waitUntil(tb, "stuck", time.Minute, func() bool { return metric(tb, s.admin, "wardgate_workers_busy") >= 2 })
			time.Sleep(500 * time.Millisecond)
		}},
		{"leak", "leak", func(tb testing.TB, s *service) {
			s.post(context.Background(), 300, payloads("notify"))
			s.load(tb, 200*time.Millisecond, 20, payloads("notify"))
		}},
		{"hungio", "hung-io", func(tb testing.TB, s *service) {
			s.post(context.Background(), 3, payloads("enrich"))
			waitUntil(tb, "busy", time.Minute, func() bool { return metric(tb, s.admin, "wardgate_workers_busy") >= 1 })
		}},
		{"stuckqueue", "stuck-queue", func(tb testing.TB, s *service) {
			time.Sleep(1500 * time.Millisecond)
			for i := 0; i < 10; i++ {
				s.post(context.Background(), 20, payloads("x"))
			}
		}},
		{"hotloop", "cpu", func(tb testing.TB, s *service) { s.load(tb, 100*time.Millisecond, 2, payloads("score")) }},
		{"growth", "memory-growth", func(tb testing.TB, s *service) { s.load(tb, 50*time.Millisecond, 4, payloads("remember")) }},
	}
	for _, c := range live {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s := start(b, c.name)
				c.setup(b, s)
				b.StartTimer()
				t0 := time.Now()
				r := runTriage(b, s)
				b.ReportMetric(time.Since(t0).Seconds(), "s/verdict")
				if len(r.Findings) == 0 || string(r.Findings[0].Kind) != c.kind {
					b.Fatalf("first finding %+v, want %s", r.Findings, c.kind)
				}
			}
		})
	}
	for _, name := range []string{"crashnil", "crashmap"} {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir := crashCore(b, name, payloads("x"))
				b.StartTimer()
				t0 := time.Now()
				r, _ := analyzeDir(b, dir)
				b.ReportMetric(time.Since(t0).Seconds(), "s/verdict")
				if len(r.Findings) == 0 || r.Findings[0].Kind != findings.KindCrash {
					b.Fatalf("first finding %+v, want crash", r.Findings)
				}
			}
		})
	}
}

// BenchmarkTriage100kGoroutines: a service with 100,000 leaked goroutines
// (the leak class, driven hard); the aim is a verdict in under 10 s.
func BenchmarkTriage100kGoroutines(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := start(b, "leak", "GOMAXPROCS=2")
		for j := 0; j < 100; {
			code, err := s.post(context.Background(), 1000, payloads("notify"))
			switch {
			case err != nil:
				b.Fatal(err)
			case code == 202:
				j++
			case code == 503:
				time.Sleep(10 * time.Millisecond) // the queue is full: back off as a client should
			default:
				b.Fatalf("post: %d", code)
			}
		}
		waitUntil(b, "100k goroutines", 5*time.Minute, func() bool { return metric(b, s.admin, "go_goroutines") >= 100_000 })
		b.StartTimer()
		t0 := time.Now()
		r := runTriage(b, s)
		b.ReportMetric(time.Since(t0).Seconds(), "s/verdict")
		b.ReportMetric(float64(r.Goroutines), "goroutines")
		if len(r.Findings) == 0 || r.Findings[0].Kind != findings.KindLeak || r.Findings[0].Goroutines < 100_000 {
			b.Fatalf("first finding %+v, want the 100k leak", r.Findings)
		}
	}
}
