package balancer

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
)

// DefaultVirtualNodes is the number of ring points per unit of weight.
// 160 is ketama's choice; with 5 targets the busiest holds about 1.13× the
// mean share of keys (see TestConsistentHashBalance).
const DefaultVirtualNodes = 160

// maxRingPoints bounds the ring's memory (16 bytes a point) against a
// config with huge weights or virtual node counts.
const maxRingPoints = 1 << 22

// ConsistentHash maps a request key (see ParseHashOn) onto a hash ring so
// the same key reaches the same target while that target is available,
// which keeps per-key caches and sessions warm on one upstream.
//
// Each target owns VirtualNodes × weight points on the ring, placed by
// hashing its URL, which evens out the arc each target owns and makes the
// share proportional to weight. A key goes to the first point at or after
// its hash that belongs to a usable target. When a target leaves (unhealthy,
// ejected, tried, or removed from the config), only the keys that landed on
// its points move, each to the next point on the ring; every other key
// stays put. Hashing is xxhash64: fast, well distributed, allocation-free.
//
// With bounded loads (Mirrokni, Thorup and Zadimoorghaddam, "Consistent
// Hashing with Bounded Loads", Google 2017) a target may hold at most
// ceil(c × (total inflight + 1) / n) inflight requests, n being the usable
// targets; the walk goes on past targets at their cap. A hot key then spills
// to the next targets on the ring instead of overloading one, at the cost of
// some stickiness under load.
//
// The ring is built once and read-only afterwards, so Pick takes no lock.
type ConsistentHash struct {
	targets []*Target
	ring    []vnode // sorted by hash
	kind    string  // see ParseHashOn
	name    string  // header name (canonical), cookie or query parameter
	bound   float64 // bounded-load factor c; 0 = off
}

type vnode struct {
	hash uint64
	idx  int32 // index into targets
}

// NewConsistentHash builds the ring over targets. hashOn is parsed by
// ParseHashOn; virtualNodes 0 means DefaultVirtualNodes; boundedLoad 0
// disables bounded loads, otherwise it must be > 1.
func NewConsistentHash(targets []*Target, hashOn string, virtualNodes int, boundedLoad float64) (*ConsistentHash, error) {
	kind, name, err := ParseHashOn(hashOn)
	if err != nil {
		return nil, err
	}
	if err := validateRingOptions(virtualNodes, boundedLoad); err != nil {
		return nil, err
	}
	if virtualNodes == 0 {
		virtualNodes = DefaultVirtualNodes
	}
	if kind == "header" {
		name = textproto.CanonicalMIMEHeaderKey(name)
	}
	points := 0
	for _, t := range targets {
		points += virtualNodes * weightOf(t)
		if points > maxRingPoints {
			return nil, fmt.Errorf("balancer: hash ring would have over %d points: lower the weights or virtual nodes (%d per weight unit)", maxRingPoints, virtualNodes)
		}
	}
	b := &ConsistentHash{targets: targets, kind: kind, name: name, bound: boundedLoad, ring: make([]vnode, 0, points)}
	seen := make(map[string]int, len(targets))
	var label []byte
	for i, t := range targets {
		// Points are placed by URL, not by position, so editing the list
		// (adding or removing another target) does not move this one's keys.
		// A repeated URL gets a suffix so its points differ.
		base := t.String()
		if n := seen[base]; n > 0 {
			base += "#" + strconv.Itoa(n)
		}
		seen[t.String()]++
		for v := range virtualNodes * weightOf(t) {
			label = append(append(append(label[:0], base...), '-'), strconv.Itoa(v)...)
			b.ring = append(b.ring, vnode{hash: xxhash.Sum64(label), idx: int32(i)})
		}
	}
	slices.SortFunc(b.ring, func(x, y vnode) int {
		switch {
		case x.hash < y.hash:
			return -1
		case x.hash > y.hash:
			return 1
		}
		return int(x.idx - y.idx)
	})
	return b, nil
}

// consistentHashPolicy registers ConsistentHash as the policy consistent_hash (see policies).
func consistentHashPolicy() policy {
	return policy{name: "consistent_hash", build: func(targets []*Target, opts Options) (Balancer, error) {
		b, err := NewConsistentHash(targets, opts.HashOn, opts.VirtualNodes, opts.BoundedLoad)
		if err != nil {
			return nil, err // not a nil *ConsistentHash in a non-nil Balancer
		}
		return b, nil
	}}
}

// Pick implements Balancer.
func (b *ConsistentHash) Pick(r *http.Request, tried []*Target) (*Target, error) {
	now := time.Now()
	n := 0
	var total int64
	for _, t := range b.targets {
		if usable(t, tried, now) {
			n++
			total += t.Inflight()
		}
	}
	if n == 0 || len(b.ring) == 0 {
		return nil, ErrNoTarget
	}
	limit := int64(math.MaxInt64)
	if b.bound > 0 {
		limit = int64(math.Ceil(b.bound * float64(total+1) / float64(n)))
	}
	h := xxhash.Sum64String(b.key(r))
	start, _ := slices.BinarySearchFunc(b.ring, h, func(v vnode, h uint64) int {
		switch {
		case v.hash < h:
			return -1
		case v.hash > h:
			return 1
		}
		return 0
	})
	var first *Target
	for k := range len(b.ring) {
		t := b.targets[b.ring[(start+k)%len(b.ring)].idx]
		if !usable(t, tried, now) {
			continue
		}
		if t.Inflight() < limit {
			return t, nil
		}
		if first == nil {
			first = t
		}
	}
	// Every usable target is at its cap, which the bound's arithmetic rules
	// out unless inflight counts moved during the walk: stay consistent.
	if first != nil {
		return first, nil
	}
	return nil, ErrNoTarget
}

// key returns the request attribute to hash; a missing or empty one falls
// back to the client IP, so such requests are still spread and sticky.
func (b *ConsistentHash) key(r *http.Request) string {
	if r == nil {
		return ""
	}
	var v string
	switch b.kind {
	case "header":
		if vs := r.Header[b.name]; len(vs) > 0 {
			v = vs[0]
		}
	case "cookie":
		if c, err := r.Cookie(b.name); err == nil {
			v = c.Value
		}
	case "query":
		if r.URL != nil {
			v = r.URL.Query().Get(b.name)
		}
	case "path":
		if r.URL != nil {
			v = r.URL.Path
		}
	}
	if v != "" {
		return v
	}
	return clientIP(r)
}

// clientIP returns the host part of r.RemoteAddr (the peer that connected
// to the gateway), or RemoteAddr itself when it has no port.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
