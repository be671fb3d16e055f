package telemetry

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// AdminHandler serves what an SRE reaches for on a live process: /metrics
// (Prometheus text with exemplars when asked for OpenMetrics), /debug/pprof/*,
// and /healthz. extra adds process-specific pages (the gateway's
// /admin/upstreams, for instance). When token is not empty every request
// must carry "Authorization: Bearer <token>". When t.DebugToken is set
// (wardgate up sets one per run), /debug/pprof/ additionally requires it
// (or token) while /metrics and /healthz stay open for scrapers and probes.
//
// The handler is meant for a loopback admin listener only; public
// listeners never mount it.
func (t *Telemetry) AdminHandler(token string, extra map[string]http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "service": t.Service})
	})
	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	h := requireDebugToken(mux, t.DebugToken, token)
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(strings.TrimSpace(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wardgate-admin"`)
			http.Error(w, `{"error":"admin token required"}`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
