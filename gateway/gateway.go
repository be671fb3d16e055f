// Package gateway is wardgate's reverse proxy: routes by longest path
// prefix to named upstream pools, load-balances with the policies of
// gateway/balancer, wraps every route in the onion of gateway/middleware,
// checks target health actively and passively, retries where safe, and
// reloads its config atomically on SIGHUP or file change.
//
// Proxying is net/http/httputil.ReverseProxy with Rewrite (never Director:
// with Rewrite, hop-by-hop headers, including those a client names in
// Connection, are removed before our rewrite runs, so a client cannot strip
// the X-Forwarded-* headers the gateway adds). Telemetry is hand-wired
// rather than otelhttp: the gateway needs the route in span and metric
// names, a CLIENT span per retry attempt with its resend count, and the
// 499/4xx/5xx error rules below, which otelhttp does not express. The
// SERVER side (span, http.server.request.duration, pprof labels, the
// response state) is telemetry.NewHTTPServer, shared with the job queue;
// the CLIENT side is here (proxy.go).
//
// Error answers are JSON {"error", "upstream", "trace_id"}: 502 the
// upstream refused or broke, 504 it timed out, 503 no healthy target, 404
// no route; and the client's own errors: 400 a malformed or truncated
// body, 408 a body too slow (request_body), 413 the body limit tripped.
// A client that leaves early is logged as 499 at info level (nothing is
// sent). No client error ever counts against a target or is retried.
//
// See docs/gateway.md for the config reference, the metrics and the
// behaviour on reload.
package gateway

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardgate/wardgate/gateway/balancer"
	"github.com/wardgate/wardgate/gateway/middleware"
	"github.com/wardgate/wardgate/internal/ratelog"
	"github.com/wardgate/wardgate/telemetry"
)

// Gateway is the reverse proxy. It is an http.Handler for the public
// listener; AdminHandler serves the admin listener.
type Gateway struct {
	tel    *telemetry.Telemetry
	logger *slog.Logger
	// reqLog is logger for conditions that happen once per request or
	// attempt and are counted by metrics (no healthy target, a failed
	// attempt, a client gone): the first occurrence per upstream and
	// target, then a count per interval, never a line per request.
	reqLog  *slog.Logger
	summary *ratelog.Handler
	tracer  trace.Tracer
	// server is the instrumented handler of the public listener.
	server http.Handler
	// clientSpan is the start option of the gateway's CLIENT spans, built
	// once.
	clientSpan trace.SpanStartOption
	m          *metrics
	bufs       *bufferPool

	// ctx bounds the background work of every table (health checks); it
	// is the context given to New.
	ctx context.Context

	mu       sync.Mutex // serializes Reload
	table    atomic.Pointer[table]
	checkers *healthCheckers // of the current table; guarded by mu
}

// table is one immutable routing table built from one config version.
// Requests load it once and finish on it even if a reload swaps it.
type table struct {
	cfg       *Config
	routes    []*route // longest path_prefix first
	upstreams map[string]*upstream
	notFound  http.Handler
	// notFoundTel is the telemetry of requests no route matched.
	notFoundTel *telemetry.ServerRoute
	// transports keyed for reuse by the next reload.
	transports map[transportKey]*http.Transport
	targets    map[targetKey]*target
}

type route struct {
	cfg     Route
	up      *upstream
	proxy   *httputil.ReverseProxy
	handler http.Handler // middleware chain around the proxy
	tel     *telemetry.ServerRoute
	reqBody *RequestBody // the table's request_body limits
}

