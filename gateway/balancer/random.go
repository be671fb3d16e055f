package balancer

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// Random picks uniformly among the available targets, ignoring weights.
// It needs no shared state, so it never contends, and over many requests it
// spreads load evenly; use it when targets are alike and requests cheap.
type Random struct {
	targets []*Target
}

// NewRandom returns a Random balancer over targets.
func NewRandom(targets []*Target) *Random { return &Random{targets: targets} }

// randomPolicy registers Random as the policy random (see policies).
func randomPolicy() policy {
	return policy{name: "random", build: func(targets []*Target, _ Options) (Balancer, error) {
		return NewRandom(targets), nil
	}}
}

// Pick implements Balancer.
func (b *Random) Pick(_ *http.Request, tried []*Target) (*Target, error) {
	var buf [stackTargets]*Target
	c := appendCandidates(buf[:0], b.targets, tried, time.Now())
	if len(c) == 0 {
		return nil, ErrNoTarget
	}
	return c[rand.IntN(len(c))], nil
}
