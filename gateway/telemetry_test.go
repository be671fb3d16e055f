package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardgate/wardgate/telemetry"
)

// TestSpans records the spans of a retried request and checks their
// names, kinds, parentage, resend count and error statuses.
func TestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	mp := sdkmetric.NewMeterProvider()
	t.Cleanup(func() { tp.Shutdown(context.Background()); mp.Shutdown(context.Background()) })
	tel := &telemetry.Telemetry{
		Service: "t", TracerProvider: tp, MeterProvider: mp, Registry: prometheus.NewRegistry(),
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	var upstreamTP string
	good := newBackend(t, "good", func(w http.ResponseWriter, r *http.Request) {
		upstreamTP = r.Header.Get("Traceparent")
		if r.URL.Path == "/v1/missing" {
			w.WriteHeader(404)
		}
	})
	cfg, err := Parse([]byte(`
routes: [{path_prefix: /v1/, upstream: u}]
upstreams:
  u:
    balancer: weighted_round_robin
    retries: 1
    passive: {fail_threshold: 0}
    targets: [{url: "` + deadURL(t) + `"}, {url: "` + good.URL + `"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(context.Background(), cfg, tel, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/jobs", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want server + 2 client attempts", len(spans))
	}
	var server sdktrace.ReadOnlySpan
	var clients []sdktrace.ReadOnlySpan
	for _, s := range spans {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			server = s
		case trace.SpanKindClient:
			clients = append(clients, s)
		}
	}
	if server == nil || server.Name() != "POST /v1/" || server.Parent().SpanID().String() != "00f067aa0ba902b7" ||
		server.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("server span %v", server)
	}
	if server.Status().Code == codes.Error {
		t.Errorf("a request that succeeded on retry marked the server span as error")
	}
	attr := func(s sdktrace.ReadOnlySpan, k attribute.Key) (attribute.Value, bool) {
		for _, kv := range s.Attributes() {
			if kv.Key == k {
				return kv.Value, true
			}
		}
		return attribute.Value{}, false
	}
	first, second := clients[0], clients[1]
	if first.StartTime().After(second.StartTime()) {
		first, second = second, first
	}
	for _, c := range clients {
		if c.Parent().SpanID() != server.SpanContext().SpanID() || c.Name() != "POST" {
			t.Errorf("client span %q not a child of the server span", c.Name())
		}
		if v, ok := attr(c, "server.address"); !ok || v.AsString() != "127.0.0.1" {
			t.Errorf("server.address = %v", v)
		}
		if _, ok := attr(c, "server.port"); !ok {
			t.Errorf("no server.port")
		}
	}
	if _, ok := attr(first, "http.request.resend_count"); ok {
		t.Errorf("first attempt has a resend count")
	}
	if first.Status().Code != codes.Error {
		t.Errorf("refused attempt not marked as error")
	}
	if v, ok := attr(second, "http.request.resend_count"); !ok || v.AsInt64() != 1 {
		t.Errorf("retry resend_count = %v, %v", v, ok)
	}
	if second.Status().Code == codes.Error {
		t.Errorf("successful retry marked as error")
	}
	if want := second.SpanContext().SpanID().String(); upstreamTP == "" || upstreamTP[36:52] != want {
		t.Errorf("upstream traceparent %q, want parent span %s (the CLIENT span)", upstreamTP, want)
	}

	// A 404 from the upstream is not a server error.
	rec2 := len(rec.Ended())
	resp, err = http.Get(srv.URL + "/v1/missing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, s := range rec.Ended()[rec2:] {
		if s.Status().Code == codes.Error {
			t.Errorf("404 marked span %q as error", s.Name())
		}
	}
}

// TestPprofLabels: while a request is in flight, its goroutine carries the
// trace_id, span_id and http_route labels in the goroutine profile.
func TestPprofLabels(t *testing.T) {
	inside := make(chan struct{})
	release := make(chan struct{})
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		close(inside)
		<-release
	})
	f := newFixture(t, `
routes: [{path_prefix: /v1/, upstream: u}]
upstreams: {u: {targets: [{url: "`+be.URL+`"}]}}
`)
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodGet, f.public.URL+"/v1/x", nil)
		req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-inside
	var buf strings.Builder
	pprof.Lookup("goroutine").WriteTo(&buf, 1)
	close(release)
	<-done
	prof := buf.String()
	for _, want := range []string{`"http_route":"/v1/"`, `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`, `"span_id":"`} {
		if !strings.Contains(prof, want) {
			t.Errorf("goroutine profile lacks label %s", want)
		}
	}
}
