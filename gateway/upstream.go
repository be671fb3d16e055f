package gateway

import (
	"fmt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardgate/wardgate/gateway/balancer"
	"github.com/wardgate/wardgate/telemetry"
)

// target is a balancer.Target plus the gateway's bookkeeping for it: the
// passive-ejection window and the active-check streaks. A target survives
// a config reload when its upstream name, URL and weight are unchanged, so
// health, ejection, counters and EWMA carry over.
type target struct {
	*balancer.Target
	upstream string
	host     string // server.address for telemetry
	port     int    // server.port for telemetry
	// spanAttrs are the CLIENT span attributes that depend on the target
	// alone; durations caches the options of http.client.request.duration.
	spanAttrs []attribute.KeyValue
	durations telemetry.OptionCache

	mu    sync.Mutex
	fails []time.Time // failure times within the passive window, oldest first

	ejections atomic.Uint64
}

// upstream is one pool of targets as built from one config version.
type upstream struct {
	name string
	cfg  *Upstream
	// set is the current target set and its balancer. A static upstream's
	// never changes; DNS discovery swaps in a new one when the answer
	// changes. A request loads it once (one atomic load, no lock) and
	// keeps it for all its attempts.
	set       atomic.Pointer[targetSet]
	transport *http.Transport
	// resolvedAt is the UnixNano of the last successful DNS resolution
	// of a discovered upstream (0: none yet), whether or not the answer
	// changed; a reload that keeps the targets keeps it.
	resolvedAt atomic.Int64
	retries    int
	retryOpt   []metric.AddOption // attributes of wardgate.upstream.retries
}

func newTarget(bt *balancer.Target, upstream string) *target {
	t := &target{Target: bt, upstream: upstream}
	t.host, t.port = hostPort(bt.URL)
	t.spanAttrs = []attribute.KeyValue{
		attribute.String("server.address", t.host),
		attribute.Int("server.port", t.port),
		attribute.String("wardgate.upstream", upstream),
		attribute.String("url.full", bt.URL.String()),
	}
	return t
}

// durationOpt returns the attributes of one http.client.request.duration
// measurement: the method, the target, and the status or error type.
func (t *target) durationOpt(method, status int, errType string) []metric.RecordOption {
	et := 0
	if errType != "" {
		et = errorTypeIndex(errType)
	}
	return t.durations.Get(measureKey(method, status, et), func() attribute.Set {
		kv := []attribute.KeyValue{
			attribute.String("http.request.method", telemetry.MethodName(method)),
			attribute.String("server.address", t.host),
			attribute.Int("server.port", t.port),
			attribute.String("wardgate.upstream", t.upstream),
		}
		switch {
		case status != 0:
			kv = append(kv, attribute.Int("http.response.status_code", status))
		case et != 0:
			kv = append(kv, attribute.String("error.type", errorTypes[et]))
		}
		return attribute.NewSet(kv...)
	})
}

// targetSet is an immutable set of targets with the balancer over them.
type targetSet struct {
	targets  []*target
	byTarget map[*balancer.Target]*target
	bal      balancer.Balancer
	// resolved is true when the set came from a DNS answer (or from a
	// table whose set did), so the discovery loop waits an interval
	// before resolving again.
	resolved bool
	// next is the wait before the next resolution that answer asked for
	// (interval, or its TTL when shorter).
	next time.Duration
}

// newSet builds the balancer over targets. An empty set (a discovered
// upstream with allow_empty) picks nothing: every request gets the 503.
func (u *upstream) newSet(targets []*target) (*targetSet, error) {
	s := &targetSet{targets: targets, byTarget: make(map[*balancer.Target]*target, len(targets)), bal: noTargets{}}
	if len(targets) == 0 {
		return s, nil
	}
	bts := make([]*balancer.Target, 0, len(targets))
	for _, t := range targets {
		s.byTarget[t.Target] = t
		bts = append(bts, t.Target)
	}
	bal, err := balancer.New(u.cfg.Balancer, bts, balancer.Options{
		HashOn: u.cfg.HashOn, VirtualNodes: u.cfg.VirtualNodes, BoundedLoad: u.cfg.BoundedLoad,
	})
	if err != nil {
		return nil, fmt.Errorf("upstreams.%s.balancer: %w", u.name, err)
	}
	s.bal = bal
	return s, nil
}

