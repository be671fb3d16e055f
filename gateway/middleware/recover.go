package middleware

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// Recover returns the `recover` built-in: a panic in an inner handler
// becomes a 500 JSON answer and an error log line with the stack, the
// request's method, path and request id. http.ErrAbortHandler is re-panicked
// as is. A panic after the response started is logged and turned into
// http.ErrAbortHandler, which makes net/http cut the connection.
func Recover(logger *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw, st := snoop(w, r)
			defer func() {
				rec := recover()
				if rec == nil {
					return
				}
				if rec == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way
					panic(rec)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("request_id", requestIDOf(r, w)),
					slog.String("panic", fmt.Sprint(rec)),
					slog.String("stack", string(debug.Stack())),
				)
				if st.Started() {
					panic(http.ErrAbortHandler)
				}
				// Headers the inner handler meant for its own body would
				// corrupt the error body (e.g. a Content-Length or gzip).
				h := w.Header()
				for _, k := range []string{"Content-Length", "Content-Encoding", "Content-Range", "Trailer", "Etag", "Last-Modified"} {
					h.Del(k)
				}
				writeError(w, http.StatusInternalServerError, "internal server error")
			}()
			next.ServeHTTP(sw, r)
		})
	}
}
