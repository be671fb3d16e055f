package middleware

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkChain measures the cost (time, allocs/op) of every built-in
// around a trivial handler, with logging enabled to a discarding JSON handler.
func BenchmarkChain(b *testing.B) {
	var cfg Config
	cfg.SetDefaults()
	cfg.RateLimit.RPS, cfg.RateLimit.Burst = 1e9, 1<<30 // never refuse during the run
	cfg.Auth.Tokens = []string{"bench-token"}
	logger := slog.New(slog.NewJSONHandler(discard{}, nil))
	ms, err := BuildAll(Names(), cfg, logger)
	if err != nil {
		b.Fatal(err)
	}
	h := Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }), ms...)
	req := httptest.NewRequest("GET", "/v1/x", nil)
	req.Header.Set("Authorization", "Bearer bench-token")
	req.Header.Set(HeaderRequestID, "bench-request-id")
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
		if w.code != http.StatusNoContent {
			b.Fatalf("status %d", w.code)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

type nopWriter struct {
	h    http.Header
	code int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }
