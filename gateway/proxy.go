package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardgate/wardgate/gateway/balancer"
	"github.com/wardgate/wardgate/gateway/middleware"
	"github.com/wardgate/wardgate/telemetry"
)

// StatusClientClosedRequest is nginx's non-standard 499: the client went
// away before the response was ready. It is logged and measured, never
// sent (there is nobody to send it to).
const StatusClientClosedRequest = telemetry.StatusClientClosedRequest

// attempt is the state of one try of a request against one target. The
// ReverseProxy callbacks (Rewrite, ModifyResponse, ErrorHandler) find it in
// the request context.
type attempt struct {
	target *target
	n      int // 0 for the first try, the resend count otherwise

	status int   // upstream response status, 0 if none
	err    error // transport (or rewrite/upgrade) error, nil if a response came
	body   *trackedBody
	// fault is set when the attempt ended through the client's doing (see
	// clientFault): the answer's status (400, 408, 413, or 499 for the
	// logs), else 0. Such an attempt never counts against the target and
	// is never retried.
	fault    int
	faultMsg string
	// reached is set once request headers were written to an upstream
	// connection: from then on a non-idempotent request may have had an
	// effect and must not be retried.
	reached atomic.Bool
	// traceReach asks for reached to be tracked (see serveProxy); trace is
	// the httptrace hook that does it, kept here so that one allocation
	// holds both.
	traceReach bool
	trace      httptrace.ClientTrace
}

func (a *attempt) wroteHeaders() { a.reached.Store(true) }

type attemptKey struct{}

func attemptFrom(ctx context.Context) *attempt {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

// newReverseProxy returns the proxy of one route. The target of each
// attempt comes from the attempt in the request context, so the same
// ReverseProxy serves every try and every target.
func (g *Gateway) newReverseProxy(rt *Route, up *upstream) *httputil.ReverseProxy {
	reqHeaders := canonical(rt.RequestHeaders)
	respHeaders := canonical(rt.ResponseHeaders)
	strip, add := rt.StripPrefix, strings.TrimSuffix(rt.AddPrefix, "/")
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			ctx := pr.Out.Context()
			a := attemptFrom(ctx)
			rewritePath(pr.Out.URL, strip, add)
			pr.SetURL(a.target.URL)
			// The gateway is the edge: ReverseProxy drops the client's
			// Forwarded and X-Forwarded-* headers before Rewrite (anyone can
			// forge them), and SetXForwarded sets them from the connection.
			// Hop-by-hop headers, including any the client names in
			// Connection, were removed before Rewrite too, so a client cannot
			// make the proxy strip what it adds here.
			pr.SetXForwarded()
			for k, v := range reqHeaders {
				pr.Out.Header[k] = []string{v}
			}
			// requestid has usually set the header already (it is cloned
			// from the client's request); only a layer in between could
			// have changed it.
			if id := middleware.RequestIDFrom(ctx); id != "" {
				if vs := pr.Out.Header[middleware.HeaderRequestID]; len(vs) != 1 || vs[0] != id {
					pr.Out.Header.Set(middleware.HeaderRequestID, id)
				}
			}
			// The CLIENT span of this attempt is in ctx: the upstream's
			// SERVER span becomes its child.
			pr.Out.Header.Del("Traceparent")
			pr.Out.Header.Del("Tracestate")
			g.tel.Propagator.Inject(ctx, propagation.HeaderCarrier(pr.Out.Header))
		},
		Transport:  up.transport,
		BufferPool: g.bufs,
		// ReverseProxy flushes at once for text/event-stream and for responses
		// of unknown length (chunked streams); other responses are copied
		// with the pooled buffer and flushed when done. -1 would flush after
		// every write of every response for no gain.
		FlushInterval: 0,
		ErrorLog:      slog.NewLogLogger(g.summary, slog.LevelWarn), // per-request copy errors: summarized
		ModifyResponse: func(res *http.Response) error {
			a := attemptFrom(res.Request.Context())
			a.status = res.StatusCode
			for k, v := range respHeaders {
				res.Header[k] = []string{v}
			}
			// requestid already set X-Request-Id on our response; an upstream
			// echoing it would make ReverseProxy add a second value.
			if middleware.RequestIDFrom(res.Request.Context()) != "" {
				res.Header.Del(middleware.HeaderRequestID)
			}
			return nil
		},
		// Errors are not written here: serveProxy decides after the attempt
		// whether to retry on another target or answer with the error.
		ErrorHandler: func(_ http.ResponseWriter, r *http.Request, err error) {
			attemptFrom(r.Context()).err = err
		},
	}
}

