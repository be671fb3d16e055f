package balancer

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// LeastConn picks the target with the fewest inflight requests relative to
// its weight (inflight/weight, as nginx's least_conn does), so slow targets,
// which accumulate inflight requests, get fewer new ones. Ties are broken
// uniformly at random (reservoir sampling over the tied targets); always
// taking the first would pile every request of an idle pool onto one
// target. The state it reads is the targets' own atomic counters, so it
// needs no lock.
type LeastConn struct {
	targets []*Target
}

// NewLeastConn returns a LeastConn balancer over targets.
func NewLeastConn(targets []*Target) *LeastConn { return &LeastConn{targets: targets} }

// leastConnPolicy registers LeastConn as the policy least_conn (see policies).
func leastConnPolicy() policy {
	return policy{name: "least_conn", build: func(targets []*Target, _ Options) (Balancer, error) {
		return NewLeastConn(targets), nil
	}}
}

// Pick implements Balancer.
func (b *LeastConn) Pick(_ *http.Request, tried []*Target) (*Target, error) {
	now := time.Now()
	var best *Target
	var bestIn, bestW int64
	ties := 0
	for _, t := range b.targets {
		if !usable(t, tried, now) {
			continue
		}
		in, w := t.Inflight(), int64(weightOf(t))
		if best == nil {
			best, bestIn, bestW, ties = t, in, w, 1
			continue
		}
		// Compare in/w with bestIn/bestW without division.
		switch lhs, rhs := in*bestW, bestIn*w; {
		case lhs < rhs:
			best, bestIn, bestW, ties = t, in, w, 1
		case lhs == rhs:
			ties++
			if rand.IntN(ties) == 0 {
				best, bestIn, bestW = t, in, w
			}
		}
	}
	if best == nil {
		return nil, ErrNoTarget
	}
	return best, nil
}
