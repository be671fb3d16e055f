package balancer

import (
	"net/http"
	"sync/atomic"
	"time"
)

// RoundRobin cycles through the available targets in order, ignoring
// weights. The cursor is one atomic counter, so concurrent picks never
// block. The n-th pick takes the (n mod k)-th of the k available targets,
// so while a target is out the remaining ones share its turns evenly
// (rather than the next target in line inheriting all of them).
type RoundRobin struct {
	targets []*Target
	next    atomic.Uint64
}

// NewRoundRobin returns a RoundRobin balancer over targets.
func NewRoundRobin(targets []*Target) *RoundRobin { return &RoundRobin{targets: targets} }

// roundRobinPolicy registers RoundRobin as the policy round_robin (see policies).
func roundRobinPolicy() policy {
	return policy{name: "round_robin", build: func(targets []*Target, _ Options) (Balancer, error) {
		return NewRoundRobin(targets), nil
	}}
}

// Pick implements Balancer.
func (b *RoundRobin) Pick(_ *http.Request, tried []*Target) (*Target, error) {
	var buf [stackTargets]*Target
	c := appendCandidates(buf[:0], b.targets, tried, time.Now())
	if len(c) == 0 {
		return nil, ErrNoTarget
	}
	n := b.next.Add(1) - 1
	return c[n%uint64(len(c))], nil
}
