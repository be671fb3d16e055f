package balancer

import (
	"net/http"
	"sync"
	"time"
)

// WeightedRoundRobin is nginx's smooth weighted round robin. On every pick
// each usable target's current value grows by its weight, the target with
// the largest current value wins, and the winner's current value drops by
// the sum of the usable weights. Over a cycle of sum(weights) picks each
// target is chosen exactly weight times, and the picks are interleaved:
// weights a=5, b=1, c=1 give a a b a c a a, never a burst of five a's that
// would hit one upstream in a row.
//
// Unavailable (or already tried) targets are skipped for the pick: their
// current value is frozen, the others keep running the same algorithm among
// themselves (so their ratio stays exact), and a returning target resumes
// from where it left off. A mutex guards the state: the critical section is
// a loop over the targets, far shorter than any proxied request.
type WeightedRoundRobin struct {
	targets []*Target

	mu      sync.Mutex
	current []int64
}

// NewWeightedRoundRobin returns a WeightedRoundRobin balancer over targets.
func NewWeightedRoundRobin(targets []*Target) *WeightedRoundRobin {
	return &WeightedRoundRobin{targets: targets, current: make([]int64, len(targets))}
}

// weightedRoundRobinPolicy registers WeightedRoundRobin as the policy weighted_round_robin (see policies).
func weightedRoundRobinPolicy() policy {
	return policy{name: "weighted_round_robin", build: func(targets []*Target, _ Options) (Balancer, error) {
		return NewWeightedRoundRobin(targets), nil
	}}
}

// Pick implements Balancer.
func (b *WeightedRoundRobin) Pick(_ *http.Request, tried []*Target) (*Target, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	best := -1
	var total int64
	for i, t := range b.targets {
		if !usable(t, tried, now) {
			continue
		}
		w := int64(weightOf(t))
		b.current[i] += w
		total += w
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil, ErrNoTarget
	}
	b.current[best] -= total
	return b.targets[best], nil
}

// weightOf returns the target's weight, at least 1 (a Target built without
// NewTarget may carry 0).
func weightOf(t *Target) int {
	if t.Weight < 1 {
		return 1
	}
	return t.Weight
}
