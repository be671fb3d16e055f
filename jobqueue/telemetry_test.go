package jobqueue_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/telemetry"
)

type probeIn struct {
	Kind string `json:"kind"`
	N    int    `json:"n"`
}

type probeOut struct {
	Double int `json:"double"`
}

// TestTelemetry checks the trace shape of SPEC "Telemetry" (SERVER,
// PRODUCER, CONSUMER linked to the producer, CLIENT per PUT), that a typed
// handler runs under the batch span with the worker's pprof trace_id label
// and an uncancelled context, and the Prometheus names of every metric.
func TestTelemetry(t *testing.T) {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "jobqueue-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	tel.TracerProvider = tp

	cfg := testConfig()
	cfg.MaxWorkers = 1
	file := fileSink(t)
	sink := newGateSink(file)
	sink.fail = 1 // one failed PUT, then success
	q, url := startQueue(t, cfg, sink, jobqueue.WithTelemetry(tel))

	var mu sync.Mutex
	var seen []struct {
		label   string
		span    trace.SpanContext
		ctxErr  error
		payload probeIn
	}
	if err := q.Register("probe", func(ctx context.Context, in probeIn) (probeOut, error) {
		l, _ := pprof.Label(ctx, telemetry.LabelTraceID)
		mu.Lock()
		seen = append(seen, struct {
			label   string
			span    trace.SpanContext
			ctxErr  error
			payload probeIn
		}{l, trace.SpanContextFromContext(ctx), ctx.Err(), in})
		mu.Unlock()
		return probeOut{Double: in.N * 2}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := q.Register("fails", func(context.Context, map[string]any) (*probeOut, error) {
		return nil, errors.New("refused by handler")
	}); err != nil {
		t.Fatal(err)
	}

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	body := `{"version":"v","data":[{"kind":"probe","n":21},{"kind":"fails"},{"kind":"unknown"},{"kind":"probe","n":"NaN"}]}`
	if r, err := post(t, nil, url, []byte(body), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"); err != nil || r.code != 202 {
		t.Fatal(r, err)
	}
	if r, _ := post(t, nil, url, []byte(`{"data":[1]}`)); r.code != 400 {
		t.Fatal(r)
	}
	if err := q.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	// Stored lines carry the request's trace and the handler outcomes.
	var lines []line
	for _, ls := range readBucket(t, file.Bucket) {
		lines = append(lines, ls...)
	}
	if len(lines) != 4 {
		t.Fatalf("%d lines", len(lines))
	}
	byKind := map[string]line{}
	for _, l := range lines {
		if l.TraceID != traceID {
			t.Errorf("line trace_id %s, want the request's %s", l.TraceID, traceID)
		}
		var p map[string]any
		_ = json.Unmarshal(l.Payload, &p)
		k, _ := p["kind"].(string)
		if _, ok := p["n"].(string); ok {
			k = "probe-bad"
		}
		byKind[k] = l
	}
	if got := string(byKind["probe"].Result); got != `{"double":42}` {
		t.Errorf("probe result %s", got)
	}
	if e := byKind["fails"].Error; !strings.Contains(e, "refused by handler") || byKind["fails"].Result != nil {
		t.Errorf("fails: error %q result %s", e, byKind["fails"].Result)
	}
	if l := byKind["unknown"]; l.Error != "" || l.Result != nil {
		t.Errorf("unknown kind got %+v", l)
	}
	if e := byKind["probe-bad"].Error; !strings.Contains(e, "decode payload") {
		t.Errorf("undecodable payload: error %q", e)
	}

	// Spans.
	var server, producer, consumer sdktrace.ReadOnlySpan
	var clients []sdktrace.ReadOnlySpan
	for _, s := range spans.GetSpans().Snapshots() {
		switch s.SpanKind() {
		case trace.SpanKindServer:
			if s.SpanContext().TraceID().String() == traceID {
				server = s
			} else if s.Status().Code.String() == "Error" {
				t.Errorf("400 answer set SERVER span status %v", s.Status())
			}
		case trace.SpanKindProducer:
			producer = s
		case trace.SpanKindConsumer:
			consumer = s
		case trace.SpanKindClient:
			clients = append(clients, s)
		}
	}
	if server == nil || producer == nil || consumer == nil {
		t.Fatalf("missing spans: server %v producer %v consumer %v", server != nil, producer != nil, consumer != nil)
	}
	if producer.Parent().SpanID() != server.SpanContext().SpanID() {
		t.Error("PRODUCER is not a child of the SERVER span")
	}
	linked := false
	for _, l := range consumer.Links() {
		linked = linked || l.SpanContext.SpanID() == producer.SpanContext().SpanID()
	}
	if !linked {
		t.Error("CONSUMER span has no link to the PRODUCER span")
	}
	if len(clients) != 2 || clients[0].Status().Code.String() != "Error" || clients[1].Status().Code.String() == "Error" {
		t.Errorf("want 2 CLIENT spans (failed, then ok), got %d", len(clients))
	}
	for _, c := range clients {
		if c.Parent().SpanID() != consumer.SpanContext().SpanID() {
			t.Error("CLIENT span not under the CONSUMER span")
		}
	}
	if len(seen) != 1 {
		t.Fatalf("probe handler ran %d times, want 1", len(seen))
	}
	s := seen[0]
	if s.span.SpanID() != consumer.SpanContext().SpanID() || s.ctxErr != nil || s.payload.N != 21 {
		t.Errorf("handler ctx: span %v (consumer %v), err %v, in %+v", s.span.SpanID(), consumer.SpanContext().SpanID(), s.ctxErr, s.payload)
	}
	if s.label != consumer.SpanContext().TraceID().String() {
		t.Errorf("worker pprof label trace_id=%q, want the batch span's %s", s.label, consumer.SpanContext().TraceID())
	}

	// Metrics as Prometheus serves them on the admin listener.
	srv := tel.AdminHandler("", nil)
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, mustReq(t, "/metrics"))
	text := rec.Body.String()
	for _, name := range []string{
		`http_server_request_duration_seconds_bucket{http_request_method="POST",http_response_status_code="202",http_route="/v1/payloads"`,
		"wardgate_queue_depth{", "wardgate_queue_waiting{", "wardgate_queue_capacity{", "wardgate_queue_oldest_age_seconds{",
		"wardgate_workers_busy{", "wardgate_workers_max{",
		"wardgate_payloads_accepted_total{", `wardgate_payloads_rejected_total{`, `reason="bad_request"`,
		"wardgate_payloads_stored_total{", "wardgate_batch_size_bucket{", "wardgate_batch_flush_duration_seconds_bucket{",
		"wardgate_blob_put_duration_seconds_bucket{", "wardgate_blob_put_bytes_total{", "wardgate_blob_put_errors_total{",
	} {
		if !strings.Contains(text, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

func TestRegisterChecksSignature(t *testing.T) {
	q, err := jobqueue.New(testConfig(), newGateSink(fileSink(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fn   any
		want string
	}{
		{nil, "handler is nil"},
		{42, "not a func"},
		{(func(context.Context, int) (int, error))(nil), "nil func"},
		{func(context.Context) (int, error) { return 0, nil }, "takes 1 arguments, want 2"},
		{func(int, int) (int, error) { return 0, nil }, "first argument is int, want context.Context"},
		{func(context.Context, int) error { return nil }, "returns 1 results, want 2"},
		{func(context.Context, int) (int, string) { return 0, "" }, "last result is string, want error"},
		{func(context.Context, chan int) (int, error) { return 0, nil }, "chan int cannot go through encoding/json"},
		{func(context.Context, ...int) (int, error) { return 0, nil }, "variadic"},
	} {
		err := q.Register("k", tc.fn)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `Register("k")`) {
			t.Errorf("Register(%T) = %v, want an error saying %q", tc.fn, err, tc.want)
		}
	}
	if err := q.Register("", func(context.Context, int) (int, error) { return 0, nil }); err == nil {
		t.Error("empty kind accepted")
	}
	ok := func(context.Context, struct{ A int }) (any, error) { return nil, nil }
	if err := q.Register("k", ok); err != nil {
		t.Fatal(err)
	}
	if err := q.Register("k", ok); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate: %v", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*jobqueue.Config)
		want string
	}{
		{func(c *jobqueue.Config) { c.MaxWorkers = 0 }, "MAX_WORKERS"},
		{func(c *jobqueue.Config) { c.MaxQueue = -1 }, "MAX_QUEUE"},
		{func(c *jobqueue.Config) { c.AckMode = "sometimes" }, "ACK_MODE"},
		{func(c *jobqueue.Config) { c.Compression = "zstd" }, "COMPRESSION"},
		{func(c *jobqueue.Config) { c.Instance = "a/b" }, "INSTANCE"},
		{func(c *jobqueue.Config) { c.BatchMaxWait = 0 }, "BATCH_MAX_WAIT"},
	} {
		c := testConfig()
		tc.mut(&c)
		if _, err := jobqueue.New(c, newGateSink(nil)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New = %v, want an error naming %s", err, tc.want)
		}
	}
}

func mustReq(t *testing.T, path string) *http.Request {
	r, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCountersStartAtZero: before any request, /metrics already has every
// counter at 0, each rejection reason included, so dashboards show 0
// rather than "No data".
func TestCountersStartAtZero(t *testing.T) {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "jobqueue-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	startQueue(t, testConfig(), fileSink(t), jobqueue.WithTelemetry(tel))
	rec := httptest.NewRecorder()
	tel.AdminHandler("", nil).ServeHTTP(rec, mustReq(t, "/metrics"))
	text := rec.Body.String()
	series := []string{"wardgate_payloads_accepted_total", "wardgate_payloads_stored_total", "wardgate_blob_put_bytes_total", "wardgate_blob_put_errors_total",
		"wardgate_blob_put_timeouts_total", "wardgate_payloads_spilled_total", "wardgate_payloads_recovered_total"}
	for _, reason := range []string{"full", "too_large", "bad_request", "unauthorized", "unsupported_media", "method", "draining", "not_stored", "ack_timeout"} {
		series = append(series, `wardgate_payloads_rejected_total{otel_scope_name="github.com/wardgate/wardgate/jobqueue",otel_scope_schema_url="",otel_scope_version="",reason="`+reason+`"}`)
	}
	for _, s := range series {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s) + `(\{[^}]*\})? 0$`)
		if !re.MatchString(text) {
			t.Errorf("/metrics has no %s at 0", s)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
}

// A batch carrying a sampled request is sampled even when the ratio would
// drop it as a root: the CONSUMER span starts with its producer link.
func TestBatchSpanFollowsSampledProducer(t *testing.T) {
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "jobqueue-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(ctx)
	spans := tracetest.NewInMemoryExporter()
	tel.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans),
		sdktrace.WithSampler(telemetry.NewLinkSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0)))))

	cfg := testConfig()
	cfg.MaxWorkers = 1
	q, url := startQueue(t, cfg, fileSink(t), jobqueue.WithTelemetry(tel))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4737"
	if r, err := post(t, nil, url, []byte(`{"version":"v","data":[{"n":1}]}`), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01"); err != nil || r.code != 202 {
		t.Fatal(r, err)
	}
	if err := q.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	var consumer, put bool
	for _, s := range spans.GetSpans().Snapshots() {
		switch s.SpanKind() {
		case trace.SpanKindConsumer:
			consumer = true
			if len(s.Links()) == 0 || s.Links()[0].SpanContext.TraceID().String() != traceID {
				t.Errorf("consumer span links %v, want the request's producer", s.Links())
			}
		case trace.SpanKindClient:
			put = true
		}
	}
	if !consumer || !put {
		t.Errorf("exported consumer=%v put=%v: the batch of a sampled request was dropped by the ratio", consumer, put)
	}
}
