package middleware

import (
	"errors"
	"net/http"
	"strconv"
)

// BodyLimit returns the `bodylimit` built-in: a declared Content-Length over
// maxBytes gets 413 at once; any other body is wrapped in
// http.MaxBytesReader so reading past maxBytes fails (see [IsBodyTooLarge]).
func BodyLimit(maxBytes int64) Middleware {
	msg := "request body too large (limit " + strconv.FormatInt(maxBytes, 10) + " bytes)"
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > maxBytes {
				writeError(w, http.StatusRequestEntityTooLarge, msg)
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, maxBytes)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// IsBodyTooLarge reports whether err comes from reading a body past the
// bodylimit (an *http.MaxBytesError anywhere in its chain); a proxy answers
// 413 for it instead of 502.
func IsBodyTooLarge(err error) bool {
	var e *http.MaxBytesError
	return errors.As(err, &e)
}
