package middleware

import (
	"container/list"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter is the state of one `ratelimit` built-in: a token bucket per
// client, in an LRU table bounded by MaxClients. The LRU is hand-written
// (container/list plus a map, a few lines) rather than imported, because the
// only operations needed are get-or-insert and evict-oldest under one lock.
type RateLimiter struct {
	limit      rate.Limit
	burst      int
	maxClients int
	now        func() time.Time // time.Now; tests may replace it

	mu      sync.Mutex
	lru     list.List // of *clientBucket, most recently seen first
	clients map[netip.Addr]*list.Element
}

type clientBucket struct {
	key netip.Addr
	lim *rate.Limiter
}

// NewRateLimiter returns a rate limiter with its own, empty client table.
// cfg must be valid (see [Config.Validate]).
func NewRateLimiter(cfg RateLimitConfig) *RateLimiter {
	l := &RateLimiter{
		limit:      rate.Limit(cfg.RPS),
		burst:      cfg.Burst,
		maxClients: cfg.MaxClients,
		now:        time.Now,
		clients:    make(map[netip.Addr]*list.Element),
	}
	l.lru.Init()
	return l
}

// Len is the number of clients currently tracked (at most MaxClients).
func (l *RateLimiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// Middleware answers 429 with Retry-After to clients over their rate.
func (l *RateLimiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, ok := l.allow(r.RemoteAddr); !ok {
			secs := int64(math.Ceil(wait.Seconds()))
			if secs < 1 {
				secs = 1
			}
			w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
			writeError(w, http.StatusTooManyRequests, "rate limit exceeded")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allow takes a token for the client at remoteAddr, or reports how long
// until one is available.
func (l *RateLimiter) allow(remoteAddr string) (time.Duration, bool) {
	lim := l.bucket(clientKey(remoteAddr))
	now := l.now()
	res := lim.ReserveN(now, 1)
	if !res.OK() { // only when burst < 1, which Validate refuses
		return time.Second, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now) // give the token back: a refused request costs nothing
		return d, false
	}
	return 0, true
}

// bucket returns the client's limiter, creating it (and evicting the least
// recently seen client when the table is full) if needed.
func (l *RateLimiter) bucket(key netip.Addr) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.clients[key]; ok {
		l.lru.MoveToFront(e)
		return e.Value.(*clientBucket).lim
	}
	for len(l.clients) >= l.maxClients {
		old := l.lru.Back()
		l.lru.Remove(old)
		delete(l.clients, old.Value.(*clientBucket).key)
	}
	b := &clientBucket{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
	l.clients[key] = l.lru.PushFront(b)
	return b.lim
}

// clientKey maps RemoteAddr to the rate-limited identity: the IPv4 address,
// or the /64 of an IPv6 address. Unparsable addresses (e.g. Unix sockets)
// share the zero key.
func clientKey(remoteAddr string) netip.Addr {
	var a netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(remoteAddr); err != nil {
		return netip.Addr{}
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(64); err == nil {
			a = p.Addr()
		}
	}
	return a
}
