// Package middleware is the gateway's onion-style middleware chain and its
// built-in middlewares.
//
// A [Middleware] wraps an [http.Handler]; [Chain] composes several so that
// the first one listed is the outermost layer: it sees the request first and
// the response last. The gateway builds one chain per route from the names in
// the route's `middleware:` list with [Build], which creates fresh state for
// every call (so two routes using `ratelimit` have independent buckets).
//
// Every built-in that rejects a request answers with a JSON body
// `{"error": "..."}` and `Content-Type: application/json`, like the rest of
// the gateway, so clients parse one error shape whatever layer refused them.
//
// The built-ins, and why they behave as they do:
//
//   - recover: turns a panic in an inner handler into a 500 and logs the
//     stack at error level with the request's method, path and request id.
//     [http.ErrAbortHandler] is re-panicked untouched: it is the stdlib's way
//     to abort a response on purpose and net/http already handles it quietly.
//     If the inner handler had already started the response, a 500 can no
//     longer be sent; the panic is then logged and turned into
//     [http.ErrAbortHandler] so that the connection is cut and the client
//     sees a truncated response instead of a seemingly complete one.
//   - requestid: keeps an incoming X-Request-Id when it is sane (1..128
//     printable ASCII characters without spaces) so that ids chosen by a
//     caller survive the hop; anything else (newlines, huge values, control
//     bytes) is replaced, because the id ends up in log lines and headers of
//     other services. Generated ids are 128 random bits in hex. The id is set
//     on the request header (the proxy passes it upstream), on the response
//     header and in the context ([RequestIDFrom]).
//   - accesslog: one JSON log line per request once the response is done
//     (see [AccessLog] for the fields and the 499 rule). It logs with the
//     request's context so the telemetry logger adds trace_id and span_id.
//     The status and byte count come from the response state that
//     telemetry.NewHTTPServer (the gateway's listener) captured and put in
//     the request context (telemetry.ResponseStateFrom): the writer is not
//     wrapped again. Used on its own, outside that handler, accesslog wraps
//     the writer with telemetry.Snoop, which keeps exactly the optional
//     interfaces of the writer it wraps (http.Flusher, http.Hijacker,
//     io.ReaderFrom, ...) and implements Unwrap for
//     [http.ResponseController], so streaming and WebSocket upgrades pass
//     through. recover reads the same state to know whether the response
//     had started.
//   - ratelimit: a token bucket per client (golang.org/x/time/rate), keyed by
//     the host of RemoteAddr, never by X-Forwarded-For, which any client can
//     forge. IPv6 clients are keyed by their /64, the smallest block an ISP
//     hands out, or one host could rotate through 2^64 addresses. Over the
//     limit the answer is 429 with Retry-After in whole seconds (at least 1)
//     taken from the bucket's own delay. The per-client table is an LRU
//     bounded by max_clients, so spoofed-source churn cannot grow memory
//     without bound; the cost is that an evicted client starts again with a
//     full bucket, which errs on the side of letting traffic through.
//   - bodylimit: a Content-Length over the limit is refused with 413 before
//     any byte is read; otherwise the body is wrapped in
//     [http.MaxBytesReader], so a chunked body that grows past the limit
//     fails while being read, and [IsBodyTooLarge] lets the proxy turn that
//     read error into a 413.
//   - auth: static bearer tokens. Both the presented and the configured
//     tokens are hashed with SHA-256 and compared with
//     crypto/subtle.ConstantTimeCompare against every configured token, so
//     the response time reveals neither a token's length nor which one was
//     close. Missing or unknown tokens get 401 with WWW-Authenticate: Bearer.
//     The Authorization header is passed upstream unchanged (backends such
//     as the job queue may check the same tokens).
package middleware

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// Middleware wraps a handler with extra behaviour before and/or after it.
type Middleware func(http.Handler) http.Handler

// Chain wraps h so that m[0] is the outermost layer (runs first on the way
// in, last on the way out). Nil middlewares are skipped.
func Chain(h http.Handler, m ...Middleware) http.Handler {
	for i := len(m) - 1; i >= 0; i-- {
		if m[i] != nil {
			h = m[i](h)
		}
	}
	return h
}

// Built-in names, in the order a typical chain would use them.
const (
	NameRecover   = "recover"
	NameRequestID = "requestid"
	NameAccessLog = "accesslog"
	NameRateLimit = "ratelimit"
	NameBodyLimit = "bodylimit"
	NameAuth      = "auth"
)

// Names lists the built-in middlewares accepted by [Build].
func Names() []string {
	return []string{NameRecover, NameRequestID, NameAccessLog, NameRateLimit, NameBodyLimit, NameAuth}
}

// Build returns the named built-in configured by cfg. Each call creates
// fresh state (one rate limiter table per call, hence per route). Only the
// section of cfg the built-in uses is validated. A nil logger discards logs.
func Build(name string, cfg Config, logger *slog.Logger) (Middleware, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch name {
	case NameRecover:
		return Recover(logger), nil
	case NameRequestID:
		return RequestID(), nil
	case NameAccessLog:
		return AccessLog(logger), nil
	case NameRateLimit:
		if err := cfg.RateLimit.validate(); err != nil {
			return nil, err
		}
		return NewRateLimiter(cfg.RateLimit).Middleware, nil
	case NameBodyLimit:
		if err := cfg.BodyLimit.validate(); err != nil {
			return nil, err
		}
		return BodyLimit(cfg.BodyLimit.MaxBytes), nil
	case NameAuth:
		if err := cfg.Auth.validate(); err != nil {
			return nil, err
		}
		if len(cfg.Auth.Tokens) == 0 {
			return nil, fmt.Errorf("middleware.auth.tokens: must list at least one token when auth is used")
		}
		return Auth(cfg.Auth.Tokens), nil
	}
	return nil, fmt.Errorf("unknown middleware %q (valid: %s)", name, strings.Join(Names(), ", "))
}

// BuildAll builds the named built-ins in order, ready for [Chain].
func BuildAll(names []string, cfg Config, logger *slog.Logger) ([]Middleware, error) {
	ms := make([]Middleware, 0, len(names))
	for _, n := range names {
		m, err := Build(n, cfg, logger)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// writeError writes the gateway's JSON error shape.
func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Write(append(b, '\n'))
}
