package balancer

import (
	"testing"
)

func TestRoundRobinOrder(t *testing.T) {
	ts := mkTargets(t, 5, 1, 1) // weights are ignored
	b := mustNew(t, "round_robin", ts, Options{})
	var picks []*Target
	for range 9 {
		picks = append(picks, mustPick(t, b, clientReq(0), nil))
	}
	if got, want := letters(ts, picks), "a b c a b c a b c"; got != want {
		t.Fatalf("order %q, want %q", got, want)
	}

	// With b out, a and c share the turns evenly.
	ts[1].SetHealthy(false)
	b = mustNew(t, "round_robin", ts, Options{})
	picks = picks[:0]
	for range 6 {
		picks = append(picks, mustPick(t, b, clientReq(0), nil))
	}
	if got, want := letters(ts, picks), "a c a c a c"; got != want {
		t.Fatalf("order with b down %q, want %q", got, want)
	}
}

// TestRandomUniform checks that 60k picks over 3 targets (weights ignored)
// land within 5% of the expected 20k each. The standard deviation of each
// count is about 115, so the 1000 tolerance is more than 8 sigma: a false
// failure is astronomically unlikely, while a policy biased by 5% or more
// (or one honouring the 5:1:1 weights) fails.
func TestRandomUniform(t *testing.T) {
	ts := mkTargets(t, 5, 1, 1)
	b := mustNew(t, "random", ts, Options{})
	const n = 60000
	counts := make([]int, len(ts))
	for range n {
		counts[index(ts, mustPick(t, b, nil, nil))]++
	}
	for i, c := range counts {
		if c < n/3-1000 || c > n/3+1000 {
			t.Errorf("target %d picked %d times of %d, want %d±1000 (counts %v)", i, c, n, n/3, counts)
		}
	}
}

func TestLeastConnPicksIdle(t *testing.T) {
	ts := mkTargets(t, 1, 1, 1)
	b := mustNew(t, "least_conn", ts, Options{})
	for range 3 {
		ts[0].Begin()
	}
	ts[1].Begin()
	for range 100 {
		if got := mustPick(t, b, nil, nil); got != ts[2] {
			t.Fatalf("picked %v with %d inflight, want the idle %v", got, got.Inflight(), ts[2])
		}
	}
	// Next least loaded when the idle one is tried.
	if got := mustPick(t, b, nil, []*Target{ts[2]}); got != ts[1] {
		t.Fatalf("picked %v, want %v (1 inflight vs 3)", got, ts[1])
	}
}

// TestLeastConnEvensLoad begins requests that never end: least_conn must
// keep the inflight counts within one of each other, and spread ties.
func TestLeastConnEvensLoad(t *testing.T) {
	ts := mkTargets(t, 1, 1, 1)
	b := mustNew(t, "least_conn", ts, Options{})
	for i := range 30 {
		mustPick(t, b, nil, nil).Begin()
		lo, hi := ts[0].Inflight(), ts[0].Inflight()
		for _, x := range ts {
			lo, hi = min(lo, x.Inflight()), max(hi, x.Inflight())
		}
		if hi-lo > 1 {
			t.Fatalf("after %d picks inflight spread %d..%d", i+1, lo, hi)
		}
	}
	// All idle: ties are broken at random, so every target gets picks.
	b2 := mustNew(t, "least_conn", mkTargets(t, 1, 1, 1), Options{})
	seen := map[*Target]int{}
	for range 300 {
		seen[mustPick(t, b2, nil, nil)]++
	}
	if len(seen) != 3 {
		t.Fatalf("idle pool: ties always went to the same targets: %v", seen)
	}
}

func TestLeastConnWeighted(t *testing.T) {
	ts := mkTargets(t, 4, 1)
	b := mustNew(t, "least_conn", ts, Options{})
	for range 3 {
		ts[0].Begin() // 3/4 per weight unit
	}
	ts[1].Begin() // 1/1
	if got := mustPick(t, b, nil, nil); got != ts[0] {
		t.Fatalf("picked %v, want the weight-4 target with 3 inflight over the weight-1 with 1", got)
	}
}
