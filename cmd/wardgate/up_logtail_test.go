package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The gateway buffers its log (internal/logring). A gateway that dies of a
// fatal signal mid-traffic (SIGQUIT with GOTRACEBACK=crash: the runtime
// dumps and aborts, no defer and no flush runs, as for `concurrent map
// writes`) still leaves its last access-log lines in the post-mortem up
// writes, log-tail.txt, and no line it logged is lost: each is in the
// child's stderr.log (written out) or in log-tail.txt (still buffered).
func TestUpGatewayCrashKeepsLastAccessLogLines(t *testing.T) {
	u := startUp(t, "--jobqueues", "1")
	gw := u.rows["gateway"]
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) error {
		resp, err := client.Get(gw.public + path)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}

	// Load on another path keeps the gateway logging until it dies.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				_ = get("/load") // fails while the gateway is down
			}
		}()
	}
	// Markers one at a time: an access-log line is logged before the
	// response leaves the handler chain, so each answered marker is logged.
	const markers = 300
	for i := range markers {
		if err := get(fmt.Sprintf("/marker-%d", i)); err != nil {
			cancel()
			t.Fatalf("marker %d: %v", i, err)
		}
	}
	if err := syscall.Kill(gw.pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	cancel() // up restarts the gateway on the same socket: stop the load
	wg.Wait()

	pm := u.waitLog("the gateway's post-mortem", func(m map[string]any) bool {
		return m["postmortem"] != nil && m["child"] == "gateway"
	})
	dir, _ := pm["postmortem"].(string)
	tailPath, _ := pm["log_tail"].(string)
	if tailPath != filepath.Join(dir, "log-tail.txt") {
		t.Fatalf("post-mortem line %v: log_tail %q, want %s/log-tail.txt", pm, tailPath, dir)
	}
	tail, err := os.ReadFile(tailPath)
	if err != nil {
		t.Fatal(err)
	}
	stderrLog, err := os.ReadFile(filepath.Join(u.data, "run", "gateway", "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}

	inTail := accessLogPaths(t, tail, true)
	inStderr := accessLogPaths(t, stderrLog, false)
	last := fmt.Sprintf("/marker-%d", markers-1)
	if !inTail[last] {
		t.Errorf("log-tail.txt has no access-log line for %s, the last marker answered before the crash", last)
	}
	onlyInTail := 0
	for i := range markers {
		p := fmt.Sprintf("/marker-%d", i)
		switch {
		case !inTail[p] && !inStderr[p]:
			t.Errorf("the access-log line of %s is lost: in neither stderr.log nor log-tail.txt", p)
		case !inStderr[p]:
			onlyInTail++
		}
	}
	t.Logf("log-tail.txt: %d bytes, %d access-log lines (%d markers only there); up says %v bytes were unflushed",
		len(tail), len(inTail), onlyInTail, pm["log_unflushed"])
}

// accessLogPaths returns the paths of the gateway's access-log lines in b
// (its JSON log; other lines, such as a crash dump, are skipped). With
// whole set, every line must be a complete JSON record.
func accessLogPaths(t *testing.T, b []byte, whole bool) map[string]bool {
	t.Helper()
	paths := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			if whole {
				t.Errorf("not a whole JSON line: %.120q (%v)", line, err)
			}
			continue
		}
		if m["msg"] == "http request" {
			paths[m["path"].(string)] = true
		}
	}
	return paths
}