// New builds a gateway from a validated config and starts its health
// checks, which run until ctx is canceled or Close is called.
func New(ctx context.Context, cfg *Config, tel *telemetry.Telemetry, logger *slog.Logger) (*Gateway, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	summary := ratelog.NewHandler(logger.Handler(), ratelog.Options{KeyAttrs: []string{"upstream", "target", "route"}})
	g := &Gateway{
		tel:        tel,
		logger:     logger,
		reqLog:     slog.New(summary),
		summary:    summary,
		tracer:     tel.TracerProvider.Tracer(instrumentationName),
		clientSpan: trace.WithSpanKind(trace.SpanKindClient),
		bufs:       newBufferPool(),
		ctx:        ctx,
	}
	m, err := newMetrics(tel.MeterProvider, g)
	if err != nil {
		return nil, err
	}
	g.m = m
	g.server = telemetry.NewHTTPServer(telemetry.HTTPServerConfig{
		Tracer: g.tracer, Propagator: tel.Propagator, Duration: m.serverDuration,
	}, g.resolve)
	if err := g.apply(cfg); err != nil {
		m.reg.Unregister()
		return nil, err
	}
	return g, nil
}

// Reload validates cfg, builds a complete new routing table and swaps it
// in atomically. Targets whose upstream, URL and weight are unchanged keep
// their state (health, ejection, counters, EWMA); upstreams whose timeouts
// are unchanged keep their pooled connections. Requests in flight finish
// on the table they started with. On error nothing changes.
func (g *Gateway) Reload(cfg *Config) error {
	err := g.apply(cfg)
	result := reloadOK
	if err != nil {
		result = reloadError
	}
	g.m.reloads.Add(g.ctx, 1, metric.WithAttributes(attribute.String("result", result)))
	return err
}

func (g *Gateway) apply(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	old := g.table.Load()
	tbl, err := g.build(cfg, old)
	if err != nil {
		return err
	}
	checkers := g.startHealthChecks(g.ctx, tbl.upstreams)
	g.table.Store(tbl)
	// A new upstream's retry counter starts at 0, so the Retries panel
	// shows 0 on a healthy stack instead of "No data" (adding 0 to an
	// upstream that already has a series changes nothing).
	for _, up := range tbl.upstreams {
		g.m.retries.Add(g.ctx, 0, up.retryOpt...)
		if up.cfg.Discover != nil {
			for _, reason := range discoveryReasons {
				g.m.discoveryErrors.Add(g.ctx, 0, metric.WithAttributes(attribute.String("upstream", up.name), attribute.String("reason", reason)))
			}
		}
	}
	if g.checkers != nil {
		g.checkers.stop()
	}
	g.checkers = checkers
	if old != nil {
		for k, tr := range old.transports {
			if tbl.transports[k] != tr {
				// Connections in use finish their request and then idle out
				// (IdleConnTimeout); idle ones go now.
				tr.CloseIdleConnections()
			}
		}
	}
	return nil
}

// Close stops the health checks and closes idle upstream connections.
func (g *Gateway) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.checkers != nil {
		g.checkers.stop()
		g.checkers = nil
	}
	if tbl := g.table.Load(); tbl != nil {
		for _, tr := range tbl.transports {
			tr.CloseIdleConnections()
		}
	}
	g.m.reg.Unregister()
	g.summary.Flush()
}

// Config returns the config currently serving.
func (g *Gateway) Config() *Config { return g.table.Load().cfg }

