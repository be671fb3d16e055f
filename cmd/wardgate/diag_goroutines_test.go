package main

import (
	"context"
	"encoding/json"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardgate/wardgate/diag/profile"
	"github.com/wardgate/wardgate/internal/testutil"
)

func TestDiagGoroutinesCLI(t *testing.T) {
	target := diagAdmin(t)
	ch := make(chan struct{})
	defer close(ch)
	var in atomic.Int64
	for i := 0; i < 7; i++ {
		go pprof.Do(context.Background(), pprof.Labels("trace_id", "cli-trace"), func(context.Context) { diagLabeledWait(ch, &in) })
	}
	testutil.WaitCount(t, &in, 7, time.Minute)
	deadline := time.Now().Add(time.Minute)
	for {
		stdout, stderr, code := runWardgate(t, t.TempDir(), "diag", "goroutines", "--target", target, "--label", "trace_id=cli-trace", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var rep profile.GoroutinesReport
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("json: %v\n%s", err, stdout)
		}
		// --label keeps only the labeled goroutines; once all are parked
		// they form one group.
		if len(rep.Groups) == 1 && rep.Groups[0].Count == 7 {
			g := rep.Groups[0]
			if !strings.HasSuffix(g.Culprit, ".diagLabeledWait") || strings.Join(g.Labels["trace_id"], ",") != "cli-trace" || g.WaitReason != "chan receive" || len(g.IDs) != 7 {
				t.Fatalf("group %+v", g)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("groups never settled to one group of 7: %s", stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stdout, _, code := runWardgate(t, t.TempDir(), "diag", "goroutines", "--target", target)
	if code != 0 || !strings.Contains(stdout, "label trace_id: cli-trace") || !strings.Contains(stdout, "diag_profile_test.go:") {
		t.Fatalf("text output (exit %d):\n%s", code, stdout)
	}
	if !strings.HasPrefix(stdout, "Findings\n") {
		t.Fatalf("output does not open with Findings:\n%s", stdout)
	}

	// 150 goroutines blocked on a send nobody receives: a leak, named on
	// the first finding's line, above every group.
	stuck := make(chan int)
	var sending atomic.Int64
	for i := 0; i < 150; i++ {
		go diagLeakySend(stuck, &sending)
	}
	defer func() {
		for i := 0; i < 150; i++ {
			<-stuck
		}
	}()
	testutil.WaitCount(t, &sending, 150, time.Minute)
	deadline = time.Now().Add(time.Minute)
	for {
		stdout, _, code = runWardgate(t, t.TempDir(), "diag", "goroutines", "--target", target)
		lines := strings.SplitN(stdout, "\n", 3)
		if code == 0 && len(lines) > 1 && strings.Contains(lines[1], "leak") && strings.Contains(lines[1], ".diagLeakySend") && strings.Contains(lines[1], "150 goroutine(s)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first finding does not name diagLeakySend (exit %d):\n%s", code, stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
