package telemetry

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestSamplerFromEnvLinkedBatchFollowsSampledProducer(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "0") // nothing sampled at the root by ratio
	s, err := samplerFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s))
	defer tp.Shutdown(context.Background())
	tr := tp.Tracer("test")

	sampledProducer := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled,
	})
	droppedProducer := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{2}, SpanID: trace.SpanID{2},
	})

	_, batch := tr.Start(context.Background(), "batch", trace.WithLinks(
		trace.Link{SpanContext: droppedProducer}, trace.Link{SpanContext: sampledProducer}))
	if !batch.SpanContext().IsSampled() {
		t.Error("a batch linked to a sampled producer was not sampled")
	}
	_, lone := tr.Start(context.Background(), "batch", trace.WithLinks(trace.Link{SpanContext: droppedProducer}))
	if lone.SpanContext().IsSampled() {
		t.Error("a batch linked only to unsampled producers was sampled at ratio 0")
	}
	_, root := tr.Start(context.Background(), "request")
	if root.SpanContext().IsSampled() {
		t.Error("a plain root span was sampled at ratio 0")
	}
	// A child of an unsampled parent stays unsampled even with a sampled link:
	// the parent's decision wins, as parentbased says.
	ctx := trace.ContextWithSpanContext(context.Background(), droppedProducer)
	_, child := tr.Start(ctx, "child", trace.WithLinks(trace.Link{SpanContext: sampledProducer}))
	if child.SpanContext().IsSampled() {
		t.Error("a child of an unsampled parent was sampled")
	}
}

func TestSamplerFromEnvNames(t *testing.T) {
	for _, tc := range []struct {
		name, arg string
		ok        bool
	}{
		{"", "", true},
		{"always_on", "", true},
		{"always_off", "", true},
		{"traceidratio", "0.5", true},
		{"parentbased_always_on", "", true},
		{"parentbased_always_off", "", true},
		{"parentbased_traceidratio", "0.01", true},
		{"parentbased_traceidratio", "2", false},
		{"parentbased_traceidratio", "x", false},
		{"jaeger_remote", "", false},
	} {
		t.Setenv("OTEL_TRACES_SAMPLER", tc.name)
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", tc.arg)
		_, err := samplerFromEnv()
		if (err == nil) != tc.ok {
			t.Errorf("OTEL_TRACES_SAMPLER=%q ARG=%q: err=%v, want ok=%v", tc.name, tc.arg, err, tc.ok)
		}
	}
}

// A batch (a root CONSUMER span) is sampled whatever the ratio: it starts
// before it knows which requests it will carry, and a sampled request's
// link must lead to it. always_off still means nothing.
func TestSamplerFromEnvKeepsBatches(t *testing.T) {
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{2}, SpanID: trace.SpanID{2}})
	for _, tc := range []struct {
		sampler, arg string
		want         bool
	}{
		{"parentbased_traceidratio", "0", true},
		{"traceidratio", "0", true},
		{"parentbased_always_off", "", true},
		{"always_off", "", false},
	} {
		t.Setenv("OTEL_TRACES_SAMPLER", tc.sampler)
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", tc.arg)
		s, err := samplerFromEnv()
		if err != nil {
			t.Fatal(err)
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(s))
		tr := tp.Tracer("test")
		_, batch := tr.Start(context.Background(), "process payloads", trace.WithNewRoot(),
			trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(trace.Link{SpanContext: unsampled}))
		if got := batch.SpanContext().IsSampled(); got != tc.want {
			t.Errorf("%s %s: batch sampled=%v, want %v", tc.sampler, tc.arg, got, tc.want)
		}
		_, req := tr.Start(context.Background(), "POST /v1/payloads", trace.WithSpanKind(trace.SpanKindServer))
		if req.SpanContext().IsSampled() {
			t.Errorf("%s %s: a request root was sampled", tc.sampler, tc.arg)
		}
		_ = tp.Shutdown(context.Background())
	}
}
