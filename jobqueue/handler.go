package jobqueue

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardgate/wardgate/telemetry"
)

// Rejection reasons, the "reason" label of wardgate.payloads.rejected.
const (
	reasonFull        = "full"
	reasonTooLarge    = "too_large"
	reasonBadRequest  = "bad_request"
	reasonUnauth      = "unauthorized"
	reasonMediaType   = "unsupported_media"
	reasonMethod      = "method"
	reasonDraining    = "draining"
	reasonNotStored   = "not_stored"
	reasonAckTimeout  = "ack_timeout"
	retryAfterSeconds = "1"
)

// Handle returns the public HTTP handler: POST /v1/payloads, GET /healthz
// (alive) and GET /readyz (ready and not draining). It never serves
// /metrics or pprof: those belong on the admin listener.
//
// Spans, http.server.request.duration and pprof labels come from
// telemetry.NewHTTPServer, the same instrumentation as the gateway's
// listener (with user_agent.original on spans), so the route, the
// 4xx-is-not-a-server-error rule and the metric names are those of the SPEC.
func (q *Queue) Handle() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/payloads", q.servePayloads)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if q.Draining() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	// The patterns above, and "" for what none matches (404, 405).
	routes := map[string]*telemetry.ServerRoute{}
	for _, p := range []string{"/v1/payloads", "GET /healthz", "GET /readyz", ""} {
		route := p
		if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:] // http.route has no method
		}
		routes[p] = telemetry.NewServerRoute(route)
	}
	return telemetry.NewHTTPServer(telemetry.HTTPServerConfig{
		Tracer: q.tracer, Propagator: q.prop, Duration: q.m.reqDur, UserAgent: true,
	}, func(r *http.Request) (http.Handler, *telemetry.ServerRoute) {
		h, pattern := mux.Handler(r)
		if rt, ok := routes[pattern]; ok {
			return h, rt
		}
		// A pattern added above without its route: still recorded, under
		// its own name (built per request, so add it to the list).
		return h, telemetry.NewServerRoute(pattern[strings.IndexByte(pattern, ' ')+1:])
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// reject answers an error as JSON {"error","trace_id"} and counts it.
func (q *Queue) reject(ctx context.Context, w http.ResponseWriter, code int, reason, msg string) {
	q.m.rejected.Add(ctx, 1, q.m.reason(reason))
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	body := map[string]string{"error": msg}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		body["trace_id"] = sc.TraceID().String()
	}
	// Counted by wardgate.payloads.rejected: logged as a summary per
	// status and reason (first occurrence, then a count per interval).
	level := slog.LevelDebug
	if code >= 500 {
		level = slog.LevelWarn
	}
	q.reqLog.Log(ctx, level, "payloads refused", "status", code, "reason", reason, "error", msg)
	writeJSON(w, code, body)
}

func (q *Queue) servePayloads(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		q.reject(ctx, w, http.StatusMethodNotAllowed, reasonMethod, fmt.Sprintf("method %s not allowed, use POST", r.Method))
		return
	}
	if q.Draining() {
		q.reject(ctx, w, http.StatusServiceUnavailable, reasonDraining, "draining: not accepting payloads, retry another instance")
		return
	}
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		q.reject(ctx, w, http.StatusUnsupportedMediaType, reasonMediaType, fmt.Sprintf("content type %q: want application/json", clip(ct)))
		return
	}
	// JSON is UTF-8 (RFC 8259 8.1): a body declared in another charset
	// would be stored as bytes that are not what the client meant.
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		q.reject(ctx, w, http.StatusUnsupportedMediaType, reasonMediaType, fmt.Sprintf("charset %q: JSON bodies must be UTF-8", clip(cs)))
		return
	}
	coding, err := contentCoding(r.Header)
	if err != nil {
		w.Header().Set("Accept-Encoding", "gzip") // RFC 9110 15.5.16
		q.reject(ctx, w, http.StatusUnsupportedMediaType, reasonMediaType, err.Error())
		return
	}
	if r.ContentLength > q.cfg.MaxLength {
		q.reject(ctx, w, http.StatusRequestEntityTooLarge, reasonTooLarge, fmt.Sprintf("body of %d bytes is over MAX_LENGTH (%d)", r.ContentLength, q.cfg.MaxLength))
		return
	}
	// Fast path under overload: a full queue refuses before reading bodies.
	if q.reserved.Load() >= q.capacity {
		q.reject(ctx, w, http.StatusServiceUnavailable, reasonFull, "queue full, retry later")
		return
	}

	buf, err := q.readBody(w, r, coding)
	if err != nil {
		var tooLarge *errTooLarge
		if errors.As(err, &tooLarge) {
			q.reject(ctx, w, http.StatusRequestEntityTooLarge, reasonTooLarge, err.Error())
			return
		}
		q.reject(ctx, w, http.StatusBadRequest, reasonBadRequest, err.Error())
		return
	}
	durable := q.cfg.AckMode == AckDurable
	if durable {
		// Until this request is queued or refused, a durable batch being
		// built waits for it rather than flushing without it.
		q.admitting.Add(1)
	}
	c, n, err := q.enqueue(ctx, r, buf)
	if durable {
		q.doneAdmitting()
	}
	var (
		bad    *errBadRequest
		unauth *authError
	)
	switch {
	case errors.As(err, &bad):
		q.reject(ctx, w, http.StatusBadRequest, reasonBadRequest, err.Error())
		return
	case errors.As(err, &unauth):
		challenge := `Bearer realm="wardgate-jobqueue"`
		if unauth.header {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		q.reject(ctx, w, http.StatusUnauthorized, reasonUnauth, unauth.msg)
		return
	case errors.Is(err, errTooMany):
		q.reject(ctx, w, http.StatusRequestEntityTooLarge, reasonTooLarge,
			fmt.Sprintf("collection of %d payloads is larger than the whole queue (MAX_QUEUE=%d): it can never be admitted, split it", n, q.capacity))
		return
	case errors.Is(err, ErrDraining):
		q.reject(ctx, w, http.StatusServiceUnavailable, reasonDraining, "draining: not accepting payloads, retry another instance")
		return
	case err != nil:
		q.reject(ctx, w, http.StatusServiceUnavailable, reasonFull, fmt.Sprintf("queue cannot take %d payloads now, retry later", n))
		return
	}
	if n > 0 {
		q.m.accepted.Add(ctx, int64(n))
	}
	if c != nil && c.ack != nil {
		ackTimer := time.NewTimer(q.cfg.AckTimeout)
		defer ackTimer.Stop()
		select {
		case <-c.ack.done:
			if c.ack.failed.Load() {
				msg := "payloads were queued but could not be stored before shutdown"
				if c.ack.spilled.Load() {
					msg += " (they were saved to local disk and will be stored by the next start: a retry may store them twice)"
				}
				q.reject(ctx, w, http.StatusServiceUnavailable, reasonNotStored, msg)
				return
			}
		case <-ackTimer.C:
			// The store is slow or down: answer within a bounded time
			// rather than hold the client until its own timeout. The
			// payloads stay queued and are still stored.
			q.reject(ctx, w, http.StatusServiceUnavailable, reasonAckTimeout,
				fmt.Sprintf("payloads queued but not stored within ACK_TIMEOUT (%s); they are still being stored, so a retry may store them twice", q.cfg.AckTimeout))
			return
		case <-ctx.Done():
			// The client gave up; the payloads are still stored. Nobody
			// reads this answer, but the metrics and the span do.
			q.reqLog.InfoContext(ctx, "client left before its payloads were stored; they will be", "payloads", n)
			q.reject(ctx, w, http.StatusServiceUnavailable, reasonNotStored, "client gone before the payloads were stored (they will be)")
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	var ans [40]byte
	out := append(ans[:0], `{"accepted":`...)
	out = strconv.AppendInt(out, int64(n), 10)
	_, _ = w.Write(append(out, "}\n"...))
}

// errTooMany: the collection has more payloads than MAX_QUEUE, so no
// retry can ever admit it (a 503 would make clients retry forever).
var errTooMany = errors.New("jobqueue: collection larger than MAX_QUEUE")

// enqueue decodes the body, checks the token and admits the collection
// under a PRODUCER span. It returns the admitted collection (nil for an
// empty one) and its payload count; errors are an *errBadRequest,
// *authError, errTooMany, ErrDraining or ErrFull.
func (q *Queue) enqueue(ctx context.Context, r *http.Request, buf *bytes.Buffer) (*collection, int, error) {
	dec, _ := q.decoders.Get().(*jsontext.Decoder)
	if dec == nil {
		dec = jsontext.NewDecoder(http.NoBody)
	}
	d, err := decodeBuffer(dec, buf)
	q.decoders.Put(dec)
	if err != nil {
		return nil, 0, err
	}
	if len(q.cfg.APITokens) > 0 {
		if err := q.authorize(r, d.token); err != nil {
			return nil, 0, err
		}
	}
	n := len(d.payloads)
	if n == 0 {
		return nil, 0, nil
	}
	if int64(n) > q.capacity {
		return nil, n, errTooMany
	}
	now := q.now()
	version := d.version
	if version == nil {
		version = []byte(`""`)
	}
	c := &collection{
		version:    version,
		traceID:    trace.SpanContextFromContext(ctx).TraceID(),
		receivedAt: now,
		stamp:      now.UTC().Format(time.RFC3339Nano),
		payloads:   d.payloads,
	}
	if q.cfg.AckMode == AckDurable {
		c.ack = &ack{done: make(chan struct{})}
		c.ack.remaining.Store(int64(n))
	}
	_, pspan := q.tracer.Start(ctx, "send "+destination, producerSpan...)
	if pspan.IsRecording() {
		pspan.SetAttributes(
			attribute.String("messaging.system", messagingSystem),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.operation.name", "send"),
			attribute.String("messaging.destination.name", destination),
			attribute.Int("messaging.batch.message_count", n))
	}
	c.producer = pspan.SpanContext()
	if err := q.admit(c); err != nil {
		pspan.SetStatus(codes.Error, err.Error())
		pspan.End()
		return nil, n, err
	}
	pspan.End()
	return c, n, nil
}

var producerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}

// doneAdmitting ends what servePayloads began with admitting.Add(1); the
// last one out wakes a durable builder waiting for it.
func (q *Queue) doneAdmitting() {
	if q.admitting.Add(-1) == 0 {
		select {
		case q.admitted <- struct{}{}:
		default:
		}
	}
}

// authError is a 401: msg is for the client, header says whether an
// Authorization header was presented (then the WWW-Authenticate challenge
// carries error="invalid_token", RFC 6750).
type authError struct {
	msg    string
	header bool
}

func (e *authError) Error() string { return "jobqueue: unauthorized: " + e.msg }

// authorize checks the credentials against API_TOKENS (compared in constant
// time). A request that carries an Authorization header is decided by that
// header alone: it must be one "Bearer <token>" (scheme in any case) with a
// known token. A header that is present but wrong is a 401 even when the
// body's "token" field is valid: credentials that were presented and
// failed are never silently replaced by others (a client with a stale
// header must find out, not be let in by a leftover field). Without the
// header, the collection's "token" field decides.
func (q *Queue) authorize(r *http.Request, bodyToken string) error {
	hdr := r.Header.Values("Authorization")
	if len(hdr) == 0 {
		if bodyToken == "" {
			return &authError{msg: `missing token: send the collection's "token" field or Authorization: Bearer <token>`}
		}
		if !q.knownToken(bodyToken) {
			return &authError{msg: `unknown token in the collection's "token" field`}
		}
		return nil
	}
	if len(hdr) > 1 {
		return &authError{msg: "more than one Authorization header", header: true}
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(hdr[0]), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return &authError{msg: "Authorization header is not \"Bearer <token>\"", header: true}
	}
	if !q.knownToken(tok) {
		return &authError{msg: "unknown token in the Authorization header (it decides alone, whatever the collection's \"token\" field says)", header: true}
	}
	return nil
}

// knownToken reports whether tok is one of API_TOKENS, looking at every
// one in constant time.
func (q *Queue) knownToken(tok string) bool {
	ok := false
	for _, t := range q.cfg.APITokens {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
			ok = true
		}
	}
	return ok
}
