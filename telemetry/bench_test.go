package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardgate/wardgate/telemetry"
)

// BenchmarkRequestSpans measures what tracing costs per proxied request,
// through the real pipeline Setup builds from OTEL_* variables: the
// gateway's two spans (a SERVER span with the route's attributes and a
// CLIENT span per upstream attempt), batched and exported as OTLP/HTTP
// protobuf to a loopback server that reads and drops every export.
//
// It reports cpu-µs/op: the process's CPU time (user + system, all
// threads: the request path, the batch span processor, the exporter's
// encoding and HTTP client, and the receiving server's read of the body)
// divided by the requests, including the final flush. That is the figure
// that bounds throughput on a saturated machine; ns/op alone would miss the
// exporter's goroutine. Compare the modes of one run, not runs.
func BenchmarkRequestSpans(b *testing.B) {
	var exports, bytes atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		exports.Add(1)
		bytes.Add(n)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()

	for _, mode := range []struct {
		name string
		env  map[string]string
	}{
		{"off", nil},
		{"ratio1pct", map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}},
		{"always_on", map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}},
		{"always_on-gzip", map[string]string{"OTEL_TRACES_SAMPLER": "always_on", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_EXPORTER_OTLP_COMPRESSION"} {
				b.Setenv(k, "")
			}
			b.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
			b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL)
			if mode.env != nil {
				b.Setenv("OTEL_TRACES_EXPORTER", "otlp")
				for k, v := range mode.env {
					b.Setenv(k, v)
				}
			}
			tel, err := telemetry.Setup(context.Background(), "bench")
			if err != nil {
				b.Fatal(err)
			}
			tr := tel.TracerProvider.Tracer("bench")
			serverAttrs := []attribute.KeyValue{
				attribute.String("http.request.method", "POST"),
				attribute.String("url.path", "/v1/payloads"),
				attribute.String("client.address", "127.0.0.1"),
				attribute.String("http.route", "/v1/"),
			}
			clientAttrs := []attribute.KeyValue{
				attribute.String("http.request.method", "POST"),
				attribute.String("server.address", "127.0.0.1"),
				attribute.Int("server.port", 9001),
				attribute.String("url.full", "http://127.0.0.1:9001/v1/payloads"),
			}
			serverKind := trace.WithSpanKind(trace.SpanKindServer)
			clientKind := trace.WithSpanKind(trace.SpanKindClient)
			exp0 := exports.Load()
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				ctx, s := tr.Start(context.Background(), "POST /v1/", serverKind)
				if s.IsRecording() {
					s.SetAttributes(serverAttrs...)
				}
				_, c := tr.Start(ctx, "POST", clientKind)
				if c.IsRecording() {
					c.SetAttributes(clientAttrs...)
					c.SetAttributes(attribute.Int("http.response.status_code", 202))
				}
				c.End()
				if s.IsRecording() {
					s.SetAttributes(attribute.Int("http.response.status_code", 202))
					s.SetStatus(codes.Unset, "")
				}
				s.End()
			}
			if err := tel.Shutdown(context.Background()); err != nil {
				b.Fatal(err)
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			if mode.name == "always_on" && b.N > 1000 && exports.Load() == exp0 {
				b.Fatal("always_on exported nothing: the benchmark measures no export")
			}
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
