package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A request the sender got out late (the generator stalled) is charged the
// delay; requests sent on time keep their measured latency.
func TestCorrectedChargesLateSends(t *testing.T) {
	const interval = time.Millisecond
	begin := time.Now()
	var samples []sample
	for i := range 10 {
		samples = append(samples, sample{Seq: uint64(i), Start: begin.Add(time.Duration(i) * interval), Latency: 100 * time.Microsecond})
	}
	// Due at begin+10ms, sent 50ms late.
	samples = append(samples, sample{Seq: 10, Start: begin.Add(60 * time.Millisecond), Latency: 100 * time.Microsecond})
	got := corrected(samples, interval)
	for i := range 10 {
		if got[i] != 100*time.Microsecond {
			t.Errorf("on-time request %d: latency %v, want 100µs", i, got[i])
		}
	}
	if want := 50*time.Millisecond + 100*time.Microsecond; got[10] != want {
		t.Errorf("late request: latency %v, want %v", got[10], want)
	}
	s := summarize(samples, interval, 11*interval)
	if s.Max != 50*time.Millisecond+100*time.Microsecond || s.P50 != 100*time.Microsecond {
		t.Errorf("summary %+v: want p50 100µs and max 50.1ms", s)
	}
}

// An attack on a real loopback server sends the scheduled number of
// requests and measures the server's delay.
func TestAttackLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	s, err := attack(context.Background(), attackConfig{URL: srv.URL, Rate: 200, Duration: time.Second, Timeout: 5 * time.Second, MaxWorkers: 64})
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests < 190 || s.Requests > 210 {
		t.Errorf("%d requests, want about 200 (200/s for 1s)", s.Requests)
	}
	if s.Errors != 0 {
		t.Errorf("%d errors, want 0", s.Errors)
	}
	if s.P50 < 2*time.Millisecond {
		t.Errorf("p50 %v is below the server's 2ms delay", s.P50)
	}
	if !(s.P50 <= s.P99 && s.P99 <= s.P999 && s.P999 <= s.Max) {
		t.Errorf("percentiles out of order: %+v", s)
	}
}

func TestAttackCountsErrorStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusBadGateway)
	}))
	defer srv.Close()
	s, err := attack(context.Background(), attackConfig{URL: srv.URL, Rate: 100, Duration: 500 * time.Millisecond, Timeout: time.Second, MaxWorkers: 16})
	if err != nil {
		t.Fatal(err)
	}
	if s.Requests == 0 || s.Errors != s.Requests {
		t.Errorf("%d errors of %d requests, want all to fail (502)", s.Errors, s.Requests)
	}
}

func TestPlotSVG(t *testing.T) {
	in := `# target load p50 p99 p99.9
wardgate 50% 0.2 1.5 4
caddy 50% 0.25 2 6
wardgate 80% 0.3 3 9
caddy 80% 0.35 4 12
`
	rows, err := readRows(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 || rows[3].Target != "caddy" || rows[3].P999 != 12 {
		t.Fatalf("rows %+v", rows)
	}
	var buf bytes.Buffer
	if err := writeSVG(&buf, rows, "test"); err != nil {
		t.Fatal(err)
	}
	svg := buf.String()
	for _, want := range []string{"<svg", "wardgate", "caddy", "load: 50%", "load: 80%", "p99.9"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if _, err := readRows(strings.NewReader("x 50% 1 nan 2\n")); err == nil {
		t.Error("readRows accepted nan")
	}
}
