package telemetry

import (
	"context"
	"net"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// The server side of HTTP instrumentation, shared by the gateway and the
// job queue. It is written here rather than taken from otelhttp because the
// route must be in span names and metric labels (otelhttp learns it only
// after the handler ran), 4xx is not a server error, a client that left is
// 499, the pprof labels carry the trace, and a request must not allocate
// attribute sets: none of which otelhttp expresses.

// StatusClientClosedRequest is nginx's non-standard 499: the client went
// away before a response was sent. It is recorded (span, metric, access
// log), never written to the wire.
const StatusClientClosedRequest = 499

// ServerRoute is the telemetry of one route, built once (per route and
// config version), not per request: its span names, pprof labels and
// cached metric options.
type ServerRoute struct {
	route     string // http.route, "" for requests no route matched
	spanNames [NumMethods]string
	labels    []string // pprof labels
	durations OptionCache
}

// NewServerRoute returns the telemetry of route (the http.route value,
// e.g. a path prefix or "/v1/payloads"); "" is for requests no route
// matched, which then have no http.route attribute or label value.
func NewServerRoute(route string) *ServerRoute {
	t := &ServerRoute{route: route, labels: []string{LabelRoute, route}}
	for i, m := range knownMethods {
		t.spanNames[i] = m
		if route != "" {
			t.spanNames[i] = m + " " + route
		}
	}
	return t
}

// RouteResolver picks the handler of a request and the telemetry of the
// route it matched. It runs first, before the span starts, because the
// route names the span.
type RouteResolver func(r *http.Request) (http.Handler, *ServerRoute)

// HTTPServerConfig is what [NewHTTPServer] records with.
type HTTPServerConfig struct {
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
	// Duration is the http.server.request.duration histogram (seconds).
	Duration metric.Float64Histogram
	// UserAgent adds user_agent.original to recorded spans.
	UserAgent bool
}

// NewHTTPServer returns the handler that instruments every request of a
// server listener, around the handler resolve picks:
//
//   - a SERVER span, child of an incoming traceparent, named
//     "METHOD route" (the method alone when no route matched), with the
//     attributes http.request.method, url.path, client.address,
//     http.response.status_code, http.route (when a route matched) and
//     optionally user_agent.original; status Error for 5xx only (4xx is the
//     client's, 499 nobody's fault);
//   - the handler runs under pprof labels carrying the route, trace and
//     span IDs (see [DoWithSpanLabels]);
//   - http.server.request.duration with http.request.method,
//     http.response.status_code and http.route;
//   - the response writer wrapped once with [Snoop]; its state is in the
//     request context for the layers inside ([ResponseStateFrom]).
//
// The status recorded is the one written; 101 for a hijacked connection;
// 499 for a handler that aborted with panic(http.ErrAbortHandler) before
// writing one (the client went away); 500 for any other panic before a
// status; 200 when the handler wrote nothing (net/http sends 200). A panic
// is recorded and then re-panicked, for net/http to handle.
//
// Span attributes are set when the span ends, in one call, and only when
// it records: samplers do not see them (wardgate's samplers decide on the
// parent and the trace ID alone), and with traces off nothing is built for
// nothing.
func NewHTTPServer(cfg HTTPServerConfig, resolve RouteResolver) http.Handler {
	return &httpServer{cfg: cfg, resolve: resolve, spanKind: trace.WithSpanKind(trace.SpanKindServer)}
}

type httpServer struct {
	cfg      HTTPServerConfig
	resolve  RouteResolver
	spanKind trace.SpanStartOption // built once: boxing it per request allocates
}

type respStateKey struct{}

// ResponseStateFrom returns the state of the response of the request whose
// context is ctx, as captured by [NewHTTPServer], or nil outside one.
func ResponseStateFrom(ctx context.Context) *ResponseState {
	s, _ := ctx.Value(respStateKey{}).(*ResponseState)
	return s
}

// ClientAddress is the client.address of a request: the host part of its
// RemoteAddr (the semantic conventions hold no port), or the whole string
// if it has no port.
func ClientAddress(remoteAddr string) string {
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return h
	}
	return remoteAddr
}

func (s *httpServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, rt := s.resolve(r)
	mi := MethodIndex(r.Method)
	ctx := s.cfg.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := s.cfg.Tracer.Start(ctx, rt.spanNames[mi], s.spanKind)
	path := r.URL.Path // r.URL may be rewritten further in
	sw, st := Snoop(w)
	ctx = context.WithValue(ctx, respStateKey{}, st)
	start := time.Now()
	defer func() {
		p := recover()
		status := st.Status
		switch {
		case st.Hijacked && status == 0:
			status = http.StatusSwitchingProtocols
		case p == http.ErrAbortHandler && status == 0: //nolint:errorlint // net/http compares it the same way
			// Aborted before any status: the client went away. 499 is
			// recorded, never sent.
			status = StatusClientClosedRequest
		case p != nil && status == 0:
			status = http.StatusInternalServerError
		case status == 0:
			status = http.StatusOK
		}
		if span.IsRecording() {
			s.setSpanAttributes(span, r, rt, mi, path, status)
		}
		span.End()
		s.cfg.Duration.Record(ctx, time.Since(start).Seconds(),
			rt.durations.Get(uint32(mi)|uint32(status&0xffff)<<4, func() attribute.Set {
				kv := []attribute.KeyValue{
					attribute.String("http.request.method", knownMethods[mi]),
					attribute.Int("http.response.status_code", status),
				}
				if rt.route != "" {
					kv = append(kv, attribute.String("http.route", rt.route))
				}
				return attribute.NewSet(kv...)
			})...)
		if p != nil {
			panic(p)
		}
	}()
	DoWithSpanLabels(ctx, func(ctx context.Context) {
		h.ServeHTTP(sw, r.WithContext(ctx))
	}, rt.labels...)
}

func (s *httpServer) setSpanAttributes(span trace.Span, r *http.Request, rt *ServerRoute, mi int, path string, status int) {
	// One call with every attribute: the SDK grows its attribute slice per
	// call, and a second call doubles it.
	var buf [6]attribute.KeyValue
	attrs := append(buf[:0],
		attribute.String("http.request.method", knownMethods[mi]),
		attribute.String("url.path", path),
		attribute.String("client.address", ClientAddress(r.RemoteAddr)),
		attribute.Int("http.response.status_code", status))
	if rt.route != "" {
		attrs = append(attrs, attribute.String("http.route", rt.route))
	}
	if s.cfg.UserAgent {
		attrs = append(attrs, attribute.String("user_agent.original", r.UserAgent()))
	}
	span.SetAttributes(attrs...)
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}
