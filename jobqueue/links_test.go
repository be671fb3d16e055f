package jobqueue_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/telemetry"
)

// Under a ratio sampler, every sampled request must lead to the batch that
// stored it: its PRODUCER span is exported, and an exported CONSUMER span
// links to it. The batch here carries 300 collections (more than the SDK's
// default 128 links) and starts with an unsampled one (the only link a
// sampler could see at start). Setup's real pipeline from OTEL_* variables,
// exported over OTLP/HTTP.
func TestEverySampledRequestReachesItsBatch(t *testing.T) {
	store := &testutil.OTLPReceiver{}
	srv := httptest.NewServer(store)
	defer srv.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0") // only callers decide
	t.Setenv("OTEL_SPAN_LINK_COUNT_LIMIT", "")
	tel, err := telemetry.Setup(context.Background(), "jobqueue-links-test")
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())

	cfg := testConfig()
	cfg.MaxWorkers = 1
	cfg.BatchMaxPayloads = 1000
	cfg.BatchMaxWait = time.Minute // one batch, flushed by the drain
	q, url := startQueue(t, cfg, fileSink(t), jobqueue.WithTelemetry(tel))

	const n = 300
	sampled := map[string]bool{} // trace ID -> sampled by the caller
	for i := range n {
		traceID := fmt.Sprintf("%032x", i+1)
		flags := "00"
		if i%3 == 1 { // the first collection is unsampled
			flags = "01"
		}
		sampled[traceID] = flags == "01"
		r, err := post(t, nil, url, collection(1, "links"), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-"+flags)
		if err != nil || r.code != http.StatusAccepted {
			t.Fatalf("post %d: %v %v", i, r.code, err)
		}
	}
	if err := q.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	if errs := store.Errors(); len(errs) > 0 {
		t.Fatalf("receiver errors: %v", errs)
	}
	producers := map[string]string{} // trace ID -> exported PRODUCER span ID
	links := map[string]string{}     // linked trace ID -> linked span ID
	consumers := 0
	for _, s := range store.Spans() {
		switch s.Kind {
		case tracepb.Span_SPAN_KIND_PRODUCER:
			producers[hex.EncodeToString(s.TraceId)] = hex.EncodeToString(s.SpanId)
		case tracepb.Span_SPAN_KIND_CONSUMER:
			consumers++
			if s.DroppedLinksCount > 0 {
				t.Errorf("batch span dropped %d links", s.DroppedLinksCount)
			}
			for _, l := range s.Links {
				links[hex.EncodeToString(l.TraceId)] = hex.EncodeToString(l.SpanId)
			}
		}
	}
	if consumers == 0 {
		t.Fatal("no batch span exported")
	}
	if len(links) != n {
		t.Errorf("batch spans link %d collections, want all %d", len(links), n)
	}
	nSampled := 0
	for traceID, s := range sampled {
		p, exported := producers[traceID]
		switch {
		case s && !exported:
			t.Errorf("trace %s: sampled by the caller but no PRODUCER span exported", traceID)
		case !s && exported:
			t.Errorf("trace %s: unsampled by the caller but its PRODUCER span was exported", traceID)
		case s && links[traceID] != p:
			t.Errorf("trace %s: PRODUCER span %s, but the batch links %q", traceID, p, links[traceID])
		}
		if s {
			nSampled++
		}
	}
	if nSampled != n/3 {
		t.Fatalf("test setup: %d sampled requests, want %d", nSampled, n/3)
	}
}
