// Package jobqueue is wardgate's ingest service: an HTTP endpoint that admits
// collections of JSON payloads into a bounded queue, a fixed pool of workers
// that pack them into NDJSON batches, and a Sink that stores each batch as
// one object (gzip by default) with retries.
//
// It is the design notes' Malwarebytes service with its failure modes
// removed:
//
//   - No goroutine per payload or per pending job: exactly Config.MaxWorkers
//     worker goroutines pull from one channel, taking turns building the
//     one open batch and compressing and uploading in parallel; nothing
//     else is spawned per request. One open batch keeps batches full at
//     any rate (100 PUTs per million payloads at the defaults).
//   - Handlers never block on a full queue. A collection of N payloads is
//     admitted only if N slots of the MAX_QUEUE budget are free, reserved
//     all-or-nothing with one compare-and-swap; otherwise 503 + Retry-After
//     and nothing of it is queued.
//   - The budget is given back only when a payload is stored, so payloads
//     queued, in a batch being built and in an upload being retried are all
//     bounded by MAX_QUEUE: that is the memory bound.
//   - One PUT per batch, not per payload (BATCH_MAX_PAYLOADS=1 with
//     compression off reproduces the notes' one-object-per-payload layout).
//   - No 200 that lies: 202 means queued (ACK_MODE=enqueued) or stored
//     (ACK_MODE=durable), and a drain stores everything that was acked
//     before Drain returns, or, past its deadline, spills it to
//     Config.SpillDir for the next Start to store.
//   - Every call to the store has a deadline (Config.PutTimeout), and a
//     durable client waits at most Config.AckTimeout.
//
// A Queue holds no package-level state; several can live in one process.
package jobqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/wardgate/wardgate/internal/ratelog"
	"github.com/wardgate/wardgate/telemetry"
)

// Sink stores one finished batch. Put is called with the object key
// (payloads/YYYY/MM/DD/HH/<instance>-<seq>.ndjson[.gz]), the whole object
// body and its content type. It must be safe for concurrent use (one call
// per busy worker at a time) and must either store the whole object or
// return an error; the queue retries a failed Put with the same key and
// body, so a Put that succeeded remotely but reported an error is stored
// twice under the same key (an idempotent overwrite), never lost.
//
// The body slice is reused after Put returns: a Sink must not keep it.
//
// ctx carries the attempt's deadline (Config.PutTimeout) and is cancelled
// at a drain deadline: Put must return promptly once ctx is done (the
// gocloud-based blobsink does), or a hung store holds a worker forever.
//
// The sink is batch-oriented on purpose: a per-payload Put is the design
// notes' one-S3-PUT-per-payload bottleneck.
type Sink interface {
	Put(ctx context.Context, key string, body []byte, contentType string) error
}

// Option configures a Queue.
type Option func(*Queue)

// WithTelemetry records spans and metrics through t's providers (never the
// OTel globals). Without it the queue records nothing.
func WithTelemetry(t *telemetry.Telemetry) Option {
	return func(q *Queue) { q.tel = t }
}

// WithLogger sets the logger; log calls pass the request or batch context so
// trace_id and span_id appear (see telemetry.NewLogger).
func WithLogger(l *slog.Logger) Option {
	return func(q *Queue) { q.log = l }
}

// WithLogSummaryInterval sets how often per-request conditions (refused
// requests, clients gone) are summarized in the log: the first occurrence
// of each is logged at once, then one line per interval carries the count
// (default 10s). They are counted by metrics, so a line per request would
// only flood the log under overload.
func WithLogSummaryInterval(d time.Duration) Option {
	return func(q *Queue) { q.summaryEvery = d }
}

// WithClock replaces time.Now for received_at stamps and object keys.
func WithClock(now func() time.Time) Option {
	return func(q *Queue) { q.now = now }
}

// ErrSpilled is wrapped by Drain's error when its deadline passed and the
// payloads not stored were written to SpillDir: nothing acked is lost, the
// next Start uploads them.
var ErrSpilled = errors.New("jobqueue: not stored before the drain deadline, spilled to local disk")

// errStopped is the cause reported when the work context given to Start
// ended (a hard stop) rather than Drain's.
var errStopped = errors.New("jobqueue: stopped")

// Errors of admission. Both map to 503 + Retry-After.
var (
	ErrFull     = errors.New("jobqueue: queue cannot take the whole collection")
	ErrDraining = errors.New("jobqueue: draining, not admitting")
)

