package gateway

import (
	"encoding/json"
	"net/http"
	"time"
)

// TargetStatus is one target in GET /admin/upstreams.
type TargetStatus struct {
	URL          string     `json:"url"`
	Weight       int        `json:"weight"`
	Healthy      bool       `json:"healthy"`
	Ejected      bool       `json:"ejected"`
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	Inflight     int64      `json:"inflight"`
	Requests     uint64     `json:"requests"`
	Failures     uint64     `json:"failures"`
	Ejections    uint64     `json:"ejections"`
	EWMAMillis   float64    `json:"ewma_ms"`
}

// UpstreamStatus is one upstream in GET /admin/upstreams.
type UpstreamStatus struct {
	Balancer string         `json:"balancer"`
	Retries  int            `json:"retries"`
	Targets  []TargetStatus `json:"targets"`
}

// Upstreams returns the live state of every upstream of the current table.
func (g *Gateway) Upstreams() map[string]UpstreamStatus {
	tbl := g.table.Load()
	now := time.Now()
	out := make(map[string]UpstreamStatus, len(tbl.upstreams))
	for name, up := range tbl.upstreams {
		us := UpstreamStatus{Balancer: up.cfg.Balancer, Retries: up.retries, Targets: make([]TargetStatus, 0, len(up.set.Load().targets))}
		for _, t := range up.set.Load().targets {
			ts := TargetStatus{
				URL:        t.String(),
				Weight:     t.Weight,
				Healthy:    t.Healthy(),
				Ejected:    t.Ejected(now),
				Inflight:   t.Inflight(),
				Requests:   t.Requests(),
				Failures:   t.Failures(),
				Ejections:  t.ejections.Load(),
				EWMAMillis: float64(t.EWMA().Microseconds()) / 1000,
			}
			if ts.Ejected {
				u := t.EjectedUntil().UTC()
				ts.EjectedUntil = &u
			}
			us.Targets = append(us.Targets, ts)
		}
		out[name] = us
	}
	return out
}

// AdminHandler is the admin listener's handler: the telemetry pages
// (/metrics, /debug/pprof/, /healthz) plus GET /admin/upstreams. It is
// never mounted on the public listener.
func (g *Gateway) AdminHandler(token string) http.Handler {
	return g.tel.AdminHandler(token, map[string]http.Handler{
		"GET /admin/upstreams": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(g.Upstreams())
		}),
	})
}
