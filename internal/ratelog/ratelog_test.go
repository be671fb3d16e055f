package ratelog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is an io.Writer safe for the timer goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the JSON lines written so far.
func (l *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(l.b.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// occurrences adds up what the lines stand for: 1 for a line written at
// once, count for a summary line.
func occurrences(lines []map[string]any, msg string) (total, n int) {
	for _, l := range lines {
		if l["msg"] != msg {
			continue
		}
		n++
		if c, ok := l["count"].(float64); ok {
			total += int(c)
		} else {
			total++
		}
	}
	return total, n
}

func newLogger(buf *lockedBuffer, o Options) (*slog.Logger, *Handler) {
	h := NewHandler(slog.NewJSONHandler(buf, nil), o)
	return slog.New(h), h
}

// TestFloodBecomesOneLinePlusSummary: 1000 occurrences of one condition
// and 10 of another are two lines at once and, at the flush, one summary
// each whose count accounts for every other occurrence.
func TestFloodBecomesOneLinePlusSummary(t *testing.T) {
	var buf lockedBuffer
	log, h := newLogger(&buf, Options{Interval: time.Hour, KeyAttrs: []string{"reason"}})
	for i := range 1000 {
		log.Warn("payloads refused", "reason", "full", "i", i)
	}
	for i := range 10 {
		log.Warn("payloads refused", "reason", "draining", "i", i)
	}
	if got := len(buf.lines(t)); got != 2 {
		t.Fatalf("%d lines before the flush, want 2 (the first of each condition)", got)
	}
	h.Flush()
	lines := buf.lines(t)
	if len(lines) != 4 {
		t.Fatalf("%d lines after the flush, want 4", len(lines))
	}
	counts := map[string]float64{}
	for _, l := range lines[2:] {
		counts[l["reason"].(string)] = l["count"].(float64)
		if l["interval"] == nil {
			t.Errorf("summary without interval: %v", l)
		}
	}
	if counts["full"] != 999 || counts["draining"] != 9 {
		t.Fatalf("summary counts %v, want full 999 and draining 9", counts)
	}
	if lines[2]["i"] == nil {
		t.Errorf("a summary carries its last occurrence's attributes: %v", lines[2])
	}
	// After a flush the next occurrence is written at once.
	log.Warn("payloads refused", "reason", "full")
	if got := len(buf.lines(t)); got != 5 {
		t.Fatalf("%d lines, want 5", got)
	}
}

// TestSummaryEachInterval: while a condition goes on, a summary is written
// per interval without any flush; once an interval passes without it, its
// next occurrence is written at once.
func TestSummaryEachInterval(t *testing.T) {
	var buf lockedBuffer
	log, h := newLogger(&buf, Options{Interval: 50 * time.Millisecond})
	for range 5 {
		log.Error("upstream attempt failed")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		total, n := occurrences(buf.lines(t), "upstream attempt failed")
		if total == 5 && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no summary line after a minute: %d lines for %d occurrences", n, total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for {
		h.st.mu.Lock()
		open := len(h.st.windows)
		h.st.mu.Unlock()
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the window never closed after a quiet interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	log.Error("upstream attempt failed")
	if total, n := occurrences(buf.lines(t), "upstream attempt failed"); total != 6 || n != 3 {
		t.Fatalf("after a quiet interval: %d lines for %d occurrences, want 3 for 6", n, total)
	}
}

// TestManyKeysBounded: past MaxKeys, conditions are summarized by message
// alone, so a key attribute with unbounded values cannot flood either.
func TestManyKeysBounded(t *testing.T) {
	var buf lockedBuffer
	log, h := newLogger(&buf, Options{Interval: time.Hour, KeyAttrs: []string{"target"}, MaxKeys: 4})
	for i := range 1000 {
		log.Warn("upstream attempt failed", "target", fmt.Sprint("10.0.0.", i))
	}
	if n := len(buf.lines(t)); n != 5 {
		t.Fatalf("%d lines for 1000 distinct targets with MaxKeys 4, want 5", n)
	}
	h.Flush()
	if total, _ := occurrences(buf.lines(t), "upstream attempt failed"); total != 1000 {
		t.Fatalf("lines account for %d occurrences, want 1000", total)
	}
}

// TestVaryingMessagesBounded: messages that embed a value (net/http's
// "TLS handshake error from ADDR") are summarized by level past twice
// MaxKeys.
func TestVaryingMessagesBounded(t *testing.T) {
	var buf lockedBuffer
	log, h := newLogger(&buf, Options{Interval: time.Hour, MaxKeys: 3})
	for i := range 1000 {
		log.Warn(fmt.Sprintf("http: TLS handshake error from 10.0.0.%d:1234: EOF", i))
	}
	if n := len(buf.lines(t)); n != 7 {
		t.Fatalf("%d lines for 1000 distinct messages with MaxKeys 3, want 7", n)
	}
	h.Flush()
	total := 0
	for _, l := range buf.lines(t) {
		if c, ok := l["count"].(float64); ok {
			total += int(c)
		} else {
			total++
		}
	}
	if total != 1000 {
		t.Fatalf("lines account for %d occurrences, want 1000", total)
	}
}

// TestConcurrentCountsAddUp: from many goroutines, with intervals ending
// meanwhile, the lines account for every occurrence exactly (run with
// -race).
func TestConcurrentCountsAddUp(t *testing.T) {
	var buf lockedBuffer
	log, h := newLogger(&buf, Options{Interval: 2 * time.Millisecond, KeyAttrs: []string{"g"}})
	var wg sync.WaitGroup
	const goroutines, each = 8, 2000
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := log.With("worker", g)
			for range each {
				l.InfoContext(context.Background(), "refused", "g", g%2)
			}
		}()
	}
	wg.Wait()
	h.Flush()
	total, n := occurrences(buf.lines(t), "refused")
	if total != goroutines*each {
		t.Fatalf("lines account for %d occurrences, want %d", total, goroutines*each)
	}
	if n >= total/4 {
		t.Fatalf("%d lines for %d occurrences: not summarized", n, total)
	}
}
