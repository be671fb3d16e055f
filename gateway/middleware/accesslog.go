package middleware

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/wardgate/wardgate/telemetry"
)

// StatusClientClosedRequest is nginx's non-standard 499: the client went
// away before the response was sent. It is never written to the wire by
// this package, only logged.
const StatusClientClosedRequest = telemetry.StatusClientClosedRequest

type accessKey struct{}

// accessEntry is shared through the context so inner layers can name the
// route the request matched.
type accessEntry struct{ route string }

type routeKey struct{}

// WithRoute returns ctx naming the route for an accesslog enclosed by it:
// for a router that matches the route before running the route's chain.
func WithRoute(ctx context.Context, route string) context.Context {
	return context.WithValue(ctx, routeKey{}, route)
}

// SetRoute records the route an inner handler matched (e.g. the route's
// path_prefix) for the enclosing accesslog line. It is a no-op when no
// accesslog middleware encloses ctx. Not safe for concurrent use on the same
// request (a handler names its route once, before proxying).
func SetRoute(ctx context.Context, route string) {
	if e, ok := ctx.Value(accessKey{}).(*accessEntry); ok {
		e.route = route
	}
}

// AccessLog returns the `accesslog` built-in. After the inner handler
// returns it logs one line, message "http request", with the request's
// context (so a telemetry logger adds trace_id and span_id) and the fields
// method, path, route (set inside by [SetRoute], else outside by
// [WithRoute], else the ServeMux pattern, else omitted), status, bytes, duration_ms, client_ip, request_id, user_agent.
//
// Status 5xx is logged at error level, anything else at info. The status is
// [StatusClientClosedRequest] (499) when the client went away: the request
// context was canceled (the client closed the connection) and the handler
// returned, or aborted with panic(http.ErrAbortHandler), without writing a
// status. A gateway error handler that notices a canceled client should
// therefore abort with http.ErrAbortHandler: writing 502 would log the
// client's disconnect as an upstream failure, and returning without a
// status makes net/http send "200 OK". 499 itself is never written to the
// wire. A handler that panics still gets its line (status 500 if it wrote
// none). A hijacked connection (WebSocket) is logged with status 101.
func AccessLog(logger *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			method, path, ua := r.Method, r.URL.Path, r.UserAgent()
			entry := &accessEntry{}
			ctx := context.WithValue(r.Context(), accessKey{}, entry)
			r2 := r.WithContext(ctx)
			sw, st := snoop(w, r)
			// A handler that panics still gets its line: net/http's
			// ErrAbortHandler (a response cut short, or aborted because the
			// client left) passes through here on its way up.
			returned := false
			defer func() {
				if returned {
					return
				}
				logAccess(ctx, logger, r, r2, w, entry, st, loggedStatus(ctx, st, true), method, path, ua, start)
			}()

			next.ServeHTTP(sw, r2)
			returned = true

			logAccess(ctx, logger, r, r2, w, entry, st, loggedStatus(ctx, st, false), method, path, ua, start)
		})
	}
}

// logAccess writes the access log line of one request.
// loggedStatus is the status the access log records when the handler wrote
// none: 101 for a hijacked connection, 499 for a client that left, else 500
// after a panic (recover answers it) or 200 (what net/http sends for a
// handler that wrote nothing).
func loggedStatus(ctx context.Context, st *telemetry.ResponseState, panicked bool) int {
	if st.Status != 0 {
		return st.Status
	}
	switch {
	case st.Hijacked:
		return http.StatusSwitchingProtocols
	case panicked && ctx.Err() != nil:
		return StatusClientClosedRequest // aborted for a client that left
	case panicked:
		return http.StatusInternalServerError
	case errors.Is(ctx.Err(), context.Canceled):
		return StatusClientClosedRequest
	default:
		return http.StatusOK
	}
}

func logAccess(ctx context.Context, logger *slog.Logger, r, r2 *http.Request, w http.ResponseWriter,
	entry *accessEntry, st *telemetry.ResponseState, status int, method, path, ua string, start time.Time) {
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	route := entry.route
	if route == "" {
		route, _ = ctx.Value(routeKey{}).(string)
	}
	if route == "" {
		route = r2.Pattern
	}
	attrs := [...]slog.Attr{
		slog.String("method", method),
		slog.String("path", path),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Int64("bytes", st.Bytes),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("client_ip", telemetry.ClientAddress(r.RemoteAddr)),
		slog.String("request_id", requestIDOf(r2, w)),
		slog.String("user_agent", ua),
	}
	as := attrs[:]
	if route == "" {
		as = append(as[:2:2], as[3:]...)
	}
	logger.LogAttrs(ctx, level, "http request", as...)
}

// snoop returns the response writer to pass on and the state of the
// response: the state telemetry.NewHTTPServer already captured for r (the
// gateway's listener), so the writer is not wrapped a second time; else,
// for a chain used on its own, a telemetry.Snoop wrapper of w.
func snoop(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, *telemetry.ResponseState) {
	if st := telemetry.ResponseStateFrom(r.Context()); st != nil {
		return w, st
	}
	return telemetry.Snoop(w)
}
