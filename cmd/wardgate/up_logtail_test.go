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
// child's stderr.log: written out by the gateway, or, for the lines it
// still had buffered, appended by up from the ring after the death; the
// same holds after a SIGKILL.
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
	// up appended the lines the gateway never wrote to its stderr.log.
	for i := range markers {
		if p := fmt.Sprintf("/marker-%d", i); !inStderr[p] {
			t.Errorf("the access-log line of %s is not in stderr.log", p)
		}
	}
	t.Logf("log-tail.txt: %d bytes, %d distinct access-log paths; up says %v bytes were unflushed at the crash",
		len(tail), len(inTail), pm["log_unflushed"])

	// SIGKILL (the OOM killer) makes no post-mortem, but the lines the
	// restarted gateway had buffered still reach stderr.log.
	started := u.waitLog("gateway restart", func(m map[string]any) bool {
		return m["msg"] == "child started" && m["child"] == "gateway" && m["pid"] != float64(gw.pid)
	})
	pid := int(started["pid"].(float64))
	waitOK(t, gw.metrics)
	for i := range markers {
		if err := get(fmt.Sprintf("/killed-%d", i)); err != nil {
			t.Fatalf("marker %d after the restart: %v", i, err)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	u.waitLog("the SIGKILLed gateway's exit", func(m map[string]any) bool {
		return m["msg"] == "child died" && m["child"] == "gateway" && m["pid"] == float64(pid)
	})
	stderrLog, err = os.ReadFile(filepath.Join(u.data, "run", "gateway", "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	inStderr = accessLogPaths(t, stderrLog, false)
	for i := range markers {
		if p := fmt.Sprintf("/killed-%d", i); !inStderr[p] {
			t.Errorf("after SIGKILL: the access-log line of %s is not in stderr.log", p)
		}
	}
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
