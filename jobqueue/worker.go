package jobqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardgate/wardgate/telemetry"
)

// part records how many payloads of one collection a batch carries, so a
// stored batch can release budget and complete durable acks.
type part struct {
	c *collection
	n int
}

// worker is the state one worker goroutine reuses across batches.
type worker struct {
	id    int
	buf   bytes.Buffer // NDJSON of the batch being built
	zbuf  bytes.Buffer // its gzip form
	gz    *gzip.Writer
	line  bytes.Buffer // scratch for compacting one payload
	timer *time.Timer
	parts []part
	n     int // payloads in the batch
}

func (q *Queue) worker(ctx context.Context, id int) {
	defer q.wg.Done()
	w := &worker{id: id, timer: time.NewTimer(time.Hour)}
	w.timer.Stop()
	if q.cfg.Compression == CompressionGzip {
		w.gz = gzip.NewWriter(&w.zbuf)
	}
	var carry *collection // a collection only partly taken by the last batch
	for {
		c := carry
		if c == nil {
			var ok bool
			if c, ok = <-q.ch; !ok {
				return
			}
			q.took(c)
		}
		var closed bool
		q.busy.Add(1)
		carry, closed = q.batch(ctx, w, c)
		q.busy.Add(-1)
		if closed && carry == nil {
			return
		}
	}
}

// took accounts for a collection leaving the channel.
func (q *Queue) took(c *collection) {
	q.queued.Add(-int64(len(c.payloads)))
	q.lastTaken.Store(c.receivedAt.UnixNano())
}

// batch builds one batch starting with c, under one CONSUMER span whose
// trace_id the worker carries as a pprof label, stores it, and returns the
// part of a collection that did not fit. closed reports that the queue
// channel was closed (draining) and is empty.
func (q *Queue) batch(ctx context.Context, w *worker, c *collection) (carry *collection, closed bool) {
	bctx, span := q.tracer.Start(ctx, "process payloads",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithNewRoot(),
		trace.WithAttributes(
			attribute.String("messaging.system", messagingSystem),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.operation.name", "process"),
			attribute.String("messaging.destination.name", destination),
		))
	defer span.End()
	telemetry.DoWithSpanLabels(bctx, func(bctx context.Context) {
		carry, closed = q.fill(bctx, w, c, span)
		q.flush(bctx, w, span)
	})
	return carry, closed
}

// fill adds payloads to w's batch until it is full, BATCH_MAX_WAIT has
// passed since its first payload, or the channel is closed and empty.
func (q *Queue) fill(ctx context.Context, w *worker, c *collection, span trace.Span) (carry *collection, closed bool) {
	w.buf.Reset()
	w.parts = w.parts[:0]
	w.n = 0
	q.oldest[w.id].Store(c.receivedAt.UnixNano())
	w.timer.Reset(q.cfg.BatchMaxWait)
	defer w.timer.Stop()
	for {
		if c.producer.IsValid() && c.next == 0 {
			span.AddLink(trace.Link{SpanContext: c.producer})
		}
		start := c.next
		for c.next < len(c.payloads) && !q.full(w) {
			q.appendLine(ctx, w, c, c.payloads[c.next])
			c.payloads[c.next] = nil // the line holds it now; let it go
			c.next++
		}
		if taken := c.next - start; taken > 0 {
			w.parts = append(w.parts, part{c, taken})
		}
		if q.full(w) {
			if c.next < len(c.payloads) {
				return c, false
			}
			return nil, false
		}
		q.busy.Add(-1)
		select {
		case next, ok := <-q.ch:
			q.busy.Add(1)
			if !ok {
				return nil, true
			}
			q.took(next)
			c = next
		case <-w.timer.C:
			q.busy.Add(1)
			return nil, false
		}
	}
}

func (q *Queue) full(w *worker) bool {
	return w.n >= q.cfg.BatchMaxPayloads || w.buf.Len() >= q.cfg.BatchMaxBytes
}

