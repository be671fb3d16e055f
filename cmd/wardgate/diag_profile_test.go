package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gpprof "github.com/google/pprof/profile"

	"github.com/wardgate/wardgate/diag/profile"
	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/telemetry"
)

// diagAdmin serves the real admin handler of this test process on a
// loopback port, for the wardgate binary to inspect.
func diagAdmin(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	tel, err := telemetry.Setup(ctx, "diag-profile-test")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tel.AdminHandler("", nil))
	t.Cleanup(func() { srv.Close(); _ = tel.Shutdown(ctx) })
	return srv.URL
}

// runWardgate runs the built binary and returns stdout, stderr, exit code.
func runWardgate(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, wardgateBin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run wardgate %v: %v", args, err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

//go:noinline
func diagLeakyFn(ch <-chan struct{}, in *atomic.Int64) {
	in.Add(1)
	<-ch
}

func TestDiagProfileAndDiffCLI(t *testing.T) {
	target := diagAdmin(t)
	dir := t.TempDir()

	// Default file name: <type>-<host_port>-<UTC time>.pb.gz in the cwd.
	stdout, stderr, code := runWardgate(t, dir, "diag", "profile", "--target", target, "--type", "goroutine", "--top", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	host := strings.ReplaceAll(strings.TrimPrefix(target, "http://"), ":", "_")
	matches, _ := filepath.Glob(filepath.Join(dir, "goroutine-"+host+"-*Z.pb.gz"))
	if len(matches) != 1 {
		t.Fatalf("saved files %v; stdout:\n%s", matches, stdout)
	}
	if !strings.Contains(stdout, "Type: goroutine (count)") || !strings.Contains(stdout, "flat%") {
		t.Fatalf("top output:\n%s", stdout)
	}

	ch := make(chan struct{})
	defer close(ch)
	base := filepath.Join(dir, "base.pb.gz")
	if _, stderr, code := runWardgate(t, dir, "diag", "profile", "--target", target, "--type", "goroutine", "--out", base); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var in atomic.Int64
	for i := 0; i < 500; i++ {
		go diagLeakyFn(ch, &in)
	}
	testutil.WaitCount(t, &in, 500, time.Minute)
	newP := filepath.Join(dir, "new.pb.gz")
	if _, stderr, code := runWardgate(t, dir, "diag", "profile", "--target", target, "--type", "goroutine", "--out", newP); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// Flags after the positional arguments work too.
	stdout, stderr, code = runWardgate(t, dir, "diag", "profile", "diff", base, newP, "--cum", "--json")
	if code != 0 {
		t.Fatalf("diff exit %d: %s", code, stderr)
	}
	var d profile.DiffReport
	if err := json.Unmarshal([]byte(stdout), &d); err != nil {
		t.Fatalf("diff json: %v\n%s", err, stdout)
	}
	var found bool
	for _, e := range d.Grew {
		if strings.HasSuffix(e.Function, ".diagLeakyFn") && e.CumDelta == 500 {
			found = true
		}
	}
	if !found || d.Delta < 500 {
		t.Fatalf("diff does not show diagLeakyFn +500: %+v", d)
	}
	stdout, _, code = runWardgate(t, dir, "diag", "profile", "diff", "--cum", "--top", "5", base, newP)
	if code != 0 || !strings.Contains(stdout, "Grew") || !strings.Contains(stdout, "diagLeakyFn") || !strings.Contains(stdout, "+500") {
		t.Fatalf("text diff (exit %d):\n%s", code, stdout)
	}

	// A diff of profiles of different kinds is refused.
	heap := filepath.Join(dir, "heap.pb.gz")
	if _, stderr, code := runWardgate(t, dir, "diag", "profile", "--target", target, "--type", "heap", "--out", heap); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if f, err := os.Open(heap); err != nil {
		t.Fatal(err)
	} else if _, err := gpprof.Parse(f); err != nil {
		t.Fatalf("saved heap profile does not parse: %v", err)
	}
	if _, stderr, code := runWardgate(t, dir, "diag", "profile", "diff", base, heap); code != 1 || stderr == "" {
		t.Fatalf("goroutine vs heap diff: exit %d, stderr %q", code, stderr)
	}
}

//go:noinline
func diagLabeledWait(ch <-chan struct{}, in *atomic.Int64) {
	in.Add(1)
	<-ch
}

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

//go:noinline
func diagLeakySend(ch chan<- int, started *atomic.Int64) {
	started.Add(1)
	ch <- 1
}

func TestDiagWatchOnceCLI(t *testing.T) {
	target := diagAdmin(t)
	out := t.TempDir()
	// This process has more than one goroutine: --goroutines 1 triggers.
	stdout, stderr, code := runWardgate(t, out, "diag", "watch", "--target", target, "--goroutines", "1", "--once", "--out", out)
	if code != exitTriggered {
		t.Fatalf("exit %d, want %d: %s", code, exitTriggered, stderr)
	}
	if !strings.Contains(stderr, `"msg":"watch trigger"`) {
		t.Fatalf("no trigger log line: %s", stderr)
	}
	first, _, _ := strings.Cut(stdout, "\n")
	dir := strings.TrimSpace(first[strings.LastIndex(first, ": ")+2:])
	for _, f := range []string{"trigger.json", "goroutine.pb.gz", "findings.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("bundle %s: %v (stdout %q)", dir, err, stdout)
		}
	}
	stdout, stderr, code = runWardgate(t, out, "diag", "watch", "--target", target, "--goroutines", "1000000", "--once", "--out", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "no threshold crossed") {
		t.Fatalf("below threshold: exit %d: %s%s", code, stdout, stderr)
	}
}

func TestDiagProfileCLIErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"diag", "profile", "--target", dead, "--type", "heap"}, 1, "target unreachable"},
		{[]string{"diag", "goroutines", "--target", dead}, 1, "target unreachable"},
		{[]string{"diag", "watch", "--target", dead, "--goroutines", "10", "--once", "--out", dir}, 1, "target unreachable"},
		{[]string{"diag", "watch", "--target", dead, "--goroutines", "10", "--out", dir}, 1, "target unreachable"},
		{[]string{"diag", "profile", "--target", dead, "--type", "threads"}, 2, "unknown profile type"},
		{[]string{"diag", "profile", "--type", "heap"}, 2, "--target is required"},
		{[]string{"diag", "profile", "--target", dead, "--type", "heap", "--label", "nolabel"}, 2, "want key=value"},
		{[]string{"diag", "profile", "diff", "only-one.pb.gz"}, 2, "two files"},
		{[]string{"diag", "watch", "--target", dead, "--out", dir}, 2, "at least one threshold"},
		{[]string{"diag", "watch", "--target", dead, "--goroutines", "5", "--core"}, 2, "--core needs --pid"},
	} {
		_, stderr, code := runWardgate(t, dir, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
	for _, sub := range []string{"profile", "goroutines", "watch"} {
		stdout, _, code := runWardgate(t, dir, "diag", sub, "-h")
		if code != 0 || !strings.Contains(stdout, "Usage: wardgate diag "+sub) || !strings.Contains(stdout, "docs/runbooks/") {
			t.Errorf("diag %s -h: exit %d\n%s", sub, code, stdout)
		}
	}
}