// maxChannelSlots caps the queue channel's buffer (counted in collections,
// not payloads) so a huge MAX_QUEUE does not allocate a huge buffer up
// front. When the channel itself is full the collection is refused like any
// other that does not fit.
const maxChannelSlots = 1 << 16

// Queue is the ingest queue. Create it with New, mount Handle, call Start,
// and Drain before exiting.
type Queue struct {
	cfg  Config
	sink Sink
	log  *slog.Logger
	now  func() time.Time
	tel  *telemetry.Telemetry

	// reqLog is log for conditions that happen once per request: it
	// writes the first occurrence, then a count per interval (summary).
	reqLog       *slog.Logger
	summary      *ratelog.Handler
	summaryEvery time.Duration

	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	m      *instruments

	// mu orders admissions against Drain closing ch: admissions hold it
	// shared (they never block while holding it), Drain exclusively.
	mu       sync.RWMutex
	draining bool // under mu
	ch       chan *collection

	// The fields below are what `wardgate diag analyze` reads from a core
	// (keep their names): reserved is the MAX_QUEUE budget in use
	// (payloads admitted and not yet stored), capacity is MAX_QUEUE, busy
	// the number of workers doing work right now.
	reserved atomic.Int64
	capacity int64
	busy     atomic.Int64
	queued   atomic.Int64 // payloads in ch, not yet taken by a worker

	// build is the builder's turn, a token in a 1-slot channel held by
	// the one worker building the open batch (a channel rather than a
	// mutex so waiting workers park in the runtime, which is how
	// `wardgate diag analyze` tells idle workers from busy ones); carry is
	// the rest of a collection that did not fit in the last batch (owned
	// by the token holder). admitting counts requests between reading their body and
	// being queued or refused; in durable mode admitted wakes the builder
	// when it drops to 0 without a collection arriving.
	build     chan struct{}
	carry     *collection
	admitting atomic.Int64
	admitted  chan struct{}

	drainingFlag atomic.Bool
	lastTaken    atomic.Int64   // received_at (unix ns) of the newest collection a worker took
	oldest       []atomic.Int64 // per worker: received_at (unix ns) of its oldest unstored payload, 0 if none
	seq          atomic.Uint64
	lost         atomic.Int64 // acked payloads neither stored nor spilled
	spilled      atomic.Int64 // acked payloads written to SpillDir

	kindsMu sync.Mutex
	kinds   atomic.Pointer[map[string]*kindHandler]

	decoders  sync.Pool // *jsontext.Decoder, reset for each request body
	gzReaders sync.Pool // *gzip.Reader, reset for each gzip request body

	startOnce sync.Once
	stopWork  context.CancelFunc // aborts retries (drain deadline passed)
	wg        sync.WaitGroup
	done      chan struct{} // closed when every worker has returned
}

// collection is one admitted request's payloads, as queued.
type collection struct {
	version    []byte // JSON string, encoded once
	traceID    trace.TraceID
	receivedAt time.Time
	stamp      string // receivedAt, UTC RFC3339Nano
	producer   trace.SpanContext
	payloads   []json.RawMessage
	next       int  // first payload not yet put in a batch (owned by one worker at a time)
	ack        *ack // nil in AckEnqueued mode
}

// ack is a collection's completion in AckDurable mode.
type ack struct {
	remaining atomic.Int64
	failed    atomic.Bool
	spilled   atomic.Bool // some of the failed payloads are in SpillDir
	done      chan struct{}
}

func (a *ack) complete(n int, ok bool) {
	if !ok {
		a.failed.Store(true)
	}
	if a.remaining.Add(-int64(n)) == 0 {
		close(a.done)
	}
}

// New validates cfg and returns a Queue that stores batches in sink.
func New(cfg Config, sink Sink, opts ...Option) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("jobqueue: config: %w", err)
	}
	if sink == nil {
		return nil, errors.New("jobqueue: nil Sink")
	}
	q := &Queue{
		cfg:      cfg,
		sink:     sink,
		now:      time.Now,
		capacity: int64(cfg.MaxQueue),
		ch:       make(chan *collection, min(cfg.MaxQueue, maxChannelSlots)),
		oldest:   make([]atomic.Int64, cfg.MaxWorkers),
		done:     make(chan struct{}),
		admitted: make(chan struct{}, 1),
		build:    make(chan struct{}, 1),
	}
	q.build <- struct{}{}
	for _, o := range opts {
		o(q)
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	q.summary = ratelog.NewHandler(q.log.Handler(), ratelog.Options{
		Interval: q.summaryEvery,
		KeyAttrs: []string{"status", "reason"},
	})
	q.reqLog = slog.New(q.summary)
	q.prop = propagation.TraceContext{}
	// Without telemetry, spans are still created by an SDK provider that
	// samples and exports nothing: stored lines, error bodies, logs and
	// pprof labels keep real trace IDs (as telemetry.Setup does when
	// tracing is off).
	var tp trace.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()))
	if q.tel != nil {
		if q.tel.TracerProvider != nil {
			tp = q.tel.TracerProvider
		}
		if q.tel.Propagator != nil {
			q.prop = q.tel.Propagator
		}
	}
	q.tracer = tp.Tracer(scopeName)
	m, err := newInstruments(q)
	if err != nil {
		return nil, err
	}
	q.m = m
	empty := map[string]*kindHandler{}
	q.kinds.Store(&empty)
	// Seed the object sequence from the start time (µs) so a restart with
	// the same INSTANCE (pid 1 in a container) never overwrites an object
	// of the previous run within the same hour.
	q.seq.Store(uint64(q.now().UnixMicro()))
	return q, nil
}