func canonical(h map[string]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		out[http.CanonicalHeaderKey(k)] = v
	}
	return out
}

// rewritePath applies strip_prefix then add_prefix to u's path, working on
// the escaped form so encoded characters (%2F) survive untouched.
func rewritePath(u *url.URL, strip, add string) {
	if strip == "" && add == "" {
		return
	}
	p := u.EscapedPath()
	if strip != "" && strings.HasPrefix(p, strip) {
		p = p[len(strip):]
		if !strings.HasPrefix(p, "/") {
			p = "/" + p
		}
	}
	if add != "" {
		p = add + p
	}
	if dec, err := url.PathUnescape(p); err == nil {
		u.Path, u.RawPath = dec, p
		if u.EscapedPath() == dec {
			u.RawPath = ""
		}
	}
}

// trackedBody wraps the client's request body. It is how the proxy knows
// what the client did to an attempt, whichever goroutine read the body (the
// transport's writeLoop does):
//
//   - read counts the bytes consumed, so a retry can tell whether the body
//     is still intact;
//   - err keeps the first read error other than io.EOF. Reading the client's
//     body can only fail through the client (malformed chunking, a body cut
//     short, over the bodylimit, too slow, the connection gone), so an
//     attempt whose body read failed is the client's fault however the
//     transport reports it, never the upstream's;
//   - reads run under a deadline (see setDeadline) so a slow client cannot
//     hold an upstream connection without bound.
//
// Close does nothing: the transport closes the body after a failed
// attempt, and the client's body must survive for a retry (net/http closes
// it when the handler returns).
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Int64

	// conn sets the client connection's read deadline; nil: no deadline.
	conn    readDeadliner
	idle    time.Duration
	minRate float64 // bytes per second, 0: off
	// waited is the time spent blocked in reads of the body (ns): the time
	// the client made the gateway wait. Time between reads is not in it:
	// an upstream that consumes the body slowly makes the transport read
	// less often, and that must not be held against the client.
	waited atomic.Int64

	mu  sync.Mutex
	err error
}

// readDeadliner is the part of http.ResponseController (and of net/http's
// own response writer) that bounds reads of the request body.
type readDeadliner interface{ SetReadDeadline(time.Time) error }

func (b *trackedBody) Read(p []byte) (int, error) {
	var t0 time.Time
	if b.conn != nil {
		t0 = time.Now()
		b.setDeadline(t0)
	}
	n, err := b.rc.Read(p)
	if b.conn != nil {
		b.waited.Add(int64(time.Since(t0)))
	}
	b.read.Add(int64(n))
	if err != nil {
		if err != io.EOF { //nolint:errorlint // io.Reader returns io.EOF itself
			b.mu.Lock()
			if b.err == nil {
				b.err = err
			}
			b.mu.Unlock()
		}
	}
	return n, err
}

func (b *trackedBody) Close() error { return nil }

// Err returns the first read error other than io.EOF, or nil.
func (b *trackedBody) Err() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// setDeadline bounds the next read: the next bytes must come within idle,
// and, when minRate is set, the body must keep up an average of minRate
// bytes per second after a grace period of idle (Apache mod_reqtimeout's
// body=20,MinRate=500 model: each minRate bytes received buys one more
// second). The rate counts only the time spent waiting for the client
// (waited), never the time the upstream took to ask for more. A deadline
// already in the past fails the read at once.
//
// The deadline is never cleared here, and need not be: net/http clears it
// itself when the body hits EOF (to start its background read that notices
// a client leaving) and sets its own before the next request. Left in
// place after a failed or unfinished body, it bounds what net/http reads
// to discard the rest of the body after the handler, instead of waiting
// on a slow client forever.
func (b *trackedBody) setDeadline(now time.Time) {
	budget := b.idle
	if b.minRate > 0 {
		earned := time.Duration(float64(b.read.Load()) / b.minRate * float64(time.Second))
		budget = min(budget, b.idle+earned-time.Duration(b.waited.Load()))
	}
	_ = b.conn.SetReadDeadline(now.Add(budget))
}

