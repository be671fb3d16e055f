package balancer

import (
	"testing"
	"time"
)

// BenchmarkPick measures one Pick on a pool of 8 targets from parallel
// goroutines (consistent_hash keyed on the client IP, bounded loads on).
func BenchmarkPick(b *testing.B) {
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			ts := mkTargets(b, 1, 2, 3, 1, 1, 2, 1, 1)
			for i, t := range ts {
				t.ObserveLatency(time.Duration(i+1) * time.Millisecond)
			}
			ts[5].Eject(farFuture)
			bal := mustNew(b, name, ts, Options{BoundedLoad: 1.25})
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := request("10.1.2.3:4567")
				for pb.Next() {
					if _, err := bal.Pick(r, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