// Config returns the queue's configuration.
func (q *Queue) Config() Config { return q.cfg }

// Start launches exactly MaxWorkers workers. ctx bounds the workers' blob
// retries: cancelling it is a hard stop (use Drain for a graceful one).
// Calling Start more than once has no further effect.
func (q *Queue) Start(ctx context.Context) {
	q.startOnce.Do(func() {
		wctx, cancel := context.WithCancel(ctx)
		q.stopWork = cancel
		q.wg.Add(q.cfg.MaxWorkers)
		for i := range q.cfg.MaxWorkers {
			go q.worker(wctx, i)
		}
		if q.cfg.SpillDir != "" {
			// What an earlier drain spilled is uploaded first; Drain
			// waits for it like for the workers (its deadline leaves the
			// rest on disk).
			q.wg.Add(1)
			go func() {
				defer q.wg.Done()
				q.recoverSpill(wctx)
			}()
		}
		go func() {
			q.wg.Wait()
			cancel()
			close(q.done)
		}()
	})
}

// Draining reports whether Drain has been called.
func (q *Queue) Draining() bool { return q.drainingFlag.Load() }

// Drain stops admitting (POSTs get 503, /readyz turns 503), lets the workers
// empty the queue, flush their batches and finish their uploads, and
// returns when everything admitted is stored. Uploads keep retrying until
// then; if ctx ends first, retries are abandoned and what is not stored
// is spilled to SpillDir (an error wrapping ErrSpilled says how much: the
// next Start uploads it) or, without a SpillDir, lost (an error counting
// the payloads).
func (q *Queue) Drain(ctx context.Context) error {
	q.mu.Lock()
	if !q.draining {
		q.draining = true
		q.drainingFlag.Store(true)
		close(q.ch)
	}
	q.mu.Unlock()
	q.Start(context.WithoutCancel(ctx)) // a queue never started still drains
	select {
	case <-q.done:
	case <-ctx.Done():
		q.stopWork()
		<-q.done
	}
	q.summary.Flush()
	cause := context.Cause(ctx)
	if cause == nil {
		cause = errStopped // the context given to Start ended first
	}
	if n := q.lost.Load(); n > 0 {
		return fmt.Errorf("jobqueue: drain: %d acked payloads not stored: %w", n, cause)
	}
	if n := q.spilled.Load(); n > 0 {
		return fmt.Errorf("jobqueue: drain: %w: %d acked payloads in %s, uploaded on the next start (%w)", ErrSpilled, n, q.cfg.SpillDir, cause)
	}
	return nil
}

// admit reserves len(c.payloads) slots and queues c, or refuses it whole.
// It never blocks.
func (q *Queue) admit(c *collection) error {
	n := int64(len(c.payloads))
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.draining {
		return ErrDraining
	}
	for {
		cur := q.reserved.Load()
		if cur+n > q.capacity {
			return ErrFull
		}
		if q.reserved.CompareAndSwap(cur, cur+n) {
			break
		}
	}
	q.queued.Add(n)
	select {
	case q.ch <- c:
		return nil
	default: // more collections than channel slots: refuse like a full queue
		q.queued.Add(-n)
		q.reserved.Add(-n)
		return ErrFull
	}
}

// backoff returns the wait before retry number attempt (1-based): full
// jitter over an exponentially growing, capped window.
func (q *Queue) backoff(attempt int) time.Duration {
	d := q.cfg.RetryBase << min(attempt-1, 30)
	if d <= 0 || d > q.cfg.RetryMax {
		d = q.cfg.RetryMax
	}
	return d/2 + rand.N(d/2+1)
}
