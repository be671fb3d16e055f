package watch_test

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gpprof "github.com/google/pprof/profile"

	"github.com/wardgate/wardgate/diag/watch"
	"github.com/wardgate/wardgate/internal/testutil"
)

var targetBin string

func TestMain(m *testing.M) {
	os.Exit(testutil.RunMain(m, &targetBin, "watch-test-", "target", "./testdata/target"))
}

// startTarget runs the test program and returns its admin URL and pid.
func startTarget(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(targetBin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("target did not print its admin URL: %v", err)
	}
	u, ok := strings.CutPrefix(strings.TrimSpace(line), "admin=")
	if !ok {
		t.Fatalf("unexpected target output %q", line)
	}
	return u, cmd.Process.Pid
}

func newWatcher(t *testing.T, cfg watch.Config) (*watch.Watcher, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	cfg.Client = &http.Client{Timeout: 2 * time.Minute}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.OutDir == "" {
		cfg.OutDir = t.TempDir()
	}
	w, err := watch.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, logs
}

func bundles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

func readTrigger(t *testing.T, dir string) watch.Trigger {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, watch.TriggerFile))
	if err != nil {
		t.Fatal(err)
	}
	var tr watch.Trigger
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("trigger.json: %v\n%s", err, b)
	}
	return tr
}

func parseProfile(t *testing.T, path string) *gpprof.Profile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := gpprof.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return p
}

func TestGoroutineTriggerAndCooldown(t *testing.T) {
	target, _ := startTarget(t, "-goroutines", "300")
	out := t.TempDir()
	w, logs := newWatcher(t, watch.Config{Target: target, Goroutines: 200, Cooldown: time.Hour, OutDir: out})
	ctx := context.Background()

	fired, err := w.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fired) != 1 || fired[0].Reason != watch.ReasonGoroutines {
		t.Fatalf("fired %+v, want one goroutines trigger", fired)
	}
	dirs := bundles(t, out)
	if len(dirs) != 1 || !strings.HasSuffix(dirs[0], "-goroutines") {
		t.Fatalf("bundles %v", dirs)
	}
	bdir := filepath.Join(out, dirs[0])
	tr := readTrigger(t, bdir)
	if tr.Reason != "goroutines" || tr.Value < 300 || tr.Threshold != 200 || tr.Time.IsZero() {
		t.Fatalf("trigger.json %+v", tr)
	}
	if len(tr.Errors) > 0 {
		t.Fatalf("capture errors: %v", tr.Errors)
	}
	p := parseProfile(t, filepath.Join(bdir, "goroutine.pb.gz"))
	var stuck int64
	for _, s := range p.Sample {
		if s.HasLabel("trace_id", "stuck-trace") {
			stuck += s.Value[0]
		}
	}
	if stuck != 300 {
		t.Fatalf("goroutine profile has %d goroutines labeled stuck-trace, want 300", stuck)
	}
	txt, err := os.ReadFile(filepath.Join(bdir, "goroutines.txt"))
	if err != nil || !strings.Contains(string(txt), "main.stuckHandler") {
		t.Fatalf("goroutines.txt missing or lacks stuckHandler: %v", err)
	}
	// The verdict: 300 goroutines parked in stuckHandler, a leak named by
	// the first finding, with their trace ID.
	if len(tr.Findings) == 0 || tr.Findings[0].Kind != "leak" || tr.Findings[0].Function != "main.stuckHandler" || tr.Findings[0].Goroutines != 300 {
		t.Fatalf("trigger.json findings %+v, want a leak of 300 in main.stuckHandler", tr.Findings)
	}
	ftxt, err := os.ReadFile(filepath.Join(bdir, watch.FindingsFile))
	if err != nil || !strings.Contains(strings.SplitN(string(ftxt), "\n", 5)[3], "main.stuckHandler") {
		t.Fatalf("findings.txt does not name main.stuckHandler on its first finding's line: %v\n%s", err, ftxt)
	}
	if fi, err := os.Stat(bdir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("bundle dir mode: %v %v", fi.Mode(), err)
	}

	// Still above the threshold, but within the cooldown: no new bundle.
	fired, err = w.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fired) != 0 || len(bundles(t, out)) != 1 {
		t.Fatalf("second check within cooldown fired %+v, bundles %v", fired, bundles(t, out))
	}
	if !strings.Contains(logs.String(), `"msg":"watch trigger"`) || !strings.Contains(logs.String(), `"msg":"watch check"`) ||
		!strings.Contains(logs.String(), "in cooldown") {
		t.Fatalf("logs lack check/trigger/cooldown lines:\n%s", logs.String())
	}
	if w.Captures() != 1 {
		t.Fatalf("captures %d", w.Captures())
	}
}

