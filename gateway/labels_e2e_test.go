package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// TestE2ENoStaleTraceLabels: goroutines that outlive a request (the
// upstream keep-alive connections it dialed, the client's connection to the
// gateway) carry none of its pprof labels once it has finished. The
// requests run concurrently so that each dials its own upstream connection
// from its own labelled goroutine; there are no health checks, so no
// connection was dialed before them.
func TestE2ENoStaleTraceLabels(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	const n = 6
	var arrived atomic.Int64
	all := make(chan struct{})
	var allOnce sync.Once
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) >= n {
			allOnce.Do(func() { close(all) })
		}
		select { // hold every request until all are in flight
		case <-all:
		case <-time.After(20 * time.Second):
		}
		io.WriteString(w, "ok")
	})
	p := startGateway(t, `
routes: [{path_prefix: /, upstream: u}]
upstreams: {u: {targets: [{url: "`+be.URL+`"}]}}
`)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	t.Cleanup(client.CloseIdleConnections)
	traceIDs := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		tid := fmt.Sprintf("%032x", 0xabc000+i)
		traceIDs[tid] = true
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, p.public+"/x", nil)
			req.Header.Set("Traceparent", "00-"+tid+"-00f067aa0ba902b7-01")
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				errs <- fmt.Errorf("status %d body %q", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The gateway's handler restores its goroutine's labels right after the
	// last byte of the response is written; poll briefly for that. A stale
	// label on a connection goroutine never goes away.
	var stale []string
	var readLoops int
	deadline := time.Now().Add(10 * time.Second)
	for {
		stale, readLoops = labelledGoroutines(t, p.admin, traceIDs)
		if len(stale) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(stale) > 0 {
		t.Errorf("goroutines still carry the trace labels of finished requests:\n%s", strings.Join(stale, "\n"))
	}
	// The upstream keep-alive connections are idle in the pool: the test
	// looked at the goroutines that would carry the labels.
	if readLoops < 1 {
		t.Errorf("no idle upstream connection (persistConn.readLoop) in the goroutine profile: the test proves nothing")
	}
}

// labelledGoroutines fetches the gateway's goroutine profile (the proto
// form, as `diag` does) and returns the stacks that carry one of traceIDs,
// and how many goroutines are persistConn read loops.
func labelledGoroutines(t *testing.T, admin string, traceIDs map[string]bool) (stale []string, readLoops int) {
	t.Helper()
	resp, err := http.Get(admin + "/debug/pprof/goroutine")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	prof, err := profile.Parse(resp.Body)
	if err != nil {
		t.Fatalf("goroutine profile: %v", err)
	}
	for _, s := range prof.Sample {
		var funcs []string
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil {
					funcs = append(funcs, l.Function.Name)
				}
			}
		}
		stack := strings.Join(funcs, " < ")
		if strings.Contains(stack, "net/http.(*persistConn).readLoop") {
			readLoops += int(s.Value[0])
		}
		for _, id := range s.Label["trace_id"] {
			if traceIDs[id] {
				stale = append(stale, fmt.Sprintf("%d× trace_id=%s labels=%v: %s", s.Value[0], id, s.Label, stack))
			}
		}
	}
	return stale, readLoops
}
