package telemetry

import (
	"context"
	"io"
	"log/slog"
	"slices"

	"go.opentelemetry.io/otel/trace"
)

// NewLogger returns a JSON slog logger whose records carry trace_id and
// span_id whenever the context passed to the *Context logging methods holds
// a valid span context (sampled or not: a trace ID is worth logging even
// when the span is not exported). The two keys are always top-level, also
// under WithGroup, so one filter finds every line of a trace.
func NewLogger(w io.Writer, service string, level slog.Leveler) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(traceHandler{base: h, cur: h}).With("service", service)
}

// traceHandler adds the span's IDs to each record. Until a group is opened
// they are simply added to the record; after WithGroup they would land in
// the group, so the handler then rebuilds the chain (base + trace IDs +
// the recorded WithAttrs/WithGroup calls) for records that carry a trace.
type traceHandler struct {
	base slog.Handler // before any WithAttrs/WithGroup
	cur  slog.Handler // base with ops applied
	ops  []func(slog.Handler) slog.Handler
	// grouped is set once a WithGroup is among ops.
	grouped bool
}

func (h traceHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.cur.Enabled(ctx, l)
}

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return h.cur.Handle(ctx, r)
	}
	// An array, not a slice literal: AddAttrs copies it into the record,
	// so on the common path (no group) it stays on the stack.
	ids := [2]slog.Attr{slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String())}
	if !h.grouped {
		r.AddAttrs(ids[:]...)
		return h.cur.Handle(ctx, r)
	}
	hh := h.base.WithAttrs(slices.Clone(ids[:]))
	for _, op := range h.ops {
		hh = op(hh)
	}
	return hh.Handle(ctx, r)
}

func (h traceHandler) with(op func(slog.Handler) slog.Handler, group bool) traceHandler {
	ops := append(h.ops[:len(h.ops):len(h.ops)], op)
	return traceHandler{base: h.base, cur: op(h.cur), ops: ops, grouped: h.grouped || group}
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.with(func(x slog.Handler) slog.Handler { return x.WithAttrs(as) }, false)
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(func(x slog.Handler) slog.Handler { return x.WithGroup(name) }, true)
}
