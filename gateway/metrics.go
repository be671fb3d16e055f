package gateway

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// instrumentationName is the OTel scope of the gateway's spans and metrics.
const instrumentationName = "github.com/wardgate/wardgate/gateway"

// durationBuckets are the OTel semantic-convention boundaries for HTTP
// durations (seconds).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// The values of wardgate.gateway.reloads' result label.
const (
	reloadOK    = "ok"
	reloadError = "error"
)

// reloadResults lists every result label value, to start each at 0.
var reloadResults = []string{reloadOK, reloadError}

// metrics holds the gateway's instruments. Per-target counts (requests,
// failures, inflight, health, ejections) are observable instruments read
// from the live target state at collection time, so /metrics and
// /admin/upstreams can never disagree and the hot path records nothing
// twice.
type metrics struct {
	serverDuration metric.Float64Histogram
	clientDuration metric.Float64Histogram
	retries        metric.Int64Counter
	reloads        metric.Int64Counter
	// discoveryErrors counts failed DNS resolutions of discovered
	// upstreams by reason (timeout, servfail, empty, ...).
	discoveryErrors metric.Int64Counter
	reg             metric.Registration
}

func newMetrics(mp metric.MeterProvider, g *Gateway) (*metrics, error) {
	meter := mp.Meter(instrumentationName)
	m := &metrics{}
	var err error
	if m.serverDuration, err = meter.Float64Histogram("http.server.request.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of HTTP server requests."),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	if m.clientDuration, err = meter.Float64Histogram("http.client.request.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of HTTP client requests (one per upstream attempt)."),
		metric.WithExplicitBucketBoundaries(durationBuckets...)); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	if m.retries, err = meter.Int64Counter("wardgate.upstream.retries",
		metric.WithUnit("{retry}"), metric.WithDescription("Upstream attempts that were retries of a failed attempt.")); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	if m.reloads, err = meter.Int64Counter("wardgate.gateway.reloads",
		metric.WithUnit("{reload}"), metric.WithDescription("Config reloads by result (ok, error).")); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	// Every known series starts at 0 (the Prometheus instrumentation
	// guideline): a healthy gateway that never reloaded shows "0 reloads",
	// not "No data", and the first reload is a rate, not a new series.
	// Retries are started per upstream as each table is built (apply).
	for _, result := range reloadResults {
		m.reloads.Add(context.Background(), 0, metric.WithAttributes(attribute.String("result", result)))
	}
	if m.discoveryErrors, err = meter.Int64Counter("wardgate.discovery.errors",
		metric.WithUnit("{error}"), metric.WithDescription("Failed DNS resolutions of discovered upstreams by reason; the last good targets are kept.")); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	discovered, err := meter.Int64ObservableGauge("wardgate.discovery.targets",
		metric.WithUnit("{target}"), metric.WithDescription("Targets currently discovered from DNS per upstream."))
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	lastGood, err := meter.Float64ObservableGauge("wardgate.discovery.last_success",
		metric.WithUnit("s"), metric.WithDescription("Unix time of the last successful DNS resolution per discovered upstream (its targets are that old at most)."))
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	requests, err := meter.Int64ObservableCounter("wardgate.upstream.requests",
		metric.WithUnit("{request}"), metric.WithDescription("Finished attempts per upstream target."))
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	failures, err := meter.Int64ObservableCounter("wardgate.upstream.failures",
		metric.WithUnit("{request}"), metric.WithDescription("Failed attempts per upstream target (transport error, 502, 504)."))
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	ejections, err := meter.Int64ObservableCounter("wardgate.upstream.ejections",
		metric.WithUnit("{ejection}"), metric.WithDescription("Passive ejections per upstream target."))
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	inflight, err := meter.Int64ObservableGauge("wardgate.upstream.inflight",
		metric.WithUnit("{request}"), metric.WithDescription("Requests in flight per upstream target."))
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	healthy, err := meter.Int64ObservableGauge("wardgate.upstream.healthy",
		metric.WithDescription("1 when the target may receive traffic (healthy and not ejected), else 0."))
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	m.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		tbl := g.table.Load()
		if tbl == nil {
			return nil
		}
		now := time.Now()
		for _, up := range tbl.upstreams {
			if up.cfg.Discover != nil {
				name := metric.WithAttributeSet(attribute.NewSet(attribute.String("upstream", up.name)))
				o.ObserveInt64(discovered, int64(len(up.set.Load().targets)), name)
				if at := up.resolvedAt.Load(); at != 0 {
					o.ObserveFloat64(lastGood, float64(at)/1e9, name)
				}
			}
			for _, t := range up.set.Load().targets {
				attrs := metric.WithAttributeSet(attribute.NewSet(
					attribute.String("upstream", up.name), attribute.String("target", t.String())))
				o.ObserveInt64(requests, int64(t.Requests()), attrs)
				o.ObserveInt64(failures, int64(t.Failures()), attrs)
				o.ObserveInt64(ejections, int64(t.ejections.Load()), attrs)
				o.ObserveInt64(inflight, t.Inflight(), attrs)
				h := int64(0)
				if t.Available(now) {
					h = 1
				}
				o.ObserveInt64(healthy, h, attrs)
			}
		}
		return nil
	}, requests, failures, ejections, inflight, healthy, discovered, lastGood)
	if err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	return m, nil
}
