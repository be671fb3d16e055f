package balancer

import (
	"testing"
	"time"
)

func TestP2CPrefersFaster(t *testing.T) {
	ts := mkTargets(t, 1, 1)
	ts[0].ObserveLatency(100 * time.Millisecond)
	ts[1].ObserveLatency(10 * time.Millisecond)
	b := mustNew(t, "p2c_ewma", ts, Options{})
	// With two targets both are always drawn, so the cheaper always wins.
	for range 1000 {
		if got := mustPick(t, b, nil, nil); got != ts[1] {
			t.Fatalf("picked %v (EWMA %v) over %v (EWMA %v)", got, got.EWMA(), ts[1], ts[1].EWMA())
		}
	}
}

// TestP2CFastTargetShare: one target 10× faster than three others, all
// idle. It wins every pair it is drawn into, which is half the pairs, so it
// gets 1/2 of the picks instead of the uniform 1/4, and each slow target
// 1/6. 10000 picks: standard deviation 50, tolerance 500.
func TestP2CFastTargetShare(t *testing.T) {
	ts := mkTargets(t, 1, 1, 1, 1)
	for _, x := range ts[1:] {
		x.ObserveLatency(100 * time.Millisecond)
	}
	ts[0].ObserveLatency(10 * time.Millisecond)
	b := mustNew(t, "p2c_ewma", ts, Options{})
	const n = 10000
	counts := make([]int, len(ts))
	for range n {
		counts[index(ts, mustPick(t, b, nil, nil))]++
	}
	if counts[0] < n/2-500 || counts[0] > n/2+500 {
		t.Fatalf("fast target got %d of %d picks, want about %d (counts %v)", counts[0], n, n/2, counts)
	}
}

// TestP2CClosedLoop simulates, in virtual time, 16 clients each sending
// its next request as soon as the previous one returns, against a target
// that answers in 10ms and one that takes 100ms (the EWMAs hold those
// values). The fast target must take the large majority of picks, while
// inflight load still sends some work to the slow one. (With more slow
// targets P2C caps the fast one's share at the chance it is drawn, 2/k of
// k targets: see TestP2CFastTargetShare.)
func TestP2CClosedLoop(t *testing.T) {
	latency := []time.Duration{10 * time.Millisecond, 100 * time.Millisecond}
	ts := mkTargets(t, 1, 1)
	for i, x := range ts {
		x.ObserveLatency(latency[i])
	}
	b := mustNew(t, "p2c_ewma", ts, Options{})
	type client struct {
		target *Target
		until  time.Duration // virtual time the response arrives
	}
	clients := make([]client, 16)
	counts := make([]int, len(ts))
	const n = 20000
	for range n {
		next := 0 // the client whose response arrives first
		for i := range clients {
			if clients[i].until < clients[next].until {
				next = i
			}
		}
		c := &clients[next]
		if c.target != nil {
			c.target.inflight.Add(-1)
		}
		c.target = mustPick(t, b, nil, nil)
		c.target.inflight.Add(1)
		i := index(ts, c.target)
		counts[i]++
		c.until += latency[i]
	}
	share := float64(counts[0]) / n
	t.Logf("fast target share %.3f (counts %v)", share, counts)
	if share < 0.8 {
		t.Fatalf("fast target got %.3f of the picks, want a large majority (uniform would be 0.25)", share)
	}
	if counts[1] == 0 {
		t.Fatal("slow target got nothing: inflight load is ignored")
	}
}

func TestP2CInflightCounts(t *testing.T) {
	ts := mkTargets(t, 1, 1)
	ts[0].ObserveLatency(10 * time.Millisecond)
	ts[1].ObserveLatency(100 * time.Millisecond)
	for range 10 {
		ts[0].Begin() // cost 10ms × 11 = 110ms > 100ms × 1
	}
	b := mustNew(t, "p2c_ewma", ts, Options{})
	if got := mustPick(t, b, nil, nil); got != ts[1] {
		t.Fatalf("picked %v with %d inflight, want the idle slower %v", got, got.Inflight(), ts[1])
	}
}

func TestP2CProbesUnsampled(t *testing.T) {
	ts := mkTargets(t, 1, 1)
	ts[0].ObserveLatency(time.Millisecond)
	b := mustNew(t, "p2c_ewma", ts, Options{})
	for range 100 {
		if got := mustPick(t, b, nil, nil); got != ts[1] {
			t.Fatalf("picked %v, want the never-sampled idle %v probed", got, ts[1])
		}
	}
	// A probe in flight: do not flood the unknown target.
	done := ts[1].Begin()
	if got := mustPick(t, b, nil, nil); got != ts[0] {
		t.Fatalf("picked %v, want %v while the probe is still running", got, ts[0])
	}
	done(50*time.Millisecond, false)
	if got := mustPick(t, b, nil, nil); got != ts[0] {
		t.Fatalf("picked %v (EWMA %v) over %v (EWMA %v)", got, got.EWMA(), ts[0], ts[0].EWMA())
	}
}