// appendLine writes one NDJSON line:
// {"id","received_at","trace_id","version","payload"[,"result"][,"error"]}.
// The payload is the element as sent, compacted onto one line.
func (q *Queue) appendLine(ctx context.Context, w *worker, c *collection, p json.RawMessage) {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	b := &w.buf
	b.WriteString(`{"id":"`)
	b.WriteString(id.String())
	b.WriteString(`","received_at":"`)
	b.WriteString(c.stamp)
	b.WriteString(`","trace_id":"`)
	b.WriteString(c.traceID)
	b.WriteString(`","version":`)
	b.Write(c.version)
	b.WriteString(`,"payload":`)
	w.line.Reset()
	if err := json.Compact(&w.line, p); err != nil {
		// Cannot happen for a decoded element; keep the payload anyway.
		w.line.Reset()
		enc, _ := json.Marshal(string(p))
		w.line.Write(enc)
	}
	b.Write(w.line.Bytes())
	if result, herr, ok := q.runKind(ctx, p); ok {
		if result != nil {
			b.WriteString(`,"result":`)
			b.Write(result)
		}
		if herr != "" {
			enc, _ := json.Marshal(herr)
			b.WriteString(`,"error":`)
			b.Write(enc)
		}
	}
	b.WriteString("}\n")
	w.n++
}

// flush stores w's batch, retrying with backoff until it is stored or ctx
// (the hard stop) ends, then releases its budget and completes its acks.
func (q *Queue) flush(ctx context.Context, w *worker, span trace.Span) {
	if w.n == 0 {
		q.oldest[w.id].Store(0)
		return
	}
	start := time.Now()
	span.SetAttributes(attribute.Int("messaging.batch.message_count", w.n))
	body, ct, ext := w.buf.Bytes(), "application/x-ndjson", ".ndjson"
	if w.gz != nil {
		w.zbuf.Reset()
		w.gz.Reset(&w.zbuf)
		_, _ = w.gz.Write(body) // writes to a bytes.Buffer do not fail
		_ = w.gz.Close()
		body, ct, ext = w.zbuf.Bytes(), "application/gzip", ".ndjson.gz"
	}
	now := q.now().UTC()
	key := fmt.Sprintf("payloads/%04d/%02d/%02d/%02d/%s-%d%s",
		now.Year(), now.Month(), now.Day(), now.Hour(), q.cfg.Instance, q.seq.Add(1), ext)
	span.SetAttributes(attribute.String("wardgate.blob.key", key))

	stored := false
	for attempt := 1; ; attempt++ {
		err := q.put(ctx, key, body, ct, attempt)
		if err == nil {
			stored = true
			break
		}
		if ctx.Err() != nil {
			break
		}
		wait := q.backoff(attempt)
		q.log.WarnContext(ctx, "blob put failed, retrying", "key", key, "attempt", attempt, "retry_in", wait.String(), "payloads", w.n, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if ctx.Err() != nil {
			break
		}
	}
	for _, p := range w.parts {
		if p.c.ack != nil {
			p.c.ack.complete(p.n, stored)
		}
	}
	w.parts = w.parts[:0]
	q.oldest[w.id].Store(0)
	q.reserved.Add(-int64(w.n))
	if stored {
		q.m.stored.Add(ctx, int64(w.n))
		q.m.batchSize.Record(ctx, int64(w.n))
		q.m.flushDur.Record(ctx, time.Since(start).Seconds())
	} else {
		q.lost.Add(int64(w.n))
		span.SetStatus(codes.Error, "batch not stored")
		q.log.ErrorContext(ctx, "batch abandoned: acked payloads not stored", "key", key, "payloads", w.n, "err", context.Cause(ctx))
	}
	w.n = 0
	w.buf.Reset()
}

// put is one PUT attempt under a CLIENT span.
func (q *Queue) put(ctx context.Context, key string, body []byte, ct string, attempt int) error {
	ctx, span := q.tracer.Start(ctx, "PUT "+destination,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("wardgate.blob.key", key),
			attribute.Int("wardgate.blob.bytes", len(body)),
			attribute.Int("wardgate.blob.attempt", attempt),
		))
	defer span.End()
	start := time.Now()
	err := q.sink.Put(ctx, key, body, ct)
	outcome := "ok"
	if err != nil {
		outcome = "error"
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		q.m.putErrors.Add(ctx, 1)
	} else {
		q.m.putBytes.Add(ctx, int64(len(body)))
	}
	q.m.putDur.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attribute.String("outcome", outcome)))
	if err != nil {
		return fmt.Errorf("put %s (attempt %s): %w", key, strconv.Itoa(attempt), err)
	}
	return nil
}
