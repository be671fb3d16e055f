// Package telemetry sets up OpenTelemetry for every wardgate process: one
// resource, a tracer provider, a meter provider whose readings are served as
// Prometheus text on the admin listener, Go runtime metrics, and a shutdown
// that flushes what is buffered.
//
// Configuration comes from the standard OTEL_* environment variables, read by
// the SDK and by go.opentelemetry.io/contrib/exporters/autoexport; nothing here
// re-parses them. Two defaults differ from autoexport's: with
// OTEL_TRACES_EXPORTER unset, tracing is off (autoexport would dial an OTLP
// collector that usually is not there), and Prometheus metrics are always on
// the admin listener rather than on a port of their own.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry holds the providers of one process. Pass it (or its fields) to
// the components that record signals; there is no global provider.
type Telemetry struct {
	Service        string
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	// Registry is what /metrics on the admin listener serves: OTel metrics
	// translated by the Prometheus exporter, plus Go runtime and process
	// collectors.
	Registry *prometheus.Registry
	// DebugToken, when set, is required (as a bearer token) for
	// /debug/pprof/ on the admin listener, while /metrics and /healthz
	// stay open. Setup reads it from the file named by
	// WARDGATE_ADMIN_TOKEN_FILE (see admintoken.go); set it before
	// AdminHandler.
	DebugToken string

	shutdown []func(context.Context) error
}

// Setup builds the providers for service, the default for
// OTEL_SERVICE_NAME; Telemetry.Service is the name that won. Call Shutdown
// before the process exits.
func Setup(ctx context.Context, service string) (*Telemetry, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithProcessPID(),
		resource.WithHost(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	// OTEL_SERVICE_NAME wins over the caller's default, so log lines carry
	// the same service name as the process's spans (wardgate up names its
	// children wardgate-jobqueue-1, -2, ... that way).
	if v, ok := res.Set().Value(semconv.ServiceNameKey); ok && v.AsString() != "" {
		service = v.AsString()
	}
	debugToken, err := adminTokenFromEnv()
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	t := &Telemetry{
		Service:    service,
		DebugToken: debugToken,
		Registry:   prometheus.NewRegistry(),
		Propagator: propagation.NewCompositeTextMapPropagator(
			propagation.TraceContext{}, propagation.Baggage{}),
	}
	t.Registry.MustRegister(
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler, collectors.MetricsGC, collectors.MetricsMemory)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	// Metrics: Prometheus on the admin registry, always; plus whatever
	// OTEL_METRICS_EXPORTER asks for (otlp, console) through autoexport.
	promExp, err := otelprom.New(otelprom.WithRegisterer(t.Registry))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	if v := os.Getenv("OTEL_METRICS_EXPORTER"); v != "" && v != "none" && v != "prometheus" {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTEL_METRICS_EXPORTER=%q: %w", v, err)
		}
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	t.MeterProvider = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)

	// Traces: off unless OTEL_TRACES_EXPORTER names an exporter; the sampler
	// comes from OTEL_TRACES_SAMPLER(_ARG) (see samplerFromEnv).
	//
	// "Off" still hands out real trace and span IDs (an SDK provider that
	// samples nothing and exports nothing): error bodies, log lines and pprof
	// labels keep a trace_id an SRE can grep for, at the cost of an ID
	// generation per span.
	if v := os.Getenv("OTEL_TRACES_EXPORTER"); v == "" || v == "none" {
		t.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.NeverSample()))
	} else {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q: %w", v, err)
		}
		sampler, err := samplerFromEnv()
		if err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp),
			sdktrace.WithSampler(sampler), sdktrace.WithRawSpanLimits(spanLimits()))
		t.TracerProvider = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	return t, nil
}

// Shutdown flushes buffered spans and metrics. It is safe to call once.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		if err := t.shutdown[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	t.shutdown = nil
	return errors.Join(errs...)
}

// spanLimits are the SDK's limits from OTEL_SPAN_* and OTEL_ATTRIBUTE_*,
// except that links are unlimited unless OTEL_SPAN_LINK_COUNT_LIMIT says
// otherwise. The SDK's default of 128 would silently drop most links of a
// job-queue batch (one per collection it carries, up to BATCH_MAX_PAYLOADS),
// and the link is the only way from a request to the batch that stored it.
// Links stay bounded: a batch is bounded, and other spans carry none.
func spanLimits() sdktrace.SpanLimits {
	l := sdktrace.NewSpanLimits()
	if os.Getenv("OTEL_SPAN_LINK_COUNT_LIMIT") == "" {
		l.LinkCountLimit = -1
	}
	return l
}