func (s *targetSet) lookup(bt *balancer.Target) *target { return s.byTarget[bt] }

// noTargets is the balancer of an empty target set.
type noTargets struct{}

func (noTargets) Pick(*http.Request, []*balancer.Target) (*balancer.Target, error) {
	return nil, balancer.ErrNoTarget
}

// targetKey identifies a target across reloads.
type targetKey struct {
	upstream, url string
	weight        int
}

// transportKey identifies a transport configuration across reloads; an
// upstream whose timeouts did not change keeps its pooled connections.
type transportKey struct {
	upstream              string
	dial, responseHeaders time.Duration
}

// newTransport returns the transport for one upstream. The defaults of
// http.DefaultTransport suit a client talking to many hosts; a proxy talks
// to few hosts at high concurrency, so:
//   - MaxIdleConnsPerHost is raised from 2 to 256: with the default, a burst
//     of concurrent requests opens connections that cannot be parked after
//     use and are closed, and the next burst pays the TCP handshake again
//     (plus TIME_WAIT churn on the gateway's side).
//   - MaxIdleConns bounds the total across the pool's hosts.
//   - DialContext and ResponseHeaderTimeout come from the config so a dead
//     or stuck target fails fast (502/504) instead of holding the client.
//   - DisableCompression: a proxy passes Accept-Encoding through. Left on,
//     the transport would ask a backend for gzip when the client did not,
//     then gunzip the body itself: CPU for nothing, and the client gets an
//     uncompressed body it could not have asked to be compressed.
//   - The dialer clears the dialing goroutine's pprof labels (see
//     telemetry.UnlabeledDial): otherwise the connection's goroutines keep
//     the trace labels of the request that opened it for as long as the
//     connection lives.
//   - ForceAttemptHTTP2 is false: the backends are HTTP/1.1 services and
//     h2 over TLS would multiplex everything onto one connection per host,
//     which defeats the per-connection accounting of least_conn.
func newTransport(cfg *Upstream, hosts int) *http.Transport {
	d := &net.Dialer{Timeout: cfg.Timeouts.Dial.D, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil, // never send upstream traffic through HTTP_PROXY
		DialContext:           telemetry.UnlabeledDial(d.DialContext),
		ForceAttemptHTTP2:     false,
		DisableCompression:    true,
		MaxIdleConns:          256 * max(hosts, 1),
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.Timeouts.Dial.D + 5*time.Second,
		ResponseHeaderTimeout: cfg.Timeouts.ResponseHeader.D,
		ExpectContinueTimeout: time.Second,
	}
}

// bufferPool hands out 32 KiB buffers to httputil.ReverseProxy for copying
// response bodies. Without it, every proxied response allocates a fresh
// 32 KiB buffer (io.CopyBuffer's default size), which at thousands of
// requests per second is the single largest source of garbage in the proxy
// and drives GC frequency. 32 KiB matches io.Copy, so the syscalls per
// response do not change.
//
// The pool holds array pointers: Put turns the slice back into
// *[proxyBufSize]byte with a conversion, which allocates nothing, where
// pooling a *[]byte would box a new slice header on every Put.
type bufferPool struct{ p sync.Pool }

const proxyBufSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([proxyBufSize]byte) }}}
}

// Get implements httputil.BufferPool.
func (b *bufferPool) Get() []byte { return b.p.Get().(*[proxyBufSize]byte)[:] }

// Put implements httputil.BufferPool. Buffers of another size are dropped.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != proxyBufSize {
		return
	}
	b.p.Put((*[proxyBufSize]byte)(buf[:proxyBufSize]))
}

// hostPort splits a target URL into telemetry's server.address and
// server.port, with the scheme's default port when none is written.
func hostPort(u *url.URL) (string, int) {
	host := u.Hostname()
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		if n, err := net.LookupPort("tcp", p); err == nil {
			port = n
		}
	}
	return host, port
}
