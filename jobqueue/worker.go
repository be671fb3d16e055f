package jobqueue

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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
	rng   *rand.ChaCha8
	timer *time.Timer
	parts []part
	n     int // payloads in the batch
}

// worker runs one of the MAX_WORKERS worker goroutines. Workers take turns
// (the q.build token) building the one open batch: the builder takes
// collections from the queue channel until the batch is full,
// BATCH_MAX_WAIT has passed, or (durable mode) every request being
// admitted is in it; it then hands the turn over and compresses and
// uploads its batch while another worker builds the next one. One open batch at a time
// means batches fill at any rate instead of MAX_WORKERS partial batches
// each flushing on its own timer, and compression and PUTs still run on up
// to MAX_WORKERS goroutines at once.
func (q *Queue) worker(ctx context.Context, id int) {
	defer q.wg.Done()
	w := &worker{id: id, timer: time.NewTimer(time.Hour)}
	w.timer.Stop()
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (crypto/rand panics rather)
	w.rng = rand.NewChaCha8(seed)
	if q.cfg.Compression == CompressionGzip {
		// BestSpeed: compression was the biggest CPU cost of a stored
		// payload (15% of BenchmarkIngest at the default level); klauspost's
		// level 1 is several times faster, and on bench/ingest.sh's
		// payloads the objects are ~14x smaller than the NDJSON (~16x at
		// the default level).
		w.gz, _ = gzip.NewWriterLevel(&w.zbuf, gzip.BestSpeed)
	}
	for {
		<-q.build
		c := q.carry
		q.carry = nil
		if c == nil {
			var ok bool
			if c, ok = <-q.ch; !ok {
				q.build <- struct{}{}
				return
			}
			q.took(c)
		}
		q.busy.Add(1)
		q.batch(ctx, w, c) // hands the turn back once the batch is built
		q.busy.Add(-1)
	}
}

// took accounts for a collection leaving the channel.
func (q *Queue) took(c *collection) {
	q.queued.Add(-int64(len(c.payloads)))
	q.lastTaken.Store(c.receivedAt.UnixNano())
}

// batch builds one batch starting with c under one CONSUMER span whose
// trace_id the worker carries as a pprof label, gives up the builder's
// turn (the q.build token, held by the caller) and stores the batch. The part of a
// collection that did not fit is left in q.carry for the next builder.
func (q *Queue) batch(ctx context.Context, w *worker, c *collection) {
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot()}
	if c.producer.IsValid() && c.next == 0 {
		// Linked at start, not only by AddLink, so a sampler sees it (a
		// custom provider may decide on links; telemetry's sampler keeps
		// every batch, as the first link is all a sampler can see). fill
		// links the others.
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: c.producer}))
	}
	bctx, span := q.tracer.Start(ctx, "process payloads", opts...)
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("messaging.system", messagingSystem),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.operation.name", "process"),
			attribute.String("messaging.destination.name", destination))
	}
	defer span.End()
	telemetry.DoWithSpanLabels(bctx, func(bctx context.Context) {
		q.carry = q.fill(bctx, w, c, span)
		q.build <- struct{}{}
		q.flush(bctx, w, span)
	})
}

