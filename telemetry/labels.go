package telemetry

import (
	"context"
	"runtime/pprof"

	"go.opentelemetry.io/otel/trace"
)

// pprof label keys. Goroutine profiles, tracebacks with
// GODEBUG=tracebacklabels=1, and `wardgate diag analyze` on a core all show
// these, which is how a stuck goroutine is tied back to its trace.
const (
	LabelTraceID = "trace_id"
	LabelSpanID  = "span_id"
	LabelRoute   = "http_route"
)

// DoWithSpanLabels runs f with the goroutine's pprof labels extended by the
// trace and span IDs of ctx's span (when valid) and by extra key/value pairs.
// The previous labels are restored when f returns.
func DoWithSpanLabels(ctx context.Context, f func(context.Context), extra ...string) {
	kv := append([]string(nil), extra...)
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		kv = append(kv, LabelTraceID, sc.TraceID().String(), LabelSpanID, sc.SpanID().String())
	}
	if len(kv) == 0 {
		f(ctx)
		return
	}
	pprof.Do(ctx, pprof.Labels(kv...), f)
}
