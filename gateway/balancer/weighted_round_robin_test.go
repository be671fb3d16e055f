package balancer

import (
	"strings"
	"testing"
)

func pickN(t *testing.T, b Balancer, n int) []*Target {
	t.Helper()
	out := make([]*Target, n)
	for i := range out {
		out[i] = mustPick(t, b, nil, nil)
	}
	return out
}

func TestWeightedRoundRobinSmoothSequence(t *testing.T) {
	ts := mkTargets(t, 5, 1, 1)
	b := mustNew(t, "weighted_round_robin", ts, Options{})
	const cycle = "a a b a c a a"
	got := letters(ts, pickN(t, b, 4*7))
	if want := strings.Repeat(cycle+" ", 3) + cycle; got != want {
		t.Fatalf("sequence\n got %q\nwant %q", got, want)
	}
}

func TestWeightedRoundRobinUnavailableFromStart(t *testing.T) {
	ts := mkTargets(t, 5, 1, 1)
	ts[2].SetHealthy(false)
	b := mustNew(t, "weighted_round_robin", ts, Options{})
	// Smooth WRR over a=5, b=1 alone.
	const cycle = "a a a b a a"
	got := letters(ts, pickN(t, b, 3*6))
	if want := strings.Repeat(cycle+" ", 2) + cycle; got != want {
		t.Fatalf("sequence with c down\n got %q\nwant %q", got, want)
	}
}

// TestWeightedRoundRobinOutage takes c out mid-cycle and back: while it is
// out a and b keep their exact 5:1 ratio, and once it is back every target
// again gets exactly its weight per cycle of 7.
func TestWeightedRoundRobinOutage(t *testing.T) {
	ts := mkTargets(t, 5, 1, 1)
	b := mustNew(t, "weighted_round_robin", ts, Options{})
	pickN(t, b, 10) // mid-cycle
	ts[2].Eject(farFuture)
	counts := make([]int, 3)
	for _, p := range pickN(t, b, 600) {
		counts[index(ts, p)]++
	}
	if counts[2] != 0 || abs(counts[0]-500) > 1 || abs(counts[1]-100) > 1 {
		t.Fatalf("c out for 600 picks: counts %v, want about [500 100 0]", counts)
	}
	ts[2].Eject(zeroTime)
	picks := pickN(t, b, 7*100)
	for c := 1; c < 100; c++ { // after the first cycle back, every window is exact
		win := make([]int, 3)
		for _, p := range picks[7*c : 7*c+7] {
			win[index(ts, p)]++
		}
		if win[0] != 5 || win[1] != 1 || win[2] != 1 {
			t.Fatalf("cycle %d after c returned: counts %v, want [5 1 1]; picks %s", c, win, letters(ts, picks[7*c:7*c+7]))
		}
	}
}

func TestWeightedRoundRobinProportions(t *testing.T) {
	ts := mkTargets(t, 3, 2, 1, 4)
	b := mustNew(t, "weighted_round_robin", ts, Options{})
	counts := make([]int, len(ts))
	for _, p := range pickN(t, b, 10*50) {
		counts[index(ts, p)]++
	}
	for i, x := range ts {
		if counts[i] != 50*x.Weight {
			t.Fatalf("counts %v over 50 cycles, want 50×weights", counts)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