func (g *Gateway) build(cfg *Config, old *table) (*table, error) {
	tbl := &table{
		cfg:        cfg,
		upstreams:  make(map[string]*upstream, len(cfg.Upstreams)),
		transports: map[transportKey]*http.Transport{},
		targets:    map[targetKey]*target{},
	}
	for _, name := range cfg.UpstreamNames() {
		uc := cfg.Upstreams[name]
		up := &upstream{name: name, cfg: uc, retries: *uc.Retries,
			retryOpt: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("upstream", name)))}}
		tk := transportKey{upstream: name, dial: uc.Timeouts.Dial.D, responseHeaders: uc.Timeouts.ResponseHeader.D}
		if old != nil && old.transports[tk] != nil {
			up.transport = old.transports[tk]
		} else {
			hosts := len(uc.Targets)
			if uc.Discover != nil {
				hosts = discoveredHostsHint // unknown until resolved; sizes the idle pool only
			}
			up.transport = newTransport(uc, hosts)
		}
		tbl.transports[tk] = up.transport
		if uc.Discover != nil {
			s, err := g.initialDiscovered(up, old)
			if err != nil {
				return nil, err
			}
			up.set.Store(s)
			tbl.upstreams[name] = up
			continue
		}
		targets := make([]*target, 0, len(uc.Targets))
		for _, tc := range uc.Targets {
			weight := 1
			if tc.Weight != nil {
				weight = *tc.Weight
			}
			key := targetKey{upstream: name, url: tc.URL, weight: weight}
			t := tbl.targets[key]
			if t == nil && old != nil {
				t = old.targets[key]
			}
			if t == nil {
				u, err := parseTargetURL(tc.URL)
				if err != nil {
					return nil, fmt.Errorf("upstreams.%s: %w", name, err)
				}
				t = newTarget(balancer.NewTarget(u, weight), name)
			}
			tbl.targets[key] = t
			targets = append(targets, t)
		}
		s, err := up.newSet(targets)
		if err != nil {
			return nil, err
		}
		up.set.Store(s)
		tbl.upstreams[name] = up
	}

	always, err := middleware.BuildAll(alwaysOn, cfg.Middleware, g.logger)
	if err != nil {
		return nil, fmt.Errorf("middleware: %w", err)
	}
	tbl.notFoundTel = telemetry.NewServerRoute("")
	tbl.notFound = middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.writeError(w, r, http.StatusNotFound, "no route for "+r.URL.Path, "")
	}), always...)
	for i, rc := range cfg.Routes {
		own, err := middleware.BuildAll(rc.Middleware, cfg.Middleware, g.logger)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].middleware: %w", i, err)
		}
		// Every route gets fresh always-on middlewares too, so no state is
		// shared between routes or with the previous table.
		always, err := middleware.BuildAll(alwaysOn, cfg.Middleware, g.logger)
		if err != nil {
			return nil, fmt.Errorf("middleware: %w", err)
		}
		rt := &route{cfg: rc, up: tbl.upstreams[rc.Upstream], tel: telemetry.NewServerRoute(rc.PathPrefix), reqBody: &cfg.RequestBody}
		rt.proxy = g.newReverseProxy(&rt.cfg, rt.up)
		rt.handler = middleware.Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.serveProxy(w, r, rt)
		}), append(always, own...)...)
		tbl.routes = append(tbl.routes, rt)
	}
	slices.SortStableFunc(tbl.routes, func(a, b *route) int {
		return cmp.Compare(len(b.cfg.PathPrefix), len(a.cfg.PathPrefix))
	})
	return tbl, nil
}

func parseTargetURL(s string) (*url.URL, error) {
	if err := checkTargetURL(s); err != nil {
		return nil, err
	}
	return url.Parse(s)
}

// match returns the route with the longest path_prefix matching path.
func (t *table) match(path string) *route {
	for _, rt := range t.routes {
		if strings.HasPrefix(path, rt.cfg.PathPrefix) {
			return rt
		}
	}
	return nil
}

// ServeHTTP serves the public listener through telemetry's server
// instrumentation (span, metric, pprof labels, the captured response
// state): see telemetry.NewHTTPServer. The route is matched on the table
// current when the request arrives.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.server.ServeHTTP(w, r)
}

// resolve is the gateway's telemetry.RouteResolver: the handler and
// telemetry of the longest matching route, or the 404 handler.
func (g *Gateway) resolve(r *http.Request) (http.Handler, *telemetry.ServerRoute) {
	tbl := g.table.Load()
	if rt := tbl.match(r.URL.Path); rt != nil {
		return rt.handler, rt.tel
	}
	return tbl.notFound, tbl.notFoundTel
}