// fill adds payloads to w's batch until it is full, BATCH_MAX_WAIT has
// passed since its first payload, the channel is closed and empty, or, in
// durable mode, nothing is queued and no request is being admitted (every
// client waiting for an ack is in this batch or an earlier one, so waiting
// longer would only add latency).
func (q *Queue) fill(ctx context.Context, w *worker, c *collection, span trace.Span) (carry *collection) {
	w.buf.Reset()
	w.parts = w.parts[:0]
	w.n = 0
	q.oldest[w.id].Store(c.receivedAt.UnixNano())
	w.timer.Reset(q.cfg.BatchMaxWait)
	defer w.timer.Stop()
	durable := q.cfg.AckMode == AckDurable
	recording := span.IsRecording()
	first := c // linked when the span started
	for {
		if recording && c != first && c.producer.IsValid() && c.next == 0 {
			span.AddLink(trace.Link{SpanContext: c.producer})
		}
		start := c.next
		for c.next < len(c.payloads) && !q.full(ctx, w) {
			q.appendLine(ctx, w, c, c.payloads[c.next])
			c.payloads[c.next] = nil // the line holds it now; let it go
			c.next++
		}
		if taken := c.next - start; taken > 0 {
			w.parts = append(w.parts, part{c, taken})
		}
		if q.full(ctx, w) {
			if c.next < len(c.payloads) {
				return c
			}
			return nil
		}
		c = nil
		for c == nil {
			if durable && len(q.ch) == 0 && q.admitting.Load() == 0 {
				return nil
			}
			q.busy.Add(-1)
			select {
			case next, ok := <-q.ch:
				q.busy.Add(1)
				if !ok {
					return nil
				}
				q.took(next)
				c = next
			case <-q.admitted:
				q.busy.Add(1) // an admission finished: look again
			case <-w.timer.C:
				q.busy.Add(1)
				return nil
			}
		}
	}
}

// Batches built after the drain deadline are spilled, not uploaded: they
// take these bounds instead of BATCH_MAX_*, so that a small batch size
// (BATCH_MAX_PAYLOADS=1 makes one object per payload) does not turn the
// spill into one fsync'd file per payload, which would outlast the seconds
// left before SIGKILL.
const (
	spillBatchPayloads = 1 << 16
	spillBatchBytes    = 16 << 20
)

func (q *Queue) full(ctx context.Context, w *worker) bool {
	if ctx.Err() != nil {
		return w.n >= spillBatchPayloads || w.buf.Len() >= spillBatchBytes
	}
	return w.n >= q.cfg.BatchMaxPayloads || w.buf.Len() >= q.cfg.BatchMaxBytes
}

