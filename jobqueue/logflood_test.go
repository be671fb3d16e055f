package jobqueue_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/jobqueue"
)

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRefusalsAreSummarizedNotFlooded: at saturation (store stuck, queue
// full) every POST is a 503, counted by wardgate.payloads.rejected. The log
// gets the first refusal and then one summary line per interval whose
// "count" accounts for the others: the lines add up to exactly the 503s
// the clients saw, in a number of lines bounded by the time, not by the
// requests.
func TestRefusalsAreSummarizedNotFlooded(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueue = 50
	sink := newGateSink(fileSink(t))
	sink.Close()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	const every = 100 * time.Millisecond
	q, url := startQueue(t, cfg, sink, jobqueue.WithLogger(log), jobqueue.WithLogSummaryInterval(every))
	if r, err := post(t, nil, url, collection(50, "fill")); err != nil || r.code != 202 {
		t.Fatalf("%+v %v", r, err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	var refused atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; refused.Load() < 3000; i++ {
				r, err := post(t, client, url, collection(2, fmt.Sprint(c, "-", i)))
				if err != nil {
					t.Error(err)
					return
				}
				if r.code != 503 {
					t.Errorf("status %d at saturation", r.code)
					return
				}
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sink.Open()
	if err := q.Drain(t.Context()); err != nil { // writes the last summary
		t.Fatal(err)
	}
	lines, total := 0, int64(0)
	for l := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] != "payloads refused" {
			continue
		}
		if m["reason"] != "full" || m["status"] != float64(503) {
			t.Errorf("refusal line %v", m)
		}
		lines++
		if c, ok := m["count"].(float64); ok {
			total += int64(c)
		} else {
			total++
		}
	}
	// A steady flood: one line at once, then one per interval (a gap in
	// the flood longer than an interval can start a window again).
	bound := 2*int(elapsed/every) + 4
	t.Logf("%d refusals in %v: %d log lines (bound %d)", refused.Load(), elapsed.Round(time.Millisecond), lines, bound)
	if total != refused.Load() {
		t.Fatalf("log lines account for %d refusals, clients saw %d", total, refused.Load())
	}
	if lines > bound || lines < 2 {
		t.Fatalf("%d log lines for %d refusals in %v; want between 2 and %d", lines, refused.Load(), elapsed, bound)
	}
}
