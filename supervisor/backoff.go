package supervisor

import "time"

// Backoff is the restart policy: the first restart waits Initial, each
// further consecutive failure doubles the wait up to Max, and a run that
// stayed up for ResetAfter counts as healthy, so its exit starts over at
// Initial. Zero fields take the defaults (100ms, 10s, 30s).
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	ResetAfter time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 10 * time.Second
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = 30 * time.Second
	}
	return b
}

// Delay returns how long to wait before restart number failures (1 for the
// first consecutive failure) of a run that lasted ran, and the failure count
// to carry to the next exit.
func (b Backoff) Delay(failures int, ran time.Duration) (time.Duration, int) {
	b = b.withDefaults()
	if ran >= b.ResetAfter {
		failures = 0
	}
	failures++
	d := b.Initial
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max), failures
}
