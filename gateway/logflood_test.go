package gateway

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPerRequestLogsAreSummarized: conditions logged once per request or
// attempt (no healthy target, a failed upstream attempt) are counted by
// metrics; at saturation the log gets the first occurrence and then a
// summary whose "count" accounts for the rest, not a line per request.
func TestPerRequestLogsAreSummarized(t *testing.T) {
	be := newBackend(t, "a", nil)
	f := newFixture(t, fmt.Sprintf(`routes:
  - path_prefix: /dead
    upstream: d
  - path_prefix: /
    upstream: u
upstreams:
  u:
    targets:
      - {url: %q}
  d:
    targets:
      - {url: %q}
`, be.URL, deadURL(t)))
	f.g.table.Load().upstreams["u"].set.Load().targets[0].SetHealthy(false)

	const clients, each = 8, 150
	var unhealthy, dead atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				path, n := "/x", &unhealthy
				if i%2 == 1 {
					path, n = "/dead/x", &dead
				}
				resp, err := http.Get(f.public.URL + path)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	f.g.summary.Flush()

	sum := func(msg string) (lines, total int) {
		for _, l := range f.logs.lines(msg) {
			lines++
			if c, ok := l["count"].(float64); ok {
				total += int(c)
			} else {
				total++
			}
		}
		return lines, total
	}
	// The unhealthy upstream: every request is one "no healthy target"
	// (the dead one's target may be ejected too and add its own).
	noHealthy, noHealthyTotal := sum("no healthy target")
	attempts, attemptsTotal := sum("upstream attempt failed")
	t.Logf("%d + %d refused requests: %d lines for %d no-healthy-target, %d lines for %d failed attempts",
		unhealthy.Load(), dead.Load(), noHealthy, noHealthyTotal, attempts, attemptsTotal)
	if unhealthy.Load() != clients*each/2 || dead.Load() != clients*each/2 {
		t.Fatalf("%d and %d 5xx answers, want %d each", unhealthy.Load(), dead.Load(), clients*each/2)
	}
	if noHealthyTotal < int(unhealthy.Load()) || noHealthyTotal+attemptsTotal < clients*each {
		t.Fatalf("log lines account for %d no-healthy-target and %d failed attempts; %d requests were refused",
			noHealthyTotal, attemptsTotal, clients*each)
	}
	// One line at once and one summary per condition (upstream, route or
	// target) and interval (10s by default, a loaded machine may take
	// longer than one).
	if bound := 6 + 4*int(elapsed/(10*time.Second)); noHealthy > bound || attempts > bound {
		t.Fatalf("%d and %d lines for %d requests: a line per request", noHealthy, attempts, clients*each)
	}
}
