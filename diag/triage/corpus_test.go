package triage_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/diag/analyze"
	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/diag/findings"
	"github.com/wardgate/wardgate/diag/triage"
	"github.com/wardgate/wardgate/internal/testutil"
)

// faultyBins are the corpus's services, built once by TestMain, and
// wardgateBin the wardgate binary (for the single-sample commands).
var faultyBins, wardgateBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "triage-corpus-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := buildCorpus(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	faultyBins = filepath.Join(dir, "bin")
	if wardgateBin, err = testutil.Build(context.Background(), dir, "wardgate", testutil.WardgatePkg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Crash classes need cores next to the process (as in the analyze
	// tests).
	restore, err := testutil.CoresHere()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer restore()
	return m.Run()
}

// buildCorpus copies testdata/faulty into dir as its own module
// (example.com/faulty, so wardgate is a library there, as in a user's
// program) that replaces wardgate with this checkout, and builds every
// service into dir/bin.
func buildCorpus(dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	src := filepath.Join(dir, "src")
	if out, err := exec.Command("cp", "-r", "testdata/faulty", src).CombinedOutput(); err != nil {
		return fmt.Errorf("copy corpus: %v: %s", err, out)
	}
	gomod := fmt.Sprintf("module example.com/faulty\n\ngo 1.26\n\nrequire github.com/wardgate/wardgate v0.0.0\n\nreplace github.com/wardgate/wardgate => %s\n", root)
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "go.sum"), sum, 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-o", filepath.Join(dir, "bin") + "/", "./..."}} {
		cmd := exec.Command("go", args...)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s in the corpus: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// service is one running faulty service.
type service struct {
	cmd         *exec.Cmd
	api, admin  string
	dir         string
	stderr      *bytes.Buffer
	exited      chan struct{}
	stopLoad    context.CancelFunc
	loadStopped sync.WaitGroup
}

func start(t testing.TB, name string, env ...string) *service {
	t.Helper()
	s := &service{dir: t.TempDir(), stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	exe := filepath.Join(s.dir, "exe")
	data, err := os.ReadFile(filepath.Join(faultyBins, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(exe)
	s.cmd.Dir = s.dir
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		if s.stopLoad != nil {
			s.stopLoad()
			s.loadStopped.Wait()
		}
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case l := <-line:
		for _, f := range strings.Fields(l) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "api":
				s.api = v
			case "admin":
				s.admin = v
			}
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s did not start: %s", name, s.stderr.String())
	}
	if s.api == "" || s.admin == "" {
		t.Fatalf("%s: no api/admin line; stderr: %s", name, s.stderr.String())
	}
	return s
}

// post sends one collection of n payloads made by payload(i).
func (s *service) post(ctx context.Context, n int, payload func(i int) string) (int, error) {
	var b strings.Builder
	b.WriteString(`{"version":"1","token":"","data":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(payload(i))
	}
	b.WriteString("]}")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.api+"/v1/payloads", strings.NewReader(b.String()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// load posts collections every interval until the test ends.
func (s *service) load(t testing.TB, every time.Duration, n int, payload func(i int) string) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopLoad = cancel
	s.loadStopped.Add(1)
	go func() {
		defer s.loadStopped.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			_, _ = s.post(rctx, n, payload)
			rcancel()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

func runTriage(t testing.TB, s *service) *triage.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := triage.Run(ctx, triage.Options{Target: s.admin, Interval: 3 * time.Second, OutDir: filepath.Join(t.TempDir(), "bundle"), Progress: &progress})
	if err != nil {
		t.Fatalf("triage: %v\n%s", err, progress.String())
	}
	return rep
}

// wantFirst fails unless the first finding is of kind and names culprit.
func wantFirst(t *testing.T, fs []findings.Finding, kinds []findings.Kind, culprit string, report func() string) {
	t.Helper()
	t.Log(report()) // shown with -v or on failure
	if len(fs) == 0 {
		t.Fatalf("no findings; want %v naming %s\n%s", kinds, culprit, report())
	}
	f := fs[0]
	kindOK := false
	for _, k := range kinds {
		kindOK = kindOK || f.Kind == k
	}
	if !kindOK || f.Function != culprit || f.File == "" || f.Line == 0 || !strings.Contains(f.Headline, culprit) {
		t.Fatalf("first finding: [%s] %s (%s at %s:%d); want %v naming %s\n%s", f.Kind, f.Headline, f.Function, f.File, f.Line, kinds, culprit, report())
	}
}

// firstOf runs a single-sample diag command (goroutines, profile) with
// --json against s and returns its findings and its text output: the other
// commands the runbooks send an SRE to must name the culprit first too.
func firstOf(t *testing.T, s *service, args ...string) ([]findings.Finding, func() string) {
	t.Helper()
	run := func(extra ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, wardgateBin, append(append(append([]string{"diag"}, args...), "--target", s.admin), extra...)...)
		cmd.Dir = t.TempDir()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("wardgate diag %v: %v\n%s", args, err, out)
		}
		return out
	}
	var rep struct {
		Findings []findings.Finding `json:"findings"`
	}
	if err := json.Unmarshal(run("--json"), &rep); err != nil {
		t.Fatal(err)
	}
	return rep.Findings, func() string { return string(run()) }
}

func triageText(r *triage.Report) func() string {
	return func() string {
		var b bytes.Buffer
		_ = r.WriteText(&b)
		return b.String()
	}
}

func payloads(kind string) func(int) string {
	return func(i int) string {
		return fmt.Sprintf(`{"kind":%q,"n":%d,"id":%d,"ip":"10.0.0.%d","to":"u%d"}`, kind, i, i, i%250, i)
	}
}

// waitGoroutines waits until the service has at least n goroutines.
func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func metric(t testing.TB, admin, name string) float64 {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+" ") || strings.HasPrefix(l, name+"{") {
			var v float64
			fields := strings.Fields(l)
			fmt.Sscan(fields[len(fields)-1], &v)
			return v
		}
	}
	return -1
}

func TestCorpusDeadlock(t *testing.T) {
	s := start(t, "deadlock")
	if code, err := s.post(context.Background(), 8, payloads("x")); err != nil || code != 202 {
		t.Fatalf("post: %d %v", code, err)
	}
	waitUntil(t, "workers stuck in the sink", time.Minute, func() bool { return metric(t, s.admin, "wardgate_workers_busy") >= 2 })
	time.Sleep(500 * time.Millisecond) // past the transfer's sleep: now on the second lock
	r := runTriage(t, s)
	wantFirst(t, r.Findings, []findings.Kind{findings.KindDeadlock}, "main.(*ledgerSink).transfer", triageText(r))
	// The cycle in source terms: a goroutine holding from.mu waits for to.mu.
	if ev := strings.Join(r.Findings[0].Evidence, "\n"); !strings.Contains(ev, "hold from.mu (locked at line 39) and wait for to.mu") {
		t.Errorf("deadlock evidence does not show who holds what:\n%s", ev)
	}
	fs, text := firstOf(t, s, "goroutines")
	wantFirst(t, fs, []findings.Kind{findings.KindDeadlock}, "main.(*ledgerSink).transfer", text)
}

func TestCorpusLeak(t *testing.T) {
	s := start(t, "leak")
	if code, err := s.post(context.Background(), 300, payloads("notify")); err != nil || code != 202 {
		t.Fatalf("post: %d %v", code, err)
	}
	waitUntil(t, "leaked goroutines", time.Minute, func() bool { return metric(t, s.admin, "go_goroutines") >= 300 })
	s.load(t, 200*time.Millisecond, 20, payloads("notify"))
	r := runTriage(t, s)
	wantFirst(t, r.Findings, []findings.Kind{findings.KindLeak}, "main.(*notifier).awaitAck", triageText(r))
	if r.Findings[0].Goroutines < 300 {
		t.Errorf("leak finding counts %d goroutines, want ≥ 300", r.Findings[0].Goroutines)
	}
	fs, text := firstOf(t, s, "goroutines")
	wantFirst(t, fs, []findings.Kind{findings.KindLeak}, "main.(*notifier).awaitAck", text)
}

func TestCorpusHungIO(t *testing.T) {
	s := start(t, "hungio")
	if code, err := s.post(context.Background(), 3, payloads("enrich")); err != nil || code != 202 {
		t.Fatalf("post: %d %v", code, err)
	}
	waitUntil(t, "a worker busy", time.Minute, func() bool { return metric(t, s.admin, "wardgate_workers_busy") >= 1 })
	r := runTriage(t, s)
	wantFirst(t, r.Findings, []findings.Kind{findings.KindHungIO, findings.KindStuckQueue}, "main.(*enricher).lookup", triageText(r))
	fs, text := firstOf(t, s, "goroutines")
	wantFirst(t, fs, []findings.Kind{findings.KindHungIO, findings.KindStuckQueue}, "main.(*enricher).lookup", text)
	hung := false
	for _, f := range r.Findings {
		hung = hung || f.Kind == findings.KindHungIO && f.Function == "main.(*enricher).lookup"
	}
	if !hung {
		t.Errorf("no hung-io finding naming main.(*enricher).lookup\n%s", triageText(r)())
	}
	// The remote address of the dead dependency (the only outbound
	// connection) is named.
	for _, f := range r.Findings {
		if f.Kind == findings.KindHungIO && !strings.Contains(strings.Join(f.Evidence, "\n"), "outbound connections (from /proc/") {
			t.Errorf("hung-io evidence lacks the outbound connections: %q", f.Evidence)
		}
	}
}

func TestCorpusStuckOnChannel(t *testing.T) {
	s := start(t, "stuckchan")
	if code, err := s.post(context.Background(), 3, payloads("price")); err != nil || code != 202 {
		t.Fatalf("post: %d %v", code, err)
	}
	waitUntil(t, "a worker busy", time.Minute, func() bool { return metric(t, s.admin, "wardgate_workers_busy") >= 1 })
	r := runTriage(t, s)
	wantFirst(t, r.Findings, []findings.Kind{findings.KindDeadlock, findings.KindLeak}, "main.(*pricer).quote", triageText(r))
}

func TestCorpusStuckQueue(t *testing.T) {
	s := start(t, "stuckqueue")
	time.Sleep(1500 * time.Millisecond) // the sink's refill loop has ended
	for i := 0; i < 10; i++ {
		_, _ = s.post(context.Background(), 20, payloads("x"))
	}
	waitUntil(t, "the queue filling", time.Minute, func() bool { return metric(t, s.admin, "wardgate_queue_depth") >= 150 })
	r := runTriage(t, s)
	wantFirst(t, r.Findings, []findings.Kind{findings.KindStuckQueue}, "main.(*throttledSink).Put", triageText(r))
	fs, text := firstOf(t, s, "goroutines")
	wantFirst(t, fs, []findings.Kind{findings.KindStuckQueue}, "main.(*throttledSink).Put", text)
}

func TestCorpusHotLoop(t *testing.T) {
	s := start(t, "hotloop")
	s.load(t, 100*time.Millisecond, 2, payloads("score"))
	waitUntil(t, "a busy worker", time.Minute, func() bool { return metric(t, s.admin, "wardgate_workers_busy") >= 1 })
	r := runTriage(t, s)
	wantFirst(t, r.Findings, []findings.Kind{findings.KindCPU}, "main.(*scorer).score", triageText(r))
	fs, text := firstOf(t, s, "profile", "--type", "cpu", "--seconds", "2")
	wantFirst(t, fs, []findings.Kind{findings.KindCPU}, "main.(*scorer).score", text)
}

func TestCorpusGrowth(t *testing.T) {
	s := start(t, "growth")
	s.load(t, 50*time.Millisecond, 4, payloads("remember"))
	r := runTriage(t, s)
	wantFirst(t, r.Findings, []findings.Kind{findings.KindMemoryGrowth}, "main.(*recorder).remember", triageText(r))
	if r.Findings[0].Numbers["grew_bytes"] < 1<<20 {
		t.Errorf("growth %v bytes, want ≥ 1 MiB", r.Findings[0].Numbers["grew_bytes"])
	}
	fs, text := firstOf(t, s, "profile", "--type", "heap")
	wantFirst(t, fs, []findings.Kind{findings.KindMemoryGrowth}, "main.(*recorder).remember", text)
}

// crashCore runs name until it crashes with GOTRACEBACK=crash and returns
// its directory, laid out like an up post-mortem bundle (core, exe,
// crash.txt).
func crashCore(t testing.TB, name string, payload func(int) string) string {
	t.Helper()
	s := start(t, name, "GOTRACEBACK=crash")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for done := false; !done; {
		_, _ = s.post(ctx, 16, payload)
		select {
		case <-s.exited:
			done = true
		case <-ctx.Done():
			t.Fatalf("%s never crashed", name)
		case <-time.After(20 * time.Millisecond):
		}
	}
	ws, _ := s.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.CoreDump() {
		t.Fatalf("%s: no core (status %v); stderr:\n%s", name, s.cmd.ProcessState, s.stderr.String())
	}
	cores, _ := filepath.Glob(filepath.Join(s.dir, "core*"))
	if len(cores) != 1 {
		t.Fatalf("want one core in %s, got %v", s.dir, cores)
	}
	if err := os.Rename(cores[0], filepath.Join(s.dir, bundle.CoreFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, bundle.CrashOutputFile), s.stderr.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return s.dir
}

func analyzeDir(t testing.TB, dir string) (*analyze.Report, func() string) {
	t.Helper()
	opts, err := analyze.OptionsFromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := analyze.Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, func() string {
		var b bytes.Buffer
		_ = r.WriteMarkdown(&b)
		return b.String()
	}
}

func TestCorpusCrashNil(t *testing.T) {
	r, md := analyzeDir(t, crashCore(t, "crashnil", payloads("x")))
	wantFirst(t, r.Findings, []findings.Kind{findings.KindCrash}, "main.(*index).add", md)
	if !strings.Contains(r.Findings[0].Headline, "nil pointer dereference") {
		t.Errorf("headline %q lacks the panic text", r.Findings[0].Headline)
	}
	// The locals of the culprit frame (the nil receiver idx), or why they
	// cannot be read.
	if ev := strings.Join(r.Findings[0].Evidence, "\n"); !strings.Contains(ev, "locals") || !strings.Contains(ev, "idx") {
		t.Errorf("no locals of main.(*index).add, nor a reason, in the evidence: %q", r.Findings[0].Evidence)
	}
	// Findings open the report: the culprit within its first lines.
	lines := strings.Split(md(), "\n")
	if len(lines) > 6 {
		lines = lines[:6]
	}
	if !strings.Contains(strings.Join(lines, "\n"), "main.(*index).add") {
		t.Errorf("culprit not in the report's first lines:\n%s", strings.Join(lines, "\n"))
	}
}

func TestCorpusCrashConcurrentMapWrites(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Log("one CPU: concurrent map writes still happen through preemption, more slowly")
	}
	r, md := analyzeDir(t, crashCore(t, "crashmap", payloads("x")))
	wantFirst(t, r.Findings, []findings.Kind{findings.KindCrash}, "main.(*statsSink).record", md)
	if !strings.Contains(r.Findings[0].Headline, "concurrent map") {
		t.Errorf("headline %q lacks the fatal error", r.Findings[0].Headline)
	}
}
