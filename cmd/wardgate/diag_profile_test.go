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

//go:noinline
func diagLeakySend(ch chan<- int, started *atomic.Int64) {
	started.Add(1)
	ch <- 1
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
