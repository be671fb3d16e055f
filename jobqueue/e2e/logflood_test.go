package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestOverloadLogIsBounded: the real binary at saturation (store hung,
// queue full: every POST a 503, 80 MB of stderr in 20 s before). stderr
// gets a bounded number of lines, and the summary lines' counts add up to
// exactly the refusals the clients saw.
func TestOverloadLogIsBounded(t *testing.T) {
	addr, _ := hangingListener(t, "127.0.0.1:0")
	p := start(t, []string{
		"BLOB_URL=s3://ingest?endpoint=http://" + addr + "&region=us-east-1&use_path_style=true",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1",
		"MAX_QUEUE=100", "BLOB_PUT_TIMEOUT=1s", "DRAIN_TIMEOUT=1s",
		"SPILL_DIR=" + filepath.Join(t.TempDir(), "spill"), "BATCH_MAX_WAIT=20ms",
	})
	if code, err := postCollection(http.DefaultClient, p.Public, 100, "fill"); err != nil || code != 202 {
		t.Fatalf("fill: %d %v", code, err)
	}
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	var refused atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; refused.Load() < 4000; i++ {
				code, err := postCollection(client, p.Public, 2, fmt.Sprint(c, "-", i))
				if err != nil {
					t.Error(err)
					return
				}
				if code != http.StatusServiceUnavailable {
					t.Errorf("status %d with the queue full", code)
					return
				}
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := wait(t, p); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.Stderr)
	}
	var lines, refusalLines int
	var refusals int64
	for l := range strings.Lines(p.Stderr.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("stderr line is not JSON: %q", l)
		}
		if m["msg"] == "blob put failed, retrying" {
			continue // per batch and backoff (the hung store), not per request
		}
		lines++
		if m["msg"] == "payloads refused" {
			refusalLines++
			if c, ok := m["count"].(float64); ok {
				refusals += int64(c)
			} else {
				refusals++
			}
		}
	}
	t.Logf("%d refusals in %v: %d stderr lines besides PUT retries (%d of them refusals)", refused.Load(), elapsed.Round(time.Millisecond), lines, refusalLines)
	if refusals != refused.Load() {
		t.Errorf("refusal lines account for %d refusals, clients saw %d", refusals, refused.Load())
	}
	// Per condition: one line at once, one per 10s interval, one at exit.
	bound := 3 + 2*int(elapsed/(10*time.Second))
	if refusalLines > bound || refusalLines == 0 {
		t.Errorf("%d refusal lines; want 1 to %d", refusalLines, bound)
	}
	if lines > 100 {
		t.Errorf("%d stderr lines for %d requests:\n%s", lines, refused.Load(), p.Stderr)
	}
}