func TestCooldownExpires(t *testing.T) {
	target, _ := startTarget(t, "-goroutines", "50")
	out := t.TempDir()
	w, _ := newWatcher(t, watch.Config{Target: target, Goroutines: 20, Cooldown: time.Nanosecond, OutDir: out})
	for i := 0; i < 2; i++ {
		fired, err := w.Check(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(fired) != 1 {
			t.Fatalf("check %d fired %d triggers, want 1 (cooldown is 1ns)", i, len(fired))
		}
	}
	if got := bundles(t, out); len(got) != 2 {
		t.Fatalf("bundles %v, want 2 distinct directories", got)
	}
}

func TestNoTriggerBelowThreshold(t *testing.T) {
	target, _ := startTarget(t, "-goroutines", "10", "-heap-mb", "8")
	out := t.TempDir()
	w, _ := newWatcher(t, watch.Config{Target: target, Goroutines: 100000, HeapBytes: 64 << 30, OutDir: out})
	for i := 0; i < 3; i++ {
		fired, err := w.Check(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(fired) != 0 {
			t.Fatalf("fired below threshold: %+v", fired)
		}
	}
	if got := bundles(t, out); len(got) != 0 {
		t.Fatalf("bundles written below threshold: %v", got)
	}
}

func TestHeapTrigger(t *testing.T) {
	target, _ := startTarget(t, "-heap-mb", "96")
	out := t.TempDir()
	w, _ := newWatcher(t, watch.Config{Target: target, HeapBytes: 48 << 20, OutDir: out})
	fired, err := w.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(fired) != 1 || fired[0].Reason != watch.ReasonHeap || fired[0].Value < 96<<20 {
		t.Fatalf("fired %+v", fired)
	}
	p := parseProfile(t, filepath.Join(fired[0].Dir, "heap.pb.gz"))
	var found bool
	for _, s := range p.Sample {
		for _, loc := range s.Location {
			for _, ln := range loc.Line {
				found = found || ln.Function.Name == "main.hoard"
			}
		}
	}
	if !found {
		t.Fatal("heap profile in the bundle does not show main.hoard")
	}
}

func TestCPUTriggerWithCore(t *testing.T) {
	target, pid := startTarget(t, "-spin")
	out := t.TempDir()
	// A spinning goroutine uses about one core; 5% leaves room for a
	// loaded test machine.
	w, _ := newWatcher(t, watch.Config{Target: target, CPUPercent: 5, Interval: 500 * time.Millisecond,
		CPUProfileSeconds: 1, CorePID: pid, OutDir: out})
	fired, err := w.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(fired) != 1 || fired[0].Reason != watch.ReasonCPU {
		t.Fatalf("fired %+v, want a cpu trigger", fired)
	}
	tr := readTrigger(t, fired[0].Dir)
	if len(tr.Errors) > 0 {
		t.Fatalf("capture errors: %v", tr.Errors)
	}
	p := parseProfile(t, filepath.Join(tr.Dir, "cpu.pb.gz"))
	var burn bool
	for _, s := range p.Sample {
		for _, loc := range s.Location {
			for _, ln := range loc.Line {
				burn = burn || ln.Function.Name == "main.burn"
			}
		}
	}
	if !burn {
		t.Fatal("cpu profile does not show main.burn")
	}
	core, err := os.ReadFile(filepath.Join(tr.Dir, "core", "core"))
	if err != nil || len(core) < 4 || string(core[1:4]) != "ELF" {
		t.Fatalf("no ELF core in the bundle: %v", err)
	}
	if _, err := os.Stat(filepath.Join(tr.Dir, "core", "bundle.json")); err != nil {
		t.Fatal(err)
	}
}

func TestRunStopsAtMaxCapturesAndOnCancel(t *testing.T) {
	target, _ := startTarget(t, "-goroutines", "50")
	out := t.TempDir()
	w, _ := newWatcher(t, watch.Config{Target: target, Goroutines: 20, Interval: 20 * time.Millisecond, MaxCaptures: 1, OutDir: out})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run did not stop after max captures")
	}
	if got := bundles(t, out); len(got) != 1 {
		t.Fatalf("bundles %v", got)
	}

	// Below threshold, Run keeps polling until cancelled.
	w2, logs := newWatcher(t, watch.Config{Target: target, Goroutines: 100000, Interval: 10 * time.Millisecond, OutDir: out})
	ctx2, cancel2 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w2.Run(ctx2) }()
	deadline := time.Now().Add(time.Minute)
	for strings.Count(logs.String(), `"msg":"watch check"`) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not poll")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel2()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	c := &http.Client{}
	for _, cfg := range []watch.Config{
		{Client: c, Target: "http://127.0.0.1:1", OutDir: "x"},                 // no threshold
		{Client: c, Target: "", Goroutines: 1, OutDir: "x"},                    // no target
		{Client: c, Target: "http://127.0.0.1:1", Goroutines: 1},               // no out dir
		{Target: "http://127.0.0.1:1", Goroutines: 1, OutDir: "x"},             // no client
		{Client: c, Target: "http://127.0.0.1:1", Goroutines: -1, OutDir: "x"}, // negative
	} {
		if _, err := watch.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// A process that serves pprof but no /metrics is still watchable: the
// goroutine count and heap come from the debug=1 pprof pages.
func TestFallbackWithoutMetrics(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	w, _ := newWatcher(t, watch.Config{Target: srv.URL, Goroutines: 1, HeapBytes: 1})
	s, err := w.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Goroutines < 2 || s.HeapInuse <= 0 {
		t.Fatalf("fallback poll %+v", s)
	}
	fired, err := w.Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(fired) != 2 {
		t.Fatalf("fired %+v, want goroutines and heap", fired)
	}
}

// With CorePIDFile the core is of the pid the file names at capture time
// (wardgate up rewrites it on every restart); a missing file (a restart in
// progress) is an error in trigger.json, and the profiles are still taken.
func TestCorePIDFile(t *testing.T) {
	target, pid := startTarget(t, "-goroutines", "50")
	pidFile := filepath.Join(t.TempDir(), "pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	w, _ := newWatcher(t, watch.Config{Target: target, Goroutines: 20, Interval: time.Second,
		CorePIDFile: pidFile, OutDir: out})
	fired, err := w.Once(context.Background())
	if err != nil || len(fired) != 1 {
		t.Fatalf("fired %+v, err %v", fired, err)
	}
	tr := readTrigger(t, fired[0].Dir)
	if len(tr.Errors) > 0 {
		t.Fatalf("capture errors: %v", tr.Errors)
	}
	var bundle struct {
		PID int `json:"pid"`
	}
	b, err := os.ReadFile(filepath.Join(tr.Dir, "core", "bundle.json"))
	if err == nil {
		err = json.Unmarshal(b, &bundle)
	}
	if err != nil || bundle.PID != pid {
		t.Fatalf("core bundle of pid %d, want %d (%v)", bundle.PID, pid, err)
	}

	if err := os.Remove(pidFile); err != nil {
		t.Fatal(err)
	}
	w2, _ := newWatcher(t, watch.Config{Target: target, Goroutines: 20, Interval: time.Second,
		CorePIDFile: pidFile, OutDir: t.TempDir()})
	fired, err = w2.Once(context.Background())
	if err != nil || len(fired) != 1 {
		t.Fatalf("without the pid file: fired %+v, err %v", fired, err)
	}
	tr = readTrigger(t, fired[0].Dir)
	if len(tr.Errors) != 1 || !strings.Contains(tr.Errors[0], "pid file") {
		t.Errorf("without the pid file: errors %v, want one naming the pid file", tr.Errors)
	}
	if _, err := os.Stat(filepath.Join(tr.Dir, "goroutine.pb.gz")); err != nil {
		t.Errorf("without the pid file the profiles must still be taken: %v", err)
	}
}