// appendLine writes one NDJSON line:
// {"id","received_at","trace_id","version","payload"[,"result"][,"error"]}.
// The payload is the element as sent, compacted onto one line.
func (q *Queue) appendLine(ctx context.Context, w *worker, c *collection, p json.RawMessage) {
	b := &w.buf
	var scratch [36]byte
	b.WriteString(`{"id":"`)
	encodeUUID(&scratch, w.newID(c.receivedAt))
	b.Write(scratch[:])
	b.WriteString(`","received_at":"`)
	b.WriteString(c.stamp)
	b.WriteString(`","trace_id":"`)
	hex.Encode(scratch[:32], c.traceID[:])
	b.Write(scratch[:32])
	b.WriteString(`","version":`)
	b.Write(c.version)
	b.WriteString(`,"payload":`)
	if bytes.IndexByte(p, '\n') < 0 && bytes.IndexByte(p, '\r') < 0 {
		b.Write(p) // already one line: store it exactly as sent
	} else {
		w.line.Reset()
		if err := json.Compact(&w.line, p); err != nil {
			// Cannot happen for a decoded element; keep the payload anyway.
			w.line.Reset()
			enc, _ := json.Marshal(string(p))
			w.line.Write(enc)
		}
		b.Write(w.line.Bytes())
	}
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

// newID returns a UUIDv7 (RFC 9562): the 48-bit Unix millisecond of
// receipt, then 74 random bits from the worker's ChaCha8 stream (seeded
// from crypto/rand). Written here rather than with uuid.NewV7 because that
// reads crypto/rand and allocates for every payload; the layout is the
// same, minus its within-millisecond counter (ids are unique, not sorted
// within a millisecond).
func (w *worker) newID(at time.Time) uuid.UUID {
	var id uuid.UUID
	ms := uint64(at.UnixMilli())
	binary.BigEndian.PutUint64(id[0:8], ms<<16|w.rng.Uint64()&0xffff)
	binary.BigEndian.PutUint64(id[8:16], w.rng.Uint64())
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // variant 10 (RFC 9562)
	return id
}

// encodeUUID writes id in its canonical 8-4-4-4-12 hex form without the
// string allocation of uuid.UUID.String.
func encodeUUID(dst *[36]byte, id uuid.UUID) {
	hex.Encode(dst[0:8], id[0:4])
	dst[8] = '-'
	hex.Encode(dst[9:13], id[4:6])
	dst[13] = '-'
	hex.Encode(dst[14:18], id[6:8])
	dst[18] = '-'
	hex.Encode(dst[19:23], id[8:10])
	dst[23] = '-'
	hex.Encode(dst[24:], id[10:])
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
	for attempt := 1; ctx.Err() == nil; attempt++ {
		err := q.put(ctx, key, body, ct, attempt)
		if err == nil {
			stored = true
			break
		}
		if ctx.Err() != nil {
			break
		}
		wait := q.backoff(attempt)
		q.log.WarnContext(ctx, "blob put failed, retrying", "key", key, "attempt", attempt, "retry_in", wait.String(), "payloads", w.n,
			"timeout", errors.Is(err, errPutTimeout), "err", err)
		if sleep(ctx, wait) != nil {
			break
		}
	}
	// Not stored: the drain deadline passed or the queue was stopped hard.
	// Spill the batch to local disk (the next start uploads it) rather
	// than drop what was acked.
	var spilledTo string
	if !stored && q.cfg.SpillDir != "" {
		var err error
		if spilledTo, err = q.spill(key, body); err != nil {
			q.log.ErrorContext(ctx, "spilling the batch to SPILL_DIR failed", "key", key, "payloads", w.n, "err", err)
		}
	}
	for _, p := range w.parts {
		if p.c.ack != nil {
			if spilledTo != "" {
				p.c.ack.spilled.Store(true)
			}
			p.c.ack.complete(p.n, stored)
		}
	}
	w.parts = w.parts[:0]
	q.oldest[w.id].Store(0)
	q.reserved.Add(-int64(w.n))
	switch {
	case stored:
		q.m.stored.Add(ctx, int64(w.n))
		q.m.batchSize.Record(ctx, int64(w.n))
		q.m.flushDur.Record(ctx, time.Since(start).Seconds())
	case spilledTo != "":
		q.spilled.Add(int64(w.n))
		q.m.spilled.Add(ctx, int64(w.n))
		span.SetStatus(codes.Error, "batch spilled to local disk")
		q.log.WarnContext(ctx, "batch not stored before the drain deadline: spilled to local disk, uploaded on the next start",
			"key", key, "payloads", w.n, "path", spilledTo, "cause", context.Cause(ctx))
	default:
		q.lost.Add(int64(w.n))
		span.SetStatus(codes.Error, "batch not stored")
		q.log.ErrorContext(ctx, "batch abandoned: acked payloads not stored", "key", key, "payloads", w.n, "err", context.Cause(ctx))
	}
	w.n = 0
	w.buf.Reset()
}

// errPutTimeout marks a PUT attempt that hit BLOB_PUT_TIMEOUT.
var errPutTimeout = errors.New("blob put timed out (BLOB_PUT_TIMEOUT)")

// put is one PUT attempt under a CLIENT span, bounded by PutTimeout.
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
	// Every attempt has a deadline: a store that never answers is an
	// error (counted, logged, retried), not a worker stuck forever.
	pctx, cancel := context.WithTimeoutCause(ctx, q.cfg.PutTimeout, errPutTimeout)
	err := q.sink.Put(pctx, key, body, ct)
	timedOut := err != nil && ctx.Err() == nil && errors.Is(context.Cause(pctx), errPutTimeout)
	cancel()
	outcome := "ok"
	if err != nil {
		if timedOut {
			err = fmt.Errorf("%w (%s): %w", errPutTimeout, q.cfg.PutTimeout, err)
			q.m.putTimeouts.Add(ctx, 1)
		}
		outcome = "error"
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		q.m.putErrors.Add(ctx, 1)
	} else {
		q.m.putBytes.Add(ctx, int64(len(body)))
	}
	q.m.putDur.Record(ctx, time.Since(start).Seconds(), q.m.putOutcome[outcome])
	if err != nil {
		return fmt.Errorf("put %s (attempt %s): %w", key, strconv.Itoa(attempt), err)
	}
	return nil
}