// idempotent methods may be sent twice without a different effect (RFC 9110
// section 9.2.2).
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return false
}

// serveProxy proxies r to rt's upstream, retrying on other targets while it
// is safe: an idempotent method whose body (if any) can be replayed, or an
// attempt that never reached the upstream. An attempt the client ended
// (see clientFault) is answered as the client's error and never retried.
func (g *Gateway) serveProxy(w http.ResponseWriter, r *http.Request, rt *route) {
	up := rt.up
	set := up.set.Load() // one target set for every attempt of this request
	var body *trackedBody
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body = &trackedBody{rc: r.Body, idle: rt.reqBody.Timeout.D, minRate: float64(*rt.reqBody.MinRate)}
		if d, ok := w.(readDeadliner); ok {
			body.conn = d // net/http's writer, or a wrapper with its methods: no allocation
		} else {
			body.conn = http.NewResponseController(w)
		}
		r = r.WithContext(r.Context()) // shallow copy: do not touch the caller's request
		r.Body = body
	}
	var tried []*balancer.Target
	var last *attempt
	for n := 0; ; n++ {
		bt, err := set.bal.Pick(r, tried)
		if err != nil {
			if last != nil {
				break // every target was tried: report the last failure
			}
			g.reqLog.LogAttrs(r.Context(), slog.LevelWarn, "no healthy target",
				slog.String("upstream", up.name), slog.String("route", rt.cfg.PathPrefix))
			g.writeError(w, r, http.StatusServiceUnavailable, "no healthy target", up.name)
			return
		}
		a := &attempt{target: set.lookup(bt), n: n, body: body}
		// Whether the attempt reached the upstream decides a retry only
		// when one may follow and the request is not an idempotent one
		// without a body (always safe to resend). Otherwise skip the
		// httptrace hook: ReverseProxy adds its own, and composing two
		// ClientTraces walks every hook with reflection on each request.
		a.traceReach = n < up.retries && (body != nil || !idempotent(r.Method))
		if n > 0 {
			g.m.retries.Add(r.Context(), 1, up.retryOpt...)
		}
		g.attempt(w, r, rt, a)
		if a.err == nil && a.fault == 0 {
			return
		}
		last = a
		if a.fault != 0 || a.err == nil || n >= up.retries || !retrySafe(r, a, body) {
			break
		}
		tried = append(tried, bt)
	}
	if rs := telemetry.ResponseStateFrom(r.Context()); rs != nil && rs.Started() {
		// A response is under way (the upstream's, cut short; or an upgrade
		// failed after the hijack): nothing else can be sent.
		return
	}
	code, msg := last.fault, last.faultMsg
	if code == 0 {
		code, msg = upstreamError(last.err)
	}
	if code == StatusClientClosedRequest {
		// Not an upstream problem and not an error of ours: info level.
		g.reqLog.LogAttrs(r.Context(), slog.LevelInfo, "client went away before the upstream answered",
			slog.String("upstream", up.name), slog.String("target", last.target.String()))
	}
	g.writeError(w, r, code, msg, up.name)
}

func retrySafe(r *http.Request, a *attempt, body *trackedBody) bool {
	noBody := body == nil || body.read.Load() == 0
	if !a.reached.Load() {
		return noBody // never reached the upstream: safe if the body is intact
	}
	return idempotent(r.Method) && (body == nil || r.GetBody != nil)
}

