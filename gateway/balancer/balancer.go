// Package balancer holds the load-balancing policies of the gateway, one per
// file, behind the small Balancer interface, and a factory by name (New).
//
// A Target carries the live state every policy may read (health, passive
// ejection, inflight requests, latency EWMA); the gateway writes it. All
// policies skip targets that are not Available and are safe for concurrent
// use.
//
// The policies (model: Caddy's reverseproxy selection policies, nginx and
// Envoy for the weighted and load-aware ones):
//
//   - random: uniform among available targets; ignores weights.
//   - round_robin: cycles through available targets; ignores weights.
//   - weighted_round_robin: nginx's smooth weighted round robin, which
//     interleaves picks (5,1,1 gives a a b a c a a) instead of bursts.
//   - consistent_hash: a hash ring with virtual nodes keyed by a request
//     attribute (hash_on), optionally with bounded loads.
//   - least_conn: fewest inflight requests relative to weight.
//   - p2c_ewma: power of two random choices comparing latency EWMA times
//     inflight load.
//
// The policies are written here rather than taken from a library (only the
// hash, xxhash, is imported) because each is a few dozen lines and must read
// the gateway's live Target state on every pick (health, ejection, inflight,
// EWMA), exclude the targets a retry already tried, and not allocate; ring
// libraries such as buraksezer/consistent keep their own membership and
// load tables instead, which would have to be kept in sync with it.
//
// The target list of a balancer is fixed at construction (New); a config
// reload builds a new balancer. Random choices use math/rand/v2's top-level
// functions, which are safe for concurrent use and need no shared state here.
package balancer

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"
)

// ErrNoTarget is returned by Pick when no target is available.
var ErrNoTarget = errors.New("no healthy target")

// Balancer picks the target for one request attempt.
type Balancer interface {
	// Pick returns an available target for r that is not in tried (the
	// targets already attempted for this request), or ErrNoTarget.
	Pick(r *http.Request, tried []*Target) (*Target, error)
}

// Target is one upstream endpoint and its live state.
type Target struct {
	URL    *url.URL
	Weight int

	healthy      atomic.Bool
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 = not ejected
	inflight     atomic.Int64
	ewmaNanos    atomic.Uint64 // math.Float64bits of the latency EWMA in ns
	requests     atomic.Uint64
	failures     atomic.Uint64
}

// NewTarget returns a healthy target. weight < 1 is treated as 1.
func NewTarget(u *url.URL, weight int) *Target {
	if weight < 1 {
		weight = 1
	}
	t := &Target{URL: u, Weight: weight}
	t.healthy.Store(true)
	return t
}

// String returns the target URL.
func (t *Target) String() string { return t.URL.String() }

// Healthy reports the active health-check verdict.
func (t *Target) Healthy() bool { return t.healthy.Load() }

// SetHealthy records the active health-check verdict.
func (t *Target) SetHealthy(ok bool) { t.healthy.Store(ok) }

// Eject takes the target out of rotation until the given time (passive
// health checking). A zero time clears the ejection.
func (t *Target) Eject(until time.Time) {
	if until.IsZero() {
		t.ejectedUntil.Store(0)
		return
	}
	t.ejectedUntil.Store(until.UnixNano())
}

// Ejected reports whether the target is passively ejected at now.
func (t *Target) Ejected(now time.Time) bool {
	u := t.ejectedUntil.Load()
	return u != 0 && now.UnixNano() < u
}

// EjectedUntil is when the last passive ejection ends (or ended); the zero
// time when the target was never ejected or the ejection was cleared. The
// admin page shows it next to Ejected.
func (t *Target) EjectedUntil() time.Time {
	u := t.ejectedUntil.Load()
	if u == 0 {
		return time.Time{}
	}
	return time.Unix(0, u)
}

// Available reports whether balancers may pick the target at now.
func (t *Target) Available(now time.Time) bool { return t.Healthy() && !t.Ejected(now) }

// Inflight is the number of requests currently proxied to the target.
func (t *Target) Inflight() int64 { return t.inflight.Load() }

// Requests and Failures are lifetime counters of finished attempts.
func (t *Target) Requests() uint64 { return t.requests.Load() }
func (t *Target) Failures() uint64 { return t.failures.Load() }

