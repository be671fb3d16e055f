package jobqueue

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Names shared by spans and metrics.
const (
	scopeName       = "github.com/wardgate/wardgate/jobqueue"
	messagingSystem = "wardgate"
	destination     = "payloads"
)

// secondsBuckets suit request, flush and PUT latencies (the SDK's default
// buckets are meant for milliseconds).
var secondsBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

var batchBuckets = []float64{1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 16384}

// instruments are the queue's metrics. Names follow OTel semantic
// conventions where one exists; the Prometheus names they become are listed
// in docs/jobqueue.md.
type instruments struct {
	reqDur      metric.Float64Histogram
	accepted    metric.Int64Counter
	rejected    metric.Int64Counter
	stored      metric.Int64Counter
	batchSize   metric.Int64Histogram
	flushDur    metric.Float64Histogram
	putDur      metric.Float64Histogram
	putBytes    metric.Int64Counter
	putErrors   metric.Int64Counter
	putTimeouts metric.Int64Counter
	spilled     metric.Int64Counter
	recovered   metric.Int64Counter

	reasons    map[string]metric.AddOption    // the "reason" of each rejection, built once
	putOutcome map[string]metric.RecordOption // "outcome" ok / error of a PUT attempt
}

// rejectReasons are every "reason" of wardgate.payloads.rejected.
var rejectReasons = []string{reasonFull, reasonTooLarge, reasonBadRequest, reasonUnauth, reasonMediaType, reasonMethod, reasonDraining, reasonNotStored, reasonAckTimeout}

// reason returns the attribute option of a rejection reason.
func (m *instruments) reason(r string) metric.AddOption {
	if o, ok := m.reasons[r]; ok {
		return o
	}
	return metric.WithAttributes(attribute.String("reason", r))
}

// zero starts every counter at 0, each rejection reason included, so a
// dashboard shows 0 rather than "No data" before the first event (and
// rate() sees the first one).
func (m *instruments) zero(ctx context.Context) {
	for _, c := range []metric.Int64Counter{m.accepted, m.stored, m.putBytes, m.putErrors, m.putTimeouts, m.spilled, m.recovered} {
		c.Add(ctx, 0)
	}
	for _, r := range rejectReasons {
		m.rejected.Add(ctx, 0, m.reason(r))
	}
}

