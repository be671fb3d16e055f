package middleware

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// Auth returns the `auth` built-in: requests must carry
// `Authorization: Bearer <token>` with one of tokens, else 401 with
// WWW-Authenticate: Bearer. Comparison is constant-time over SHA-256
// digests, against every token, so timing reveals neither length nor match.
func Auth(tokens []string) Middleware {
	sums := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		sums[i] = sha256.Sum256([]byte(t))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := bearerToken(r.Header.Get("Authorization"))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="wardgate"`)
				writeError(w, http.StatusUnauthorized, "missing bearer token")
				return
			}
			got := sha256.Sum256([]byte(tok))
			match := 0
			for i := range sums {
				match |= subtle.ConstantTimeCompare(got[:], sums[i][:])
			}
			if match != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="wardgate", error="invalid_token"`)
				writeError(w, http.StatusUnauthorized, "invalid bearer token")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// bearerToken extracts the token of an `Authorization: Bearer <token>`
// value; the scheme is case-insensitive (RFC 9110).
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