// attempt sends r to a.target once, under a CLIENT span, and records the
// outcome on the target (inflight, counters, EWMA, passive ejection).
func (g *Gateway) attempt(w http.ResponseWriter, r *http.Request, rt *route, a *attempt) {
	t := a.target
	mi := telemetry.MethodIndex(r.Method)
	ctx, span := g.tracer.Start(r.Context(), telemetry.MethodName(mi), g.clientSpan)
	ctx = context.WithValue(ctx, attemptKey{}, a)
	if a.traceReach {
		a.trace.WroteHeaders = a.wroteHeaders
		ctx = httptrace.WithClientTrace(ctx, &a.trace)
	}

	t.Start()
	start := time.Now()
	defer func() {
		// Runs on panic too: ReverseProxy aborts a broken response copy with
		// panic(http.ErrAbortHandler), which recover re-panics.
		p := recover()
		elapsed := time.Since(start)
		outcome := balancer.Answered
		if p != nil || a.err != nil || a.status == http.StatusBadGateway || a.status == http.StatusGatewayTimeout {
			outcome = balancer.Failed
			if code, msg, ok := clientFault(r.Context(), a.body); ok {
				outcome, a.fault, a.faultMsg = balancer.ClientFault, code, msg
			}
		}
		t.End(elapsed, outcome)
		if outcome == balancer.Failed && t.recordFailure(time.Now(), rt.up.cfg.Passive) {
			g.logger.LogAttrs(ctx, slog.LevelWarn, "target ejected after repeated failures",
				slog.String("upstream", rt.up.name), slog.String("target", t.String()),
				slog.Int("fail_threshold", *rt.up.cfg.Passive.FailThreshold),
				slog.Duration("window", rt.up.cfg.Passive.Window.D),
				slog.Duration("eject_for", rt.up.cfg.Passive.EjectFor.D))
		}
		var et string
		if a.status == 0 && (a.err != nil || p != nil) {
			et = errorType(a)
		}
		if span.IsRecording() {
			g.endClientSpan(span, mi, t, a, et, outcome == balancer.ClientFault)
		}
		g.m.clientDuration.Record(ctx, elapsed.Seconds(), t.durationOpt(mi, a.status, et)...)
		switch {
		case outcome == balancer.Failed && a.err != nil:
			g.reqLog.LogAttrs(ctx, slog.LevelWarn, "upstream attempt failed",
				slog.String("upstream", rt.up.name), slog.String("target", t.String()),
				slog.Int("attempt", a.n+1), slog.String("error", a.err.Error()))
		case outcome == balancer.ClientFault && a.fault != StatusClientClosedRequest:
			// The client's doing: info, with what was wrong for whoever
			// debugs that client. Not a warning about the upstream.
			err := a.body.Err()
			if err == nil {
				err = a.err
			}
			attrs := []slog.Attr{slog.String("upstream", rt.up.name), slog.Int("status", a.fault)}
			if err != nil {
				attrs = append(attrs, slog.String("error", err.Error()))
			}
			g.reqLog.LogAttrs(ctx, slog.LevelInfo, "request failed by the client", attrs...)
		}
		span.End()
		if p != nil {
			panic(p)
		}
	}()
	rt.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// endClientSpan sets the CLIENT span's attributes and status once the
// attempt's outcome is known: in one SetAttributes call, because the SDK
// grows its attribute slice per call (a second call doubles it).
func (g *Gateway) endClientSpan(span trace.Span, mi int, t *target, a *attempt, et string, clientGone bool) {
	var buf [8]attribute.KeyValue
	attrs := append(buf[:0], attribute.String("http.request.method", telemetry.MethodName(mi)))
	attrs = append(attrs, t.spanAttrs...)
	if a.n > 0 {
		attrs = append(attrs, attribute.Int("http.request.resend_count", a.n))
	}
	switch {
	case a.status != 0:
		attrs = append(attrs, attribute.Int("http.response.status_code", a.status))
	case et != "":
		attrs = append(attrs, attribute.String("error.type", et))
	}
	span.SetAttributes(attrs...)
	switch {
	case a.status >= 500:
		span.SetStatus(codes.Error, http.StatusText(a.status))
	case a.status == 0 && et != "" && !clientGone:
		span.SetStatus(codes.Error, et)
		if a.err != nil {
			span.RecordError(a.err)
		}
	}
}

// clientFault decides, in one place, whether a failed attempt was the
// client's doing, and how it is answered. It is, when reading the client's
// body failed (whatever error the transport made of it), or when the
// client's request context ended (the client went away; net/http also
// cancels it when a read of the client connection fails):
//
//   - 413 the body went past the bodylimit (http.MaxBytesReader);
//   - 408 the body came too slowly (request_body.timeout / min_rate);
//   - 499 the client is gone (reset, or the context was canceled): only
//     logged and measured, never sent;
//   - 400 anything else the body reader rejected: malformed chunked
//     encoding, a body shorter than its Content-Length.
//
// Such an attempt never counts against the target (passive ejection,
// failure counters, EWMA) and is never retried: another target would get
// the same broken body.
func clientFault(ctx context.Context, body *trackedBody) (code int, msg string, ok bool) {
	if err := body.Err(); err != nil {
		switch {
		case middleware.IsBodyTooLarge(err):
			return http.StatusRequestEntityTooLarge, "request body too large", true
		case isTimeout(err):
			return http.StatusRequestTimeout, "request body not received in time", true
		case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
			return StatusClientClosedRequest, "client closed request", true
		default:
			return http.StatusBadRequest, "malformed or truncated request body", true
		}
	}
	if ctx.Err() != nil {
		return StatusClientClosedRequest, "client closed request", true
	}
	return 0, "", false
}

// upstreamError maps an attempt error that was not the client's doing to
// the answer status and message. The message says what happened without
// leaking internal addresses; the log line has the detail.
func upstreamError(err error) (int, string) {
	switch {
	case isTimeout(err):
		return http.StatusGatewayTimeout, "upstream timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return http.StatusBadGateway, "upstream refused the connection"
	default:
		return http.StatusBadGateway, "upstream connection failed"
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// errorType is the OTel error.type of a failed attempt.
func errorType(a *attempt) string {
	switch a.fault {
	case 0:
	case StatusClientClosedRequest:
		return "client_closed"
	case http.StatusRequestEntityTooLarge:
		return "body_too_large"
	case http.StatusRequestTimeout:
		return "request_body_timeout"
	default:
		return "bad_request_body"
	}
	switch code, _ := upstreamError(a.err); {
	case code == http.StatusGatewayTimeout:
		return "timeout"
	case errors.Is(a.err, syscall.ECONNREFUSED):
		return "connection_refused"
	}
	return "connection_error"
}

// errorBody is the gateway's JSON error shape.
type errorBody struct {
	Error    string `json:"error"`
	Upstream string `json:"upstream,omitempty"`
	TraceID  string `json:"trace_id,omitempty"`
}

// writeError answers with the JSON error shape. For 499 nothing is sent:
// the status exists for the access log and the metrics only. The response
// is aborted instead (see abortClientGone).
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, code int, msg, upstream string) {
	if code == StatusClientClosedRequest {
		abortClientGone()
	}
	body := errorBody{Error: msg, Upstream: upstream}
	if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
		body.TraceID = sc.TraceID().String()
	}
	b, _ := json.Marshal(body)
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	if code == http.StatusRequestTimeout || code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge {
		// The rest of the body is unread or unreadable: the connection
		// cannot carry another request.
		h.Set("Connection", "close")
	}
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// abortClientGone ends a response to a client that went away without
// sending anything. Returning from the handler would not do: net/http
// then sends "200 OK" with an empty body, which a half-closed client (one
// that shut down its sending side and still reads) would take for a
// success; and a literal "499" status line is not HTTP. Panicking with
// http.ErrAbortHandler makes net/http close the connection (HTTP/1) or
// reset the stream (HTTP/2) quietly; the access log and ServeHTTP record
// 499 for a response aborted before any status was written.
func abortClientGone() { panic(http.ErrAbortHandler) }