func newInstruments(q *Queue) (*instruments, error) {
	var mp metric.MeterProvider = noop.NewMeterProvider()
	if q.tel != nil && q.tel.MeterProvider != nil {
		mp = q.tel.MeterProvider
	}
	m := mp.Meter(scopeName)
	var (
		in   instruments
		errs []error
	)
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	in.reqDur, err = m.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of HTTP server requests."), metric.WithExplicitBucketBoundaries(secondsBuckets...))
	check(err)
	in.accepted, err = m.Int64Counter("wardgate.payloads.accepted", metric.WithUnit("{payload}"),
		metric.WithDescription("Payloads admitted into the queue (answered 202)."))
	check(err)
	in.rejected, err = m.Int64Counter("wardgate.payloads.rejected", metric.WithUnit("{request}"),
		metric.WithDescription("POST /v1/payloads requests refused, by reason."))
	check(err)
	in.stored, err = m.Int64Counter("wardgate.payloads.stored", metric.WithUnit("{payload}"),
		metric.WithDescription("Payloads in a stored object."))
	check(err)
	in.batchSize, err = m.Int64Histogram("wardgate.batch.size", metric.WithUnit("{payload}"),
		metric.WithDescription("Payloads per stored batch."), metric.WithExplicitBucketBoundaries(batchBuckets...))
	check(err)
	in.flushDur, err = m.Float64Histogram("wardgate.batch.flush.duration", metric.WithUnit("s"),
		metric.WithDescription("Time to compress and store a batch, retries included."), metric.WithExplicitBucketBoundaries(secondsBuckets...))
	check(err)
	in.putDur, err = m.Float64Histogram("wardgate.blob.put.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of one blob PUT attempt, by outcome."), metric.WithExplicitBucketBoundaries(secondsBuckets...))
	check(err)
	in.putBytes, err = m.Int64Counter("wardgate.blob.put.bytes", metric.WithUnit("By"),
		metric.WithDescription("Bytes of objects stored."))
	check(err)
	in.putErrors, err = m.Int64Counter("wardgate.blob.put.errors", metric.WithUnit("{error}"),
		metric.WithDescription("Failed blob PUT attempts."))
	check(err)
	in.putTimeouts, err = m.Int64Counter("wardgate.blob.put.timeouts", metric.WithUnit("{error}"),
		metric.WithDescription("Blob PUT attempts abandoned at BLOB_PUT_TIMEOUT (also counted as errors)."))
	check(err)
	in.spilled, err = m.Int64Counter("wardgate.payloads.spilled", metric.WithUnit("{payload}"),
		metric.WithDescription("Acked payloads not stored by the drain deadline, written to SPILL_DIR instead."))
	check(err)
	in.recovered, err = m.Int64Counter("wardgate.payloads.recovered", metric.WithUnit("{payload}"),
		metric.WithDescription("Spilled payloads uploaded from SPILL_DIR at start (also counted as stored)."))
	check(err)

	depth, err := m.Int64ObservableGauge("wardgate.queue.depth", metric.WithUnit("{payload}"),
		metric.WithDescription("Payloads admitted and not yet stored: queued, in a batch being built, or being uploaded. Bounded by wardgate.queue.capacity."))
	check(err)
	queued, err := m.Int64ObservableGauge("wardgate.queue.waiting", metric.WithUnit("{payload}"),
		metric.WithDescription("Payloads queued and not yet taken by a worker."))
	check(err)
	capacity, err := m.Int64ObservableGauge("wardgate.queue.capacity", metric.WithUnit("{payload}"),
		metric.WithDescription("MAX_QUEUE: the most payloads admitted and not yet stored."))
	check(err)
	oldest, err := m.Float64ObservableGauge("wardgate.queue.oldest_age", metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest payload not yet stored (approximate for payloads still in the channel)."))
	check(err)
	busy, err := m.Int64ObservableGauge("wardgate.workers.busy", metric.WithUnit("{worker}"),
		metric.WithDescription("Workers encoding, compressing or uploading a batch."))
	check(err)
	maxw, err := m.Int64ObservableGauge("wardgate.workers.max", metric.WithUnit("{worker}"),
		metric.WithDescription("MAX_WORKERS."))
	check(err)
	if len(errs) == 0 {
		_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			o.ObserveInt64(depth, q.reserved.Load())
			o.ObserveInt64(queued, q.queued.Load())
			o.ObserveInt64(capacity, q.capacity)
			o.ObserveFloat64(oldest, q.oldestAge().Seconds())
			o.ObserveInt64(busy, q.busy.Load())
			o.ObserveInt64(maxw, int64(q.cfg.MaxWorkers))
			return nil
		}, depth, queued, capacity, oldest, busy, maxw)
		check(err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("jobqueue: metrics: %v", errs)
	}
	in.reasons = make(map[string]metric.AddOption, len(rejectReasons))
	for _, r := range rejectReasons {
		in.reasons[r] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", r)))
	}
	in.putOutcome = map[string]metric.RecordOption{
		"ok":    metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "ok"))),
		"error": metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "error"))),
	}
	in.zero(context.Background())
	return &in, nil
}

// oldestAge is the age of the oldest payload not yet stored: the oldest
// batch a worker holds, or, while payloads wait in the channel, the
// received_at of the newest collection a worker took (the channel is FIFO,
// so the head is at most that old).
func (q *Queue) oldestAge() time.Duration {
	var oldest int64
	for i := range q.oldest {
		if v := q.oldest[i].Load(); v != 0 && (oldest == 0 || v < oldest) {
			oldest = v
		}
	}
	if q.queued.Load() > 0 {
		if v := q.lastTaken.Load(); v != 0 && (oldest == 0 || v < oldest) {
			oldest = v
		}
	}
	if oldest == 0 {
		return 0
	}
	return max(0, q.now().Sub(time.Unix(0, oldest)))
}
