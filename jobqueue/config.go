package jobqueue

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
)

// AckMode says when POST /v1/payloads answers 202.
type AckMode string

const (
	// AckEnqueued answers once the whole collection is queued. A crash
	// before the batch is stored loses it; a graceful drain does not.
	AckEnqueued AckMode = "enqueued"
	// AckDurable answers only once every payload of the collection is in a
	// stored object.
	AckDurable AckMode = "durable"
)

// Compression of the stored NDJSON objects.
type Compression string

const (
	CompressionGzip Compression = "gzip" // objects end in .ndjson.gz
	CompressionNone Compression = "none" // objects end in .ndjson
)

// Config is the tuning of one Queue. The zero value is not valid; start from
// DefaultConfig. Field comments name the environment variable that
// `wardgate jobqueue` reads for each.
type Config struct {
	MaxWorkers       int           // MAX_WORKERS: exactly this many worker goroutines
	MaxQueue         int           // MAX_QUEUE: payloads acked and not yet stored, at most
	MaxLength        int64         // MAX_LENGTH: request body bytes, at most
	BatchMaxPayloads int           // BATCH_MAX_PAYLOADS: payloads per stored object, at most
	BatchMaxBytes    int           // BATCH_MAX_BYTES: a batch is flushed once its NDJSON reaches this size
	BatchMaxWait     time.Duration // BATCH_MAX_WAIT: a batch is flushed this long after its first payload
	AckMode          AckMode       // ACK_MODE
	APITokens        []string      // API_TOKENS: empty disables auth
	Compression      Compression   // COMPRESSION
	Instance         string        // INSTANCE: names the objects this process writes

	// PutTimeout (BLOB_PUT_TIMEOUT) is the deadline of one PUT attempt: a
	// store that accepts the connection and never answers would otherwise
	// hold a worker, its batch and its share of MAX_QUEUE forever, with no
	// error counted. A PUT that times out is counted, logged and retried.
	PutTimeout time.Duration
	// AckTimeout (ACK_TIMEOUT) bounds how long a request waits in durable
	// mode for its payloads to be stored: past it the client gets 503 +
	// Retry-After. The payloads stay queued and are still stored (so a
	// retry may store them twice): durable acks are at-least-once.
	AckTimeout time.Duration
	// SpillDir (SPILL_DIR) is a local directory where acked payloads that
	// could not be stored before a drain deadline (or a hard stop) are
	// written, as the objects they would have been (same key and bytes),
	// fsync'd. The next Start uploads them first and removes them. Empty:
	// no spill; such payloads are lost and Drain says how many.
	SpillDir string

	// RetryBase and RetryMax bound the jittered exponential backoff between
	// attempts of a failed blob PUT. Retries go on until the PUT succeeds or
	// a drain deadline passes: acked data is never dropped on its own.
	RetryBase time.Duration
	RetryMax  time.Duration
}

// Dependency deadlines. A PUT of a default batch (8 MiB of NDJSON, about
// 600 KB gzipped) takes well under a second on a working store: 15 s is
// slow-store room, not a guess at a typical PUT. The durable ack deadline
// is above one PUT's and below the gateway's default response_header
// timeout (30 s), so a client hears a 503 from the job queue rather than a
// 504 from the gateway.
const (
	DefaultPutTimeout = 15 * time.Second
	DefaultAckTimeout = 20 * time.Second
)

// Batch and queue defaults. 16,384 payloads per object is 61 PUTs per
// million payloads when batches are full, so the partial batches a pause in
// traffic or a drain flushes still leave it well under 100 (at 10,000 it
// could only ever be above); 8 MiB holds 16,384 lines of a payload up to
// 512 bytes (larger payloads make smaller batches by bytes). MAX_QUEUE must
// leave room for a full batch being built while others upload and for a
// backlog in the channel: 200,000 is three full batches per default worker
// on a small machine, and bounds memory at about 200,000 payloads' request
// bodies.
const (
	DefaultMaxQueue         = 200_000
	DefaultBatchMaxPayloads = 16_384
	DefaultBatchMaxBytes    = 8 << 20
)

// DefaultConfig returns the defaults documented in docs/jobqueue.md.
func DefaultConfig() Config {
	return Config{
		MaxWorkers:       DefaultMaxWorkers(),
		MaxQueue:         DefaultMaxQueue,
		MaxLength:        1 << 20,
		BatchMaxPayloads: DefaultBatchMaxPayloads,
		BatchMaxBytes:    DefaultBatchMaxBytes,
		BatchMaxWait:     time.Second,
		AckMode:          AckEnqueued,
		Compression:      CompressionGzip,
		Instance:         DefaultInstance(),
		PutTimeout:       DefaultPutTimeout,
		AckTimeout:       DefaultAckTimeout,
		RetryBase:        100 * time.Millisecond,
		RetryMax:         10 * time.Second,
	}
}

// DefaultMaxWorkers is twice GOMAXPROCS (which follows container CPU
// limits), at least 4: workers spend most of their time waiting on PUTs.
func DefaultMaxWorkers() int {
	return max(4, 2*runtime.GOMAXPROCS(0))
}

// DefaultInstance is "<hostname>-<pid>".
func DefaultInstance() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "jobqueue"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}

// Validate reports every bad field, each error naming the environment
// variable that sets it.
func (c Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	if c.MaxWorkers < 1 {
		bad("MAX_WORKERS", "must be at least 1, got %d", c.MaxWorkers)
	}
	if c.MaxQueue < 1 {
		bad("MAX_QUEUE", "must be at least 1, got %d", c.MaxQueue)
	}
	if c.MaxLength < 1 {
		bad("MAX_LENGTH", "must be at least 1 byte, got %d", c.MaxLength)
	}
	if c.BatchMaxPayloads < 1 {
		bad("BATCH_MAX_PAYLOADS", "must be at least 1, got %d", c.BatchMaxPayloads)
	}
	if c.BatchMaxBytes < 1 {
		bad("BATCH_MAX_BYTES", "must be at least 1 byte, got %d", c.BatchMaxBytes)
	}
	if c.BatchMaxWait <= 0 {
		bad("BATCH_MAX_WAIT", "must be positive, got %s", c.BatchMaxWait)
	}
	switch c.AckMode {
	case AckEnqueued, AckDurable:
	default:
		bad("ACK_MODE", "must be %q or %q, got %q", AckEnqueued, AckDurable, c.AckMode)
	}
	switch c.Compression {
	case CompressionGzip, CompressionNone:
	default:
		bad("COMPRESSION", "must be %q or %q, got %q", CompressionGzip, CompressionNone, c.Compression)
	}
	for _, t := range c.APITokens {
		if t == "" {
			bad("API_TOKENS", "empty token in the list")
			break
		}
	}
	if c.Instance == "" {
		bad("INSTANCE", "must not be empty")
	}
	for _, r := range c.Instance {
		if r == '/' || r < 0x20 {
			bad("INSTANCE", "%q: no '/' or control characters (it is part of object keys)", c.Instance)
			break
		}
	}
	if c.PutTimeout <= 0 {
		bad("BLOB_PUT_TIMEOUT", "must be positive, got %s", c.PutTimeout)
	}
	if c.AckTimeout <= 0 {
		bad("ACK_TIMEOUT", "must be positive, got %s", c.AckTimeout)
	}
	if c.RetryBase <= 0 || c.RetryMax < c.RetryBase {
		errs = append(errs, fmt.Errorf("retry backoff: need 0 < RetryBase <= RetryMax, got %s, %s", c.RetryBase, c.RetryMax))
	}
	return errors.Join(errs...)
}
