package balancer

import (
	"math/rand/v2"
	"net/http"
	"time"
)

// P2CEWMA is the power of two random choices over a latency-aware cost
// (Mitzenmacher's "power of two choices", with the cost of Finagle's and
// Linkerd's peak-EWMA balancers). It draws two distinct available targets
// at random and keeps the cheaper one, where cost = EWMA latency ×
// (inflight + 1). Sampling two instead of scanning all avoids the herd
// effect of always sending to the single best target (whose stats lag),
// while still steering load away from slow or busy targets exponentially
// fast. Weights are ignored. The price of sampling: a target is only
// considered when drawn, so one fast target among k can win at most the 2/k
// of picks it is drawn into; with two targets it takes everything its
// inflight load allows.
//
// A target with no latency sample yet (new, or never used) cannot be
// costed; it is treated as cheap so it gets probed: between two targets of
// which at least one is unsampled, the one with fewer inflight requests
// wins and on a tie the unsampled one does. So an idle new target is tried
// at once, but not flooded while its first requests are still running.
type P2CEWMA struct {
	targets []*Target
}

// NewP2CEWMA returns a P2CEWMA balancer over targets.
func NewP2CEWMA(targets []*Target) *P2CEWMA { return &P2CEWMA{targets: targets} }

// p2cEWMAPolicy registers P2CEWMA as the policy p2c_ewma (see policies).
func p2cEWMAPolicy() policy {
	return policy{name: "p2c_ewma", build: func(targets []*Target, _ Options) (Balancer, error) {
		return NewP2CEWMA(targets), nil
	}}
}

// Pick implements Balancer.
func (b *P2CEWMA) Pick(_ *http.Request, tried []*Target) (*Target, error) {
	var buf [stackTargets]*Target
	c := appendCandidates(buf[:0], b.targets, tried, time.Now())
	switch len(c) {
	case 0:
		return nil, ErrNoTarget
	case 1:
		return c[0], nil
	}
	i := rand.IntN(len(c))
	j := rand.IntN(len(c) - 1)
	if j >= i {
		j++
	}
	if cheaper(c[j], c[i]) {
		return c[j], nil
	}
	return c[i], nil
}

// cheaper reports whether a costs less than b (see P2CEWMA).
func cheaper(a, b *Target) bool {
	ea, eb := a.EWMA(), b.EWMA()
	ia, ib := a.Inflight(), b.Inflight()
	if ea > 0 && eb > 0 {
		return float64(ea)*float64(ia+1) < float64(eb)*float64(ib+1)
	}
	if ia != ib {
		return ia < ib
	}
	return ea == 0 && eb > 0
}
