package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// HeaderRequestID is the header carrying the request id both ways.
const HeaderRequestID = "X-Request-Id"

// MaxRequestIDLen is the longest incoming request id that is kept.
const MaxRequestIDLen = 128

type requestIDKey struct{}

// RequestID returns the `requestid` built-in: it keeps a sane incoming
// X-Request-Id (see [ValidRequestID]) or generates one ([NewRequestID]),
// and sets it on the request header, the response header and the context.
func RequestID() Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			vs := r.Header.Values(HeaderRequestID)
			var id string
			if len(vs) == 1 && ValidRequestID(vs[0]) {
				id = vs[0]
			} else {
				id = NewRequestID()
				r.Header.Set(HeaderRequestID, id)
			}
			w.Header().Set(HeaderRequestID, id)
			next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
		})
	}
}

// ValidRequestID reports whether id may be kept as is: 1 to 128 bytes of
// printable ASCII without spaces.
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// NewRequestID returns 128 random bits as 32 lowercase hex characters.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	var h [32]byte
	hex.Encode(h[:], b[:])
	return string(h[:])
}

// WithRequestID returns ctx carrying id, as read by [RequestIDFrom].
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id set by the requestid middleware, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestIDOf finds the request id for logging whatever the chain's order:
// from the context when requestid ran outside us, else from the response
// header, which requestid sets before calling inner layers.
func requestIDOf(r *http.Request, w http.ResponseWriter) string {
	if id := RequestIDFrom(r.Context()); id != "" {
		return id
	}
	return w.Header().Get(HeaderRequestID)
}