// EWMA is the exponentially weighted moving average of attempt latency;
// zero until the first attempt finishes.
func (t *Target) EWMA() time.Duration {
	return time.Duration(math.Float64frombits(t.ewmaNanos.Load()))
}

// ewmaAlpha weighs the newest sample; 0.3 follows a latency shift within a
// handful of requests without flapping on a single outlier.
const ewmaAlpha = 0.3

// Outcome is how one attempt on a target ended, as its statistics see it.
type Outcome uint8

const (
	// Answered: the target answered (any status the gateway does not
	// count as its failure). Counts as a request; the latency is sampled.
	Answered Outcome = iota
	// Failed: a failure on the upstream side (transport error, 502, 504).
	// Counts as a request and a failure; the latency is sampled.
	Failed
	// ClientFault: the client ended the attempt (malformed or truncated
	// body, body too large, too slow, gone). Counts as a request only: it
	// says nothing about the target, and its duration measures the client,
	// so folding it into the EWMA would steer p2c_ewma away from a target
	// for a slow client's sake.
	ClientFault
)

// Begin marks the start of an attempt. The returned func must be called
// once when the attempt ends, with its latency and whether it failed.
// Start and End do the same without a closure.
func (t *Target) Begin() (done func(latency time.Duration, failed bool)) {
	t.Start()
	return func(latency time.Duration, failed bool) {
		o := Answered
		if failed {
			o = Failed
		}
		t.End(latency, o)
	}
}

// Start marks the start of an attempt; End must follow once.
func (t *Target) Start() { t.inflight.Add(1) }

// End records the end of an attempt started with Start.
func (t *Target) End(latency time.Duration, o Outcome) {
	t.inflight.Add(-1)
	t.requests.Add(1)
	switch o {
	case Failed:
		t.failures.Add(1)
	case ClientFault:
		return
	}
	t.ObserveLatency(latency)
}

// ObserveLatency folds one latency sample into the EWMA.
func (t *Target) ObserveLatency(latency time.Duration) {
	sample := float64(latency)
	for {
		old := t.ewmaNanos.Load()
		prev := math.Float64frombits(old)
		next := sample
		if prev != 0 {
			next = ewmaAlpha*sample + (1-ewmaAlpha)*prev
		}
		if t.ewmaNanos.CompareAndSwap(old, math.Float64bits(next)) {
			return
		}
	}
}

// candidates returns the targets available at now and not in tried.
func candidates(targets []*Target, tried []*Target, now time.Time) []*Target {
	return appendCandidates(make([]*Target, 0, len(targets)), targets, tried, now)
}

// appendCandidates appends to dst the targets available at now and not in
// tried. Policies pass a small stack array as dst so the hot path does not
// allocate (the array only spills to the heap for very large pools).
func appendCandidates(dst, targets, tried []*Target, now time.Time) []*Target {
	for _, t := range targets {
		if usable(t, tried, now) {
			dst = append(dst, t)
		}
	}
	return dst
}

// usable reports whether t may be picked: available at now and not already
// tried for this request. tried is tiny (the retry count), so a linear scan
// beats any set.
func usable(t *Target, tried []*Target, now time.Time) bool {
	if !t.Available(now) {
		return false
	}
	for _, x := range tried {
		if x == t {
			return false
		}
	}
	return true
}

// stackTargets is the size of the on-stack candidate buffer; pools up to
// this size pick without allocating.
const stackTargets = 32

// Reweighted returns a new target for the same URL with weight w (< 1 is
// 1) and a copy of t's state: health, ejection, latency EWMA and the
// lifetime counters. A balancer's target list is fixed and Weight is read
// without synchronization, so a weight change (a new SRV answer) builds a
// new target rather than writing t.Weight under running balancers. The
// in-flight count is not copied: attempts already on t end on t.
func (t *Target) Reweighted(w int) *Target {
	n := NewTarget(t.URL, w)
	n.healthy.Store(t.healthy.Load())
	n.ejectedUntil.Store(t.ejectedUntil.Load())
	n.ewmaNanos.Store(t.ewmaNanos.Load())
	n.requests.Store(t.requests.Load())
	n.failures.Store(t.failures.Load())
	return n
}
