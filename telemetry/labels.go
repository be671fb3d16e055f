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
// trace and span IDs of ctx's span (when valid) and by extra key/value pairs
// (an odd trailing key is dropped). The ctx passed to f carries the labels,
// so goroutines f starts with pprof.SetGoroutineLabels or pprof.Do inherit
// them.
//
// Unlike pprof.Do, the previous labels are restored only when f returns
// normally. pprof.Do restores them in a defer, which runs while a panic
// unwinds, so the crash traceback (GOTRACEBACK=crash with
// GODEBUG=tracebacklabels=1) and the core it leaves would show the
// panicking goroutine without its trace_id: the one goroutine whose trace an
// SRE wants most. If the panic is recovered further up, the goroutine keeps
// these labels until it sets others; net/http's own recover ends the
// connection's goroutine right after logging the panic, so nothing is
// mislabelled for long.
func DoWithSpanLabels(ctx context.Context, f func(context.Context), extra ...string) {
	n := len(extra) &^ 1 // whole pairs only
	kv := extra[:n:n]    // appending copies: the caller's slice is never written
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		kv = append(kv, LabelTraceID, sc.TraceID().String(), LabelSpanID, sc.SpanID().String())
	}
	if len(kv) == 0 {
		f(ctx)
		return
	}
	lctx := pprof.WithLabels(ctx, pprof.Labels(kv...))
	pprof.SetGoroutineLabels(lctx)
	f(lctx)
	pprof.SetGoroutineLabels(ctx) // not deferred: see above
}
