package analyze

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/internal/testutil"
)

// crasherBin is built once by TestMain from testdata/crasher.
var crasherBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	bin, cleanup, err := testutil.BuildTemp("analyze-test-", "crasher", "./testdata/crasher")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	crasherBin = bin
	restore, err := testutil.CoresHere()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer restore()
	return m.Run()
}

// crash runs the crasher in mode in a fresh directory with
// GOTRACEBACK=crash and returns the directory, which then holds core,
// exe and crash.txt like a post-mortem bundle.
func crash(tb testing.TB, mode string, args ...string) string {
	tb.Helper()
	dir := tb.TempDir()
	exe := filepath.Join(dir, bundle.ExeFile)
	data, err := os.ReadFile(crasherBin)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, append([]string{"-mode", mode, "-crash-output", filepath.Join(dir, bundle.CrashOutputFile)}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOTRACEBACK=crash")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	if mode == "leak" {
		// Wait for "ready", then do what an operator does with a stuck
		// process: SIGQUIT, which GOTRACEBACK=crash turns into a core.
		sc := bufio.NewScanner(stdout)
		ready := false
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready = true
				break
			}
		}
		if !ready {
			tb.Fatalf("crasher never got ready: %s", stderr.String())
		}
		if err := cmd.Process.Signal(syscall.SIGQUIT); err != nil {
			tb.Fatal(err)
		}
	}
	err = cmd.Wait()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || !ws.CoreDump() {
		tb.Fatalf("crasher -mode %s: want a death by signal with a core, got %v (status %v); stderr:\n%s", mode, err, cmd.ProcessState, tail(stderr.String()))
	}
	// kernel.core_uses_pid=1 names it core.PID.
	cores, _ := filepath.Glob(filepath.Join(dir, "core*"))
	if len(cores) != 1 {
		tb.Fatalf("want one core in %s, got %v", dir, cores)
	}
	if cores[0] != filepath.Join(dir, bundle.CoreFile) {
		if err := os.Rename(cores[0], filepath.Join(dir, bundle.CoreFile)); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

func analyzeBundle(t *testing.T, dir string, scripts ...string) *Report {
	t.Helper()
	opts, err := OptionsFromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	opts.Scripts = scripts
	opts.TraceURLTemplate = "http://localhost:16686/trace/{trace_id}"
	r, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", md.String())
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("report JSON does not parse back: %v", err)
	}
	return r
}

func frameNames(fs []Frame) string {
	var names []string
	for _, f := range fs {
		names = append(names, f.Function)
	}
	return strings.Join(names, " < ")
}

func TestPanicCore(t *testing.T) {
	dir := crash(t, "panic")
	r := analyzeBundle(t, dir)

	if !strings.Contains(r.Stop.Fatal, "panic: job 42: negative size -1") {
		t.Errorf("why it stopped: fatal = %q, want the panic message", r.Stop.Fatal)
	}
	if r.Stop.SignalName == "" || !strings.Contains(r.Stop.SignalName, "SIGABRT") {
		t.Errorf("signal = %d %q, want SIGABRT (GOTRACEBACK=crash aborts)", r.Stop.Signal, r.Stop.SignalName)
	}
	if len(r.Groups) == 0 {
		t.Fatal("no groups")
	}
	first := r.Groups[0]
	if first.Culprit != "main.processJob" || !first.Crashing {
		t.Errorf("first group: culprit %q crashing %v (%s), want the crashing main.processJob", first.Culprit, first.Crashing, frameNames(first.Frames))
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	if got := first.Labels["trace_id"]; len(got) != 1 || got[0] != traceID {
		t.Errorf("first group trace_id labels = %v, want [%s]", got, traceID)
	}
	if r.Crashing == nil {
		t.Fatal("no crashing goroutine")
	}
	if r.Crashing.ID != r.Stop.Goroutine {
		t.Errorf("crashing goroutine %d, crash output names %d", r.Crashing.ID, r.Stop.Goroutine)
	}
	if !strings.HasSuffix(r.Crashing.LocalsFrame, "main.processJob") {
		t.Errorf("locals frame %q, want main.processJob", r.Crashing.LocalsFrame)
	}
	var sawJob bool
	for _, v := range r.Crashing.Locals {
		if v.Name == "job" && strings.Contains(v.Value, "42") {
			sawJob = true
		}
	}
	if !sawJob {
		t.Errorf("locals of processJob %+v lack job with ID 42", r.Crashing.Locals)
	}
	var sawSource bool
	for _, f := range r.Crashing.Frames {
		if f.Function == "main.processJob" && strings.Contains(f.Source, "panic(") {
			sawSource = true
		}
	}
	if !sawSource {
		t.Errorf("crashing frames lack processJob's source line: %+v", r.Crashing.Frames)
	}
	if len(r.Traces) != 1 || r.Traces[0].TraceID != traceID || r.Traces[0].URL != "http://localhost:16686/trace/"+traceID {
		t.Errorf("traces = %+v, want one link for %s", r.Traces, traceID)
	}
	if r.Build.GoVersion == "" || !strings.HasPrefix(r.Build.GoVersion, "go1.") {
		t.Errorf("go version %q", r.Build.GoVersion)
	}
	if r.JobQueue.Found || !strings.Contains(r.JobQueue.Note, "not a wardgate job queue process") {
		t.Errorf("job queue section = %+v, want 'not a wardgate job queue process'", r.JobQueue)
	}
}

func TestLeakCore(t *testing.T) {
	const n = 3000
	started := time.Now()
	dir := crash(t, "leak", "-n", fmt.Sprint(n))
	lived := time.Since(started).Seconds()
	r := analyzeBundle(t, dir, "../../scripts/postmortem/goroutines_by_label.star")
	if !strings.Contains(r.Stop.Fatal, "SIGQUIT: quit") {
		t.Errorf("fatal = %q, want SIGQUIT: quit", r.Stop.Fatal)
	}
	first := r.Groups[0]
	if first.Culprit != "main.leakyWorker" || first.Count < n {
		t.Errorf("first group: %d × %s (%s), want ≥ %d × main.leakyWorker", first.Count, first.Culprit, frameNames(first.Frames), n)
	}
	if first.WaitReason != "chan receive" {
		t.Errorf("leak group wait reason %q, want chan receive", first.WaitReason)
	}
	// The crasher ran two GCs after the workers blocked, slept 300 ms and
	// ran a third (and its hour-long sleep deadline must not count as
	// "now").
	if w := first.LongestWaitSeconds; w == nil || *w < 0.29 || *w > lived {
		t.Errorf("leak group longest wait %v, want between 0.3 s and the %.1f s the crasher lived", fmtWait(w), lived)
	}

	if got := len(first.Labels["trace_id"]); got != 8 {
		t.Errorf("leak group has %d distinct trace_ids, want 8: %v", got, first.Labels)
	}
	if r.Goroutines < n {
		t.Errorf("goroutines = %d, want ≥ %d", r.Goroutines, n)
	}
	waiting := 0
	for _, s := range r.States {
		if s.State == "waiting: chan receive" {
			waiting = s.Count
		}
	}
	if waiting < n {
		t.Errorf("states %+v: want ≥ %d in chan receive", r.States, n)
	}
	if len(r.Traces) != 8 {
		t.Errorf("traces: %d, want 8", len(r.Traces))
	}
	// The shipped delve script, run by the real dlv against the same core.
	if len(r.Scripts) != 1 {
		t.Fatalf("scripts: %+v", r.Scripts)
	}
	s := r.Scripts[0]
	if s.Error != "" {
		t.Errorf("goroutines_by_label.star failed: %s\n%s", s.Error, s.Output)
	}
	for i := 1; i <= 8; i++ {
		want := fmt.Sprintf("trace_id=%032x  goroutines=%d", i, n/8)
		if !strings.Contains(s.Output, want) {
			t.Errorf("script output lacks %q:\n%s", want, s.Output)
		}
	}
	if !strings.Contains(s.Output, "main.leakyWorker") {
		t.Errorf("script output does not name main.leakyWorker:\n%s", s.Output)
	}
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "## Script ") || !strings.Contains(md.String(), "trace_id=00000000000000000000000000000001") {
		t.Error("markdown report lacks the script section")
	}
}

func TestDeadlockCore(t *testing.T) {
	dir := crash(t, "deadlock")
	r := analyzeBundle(t, dir)
	if !strings.Contains(r.Stop.Fatal, "fatal error: all goroutines are asleep - deadlock!") {
		t.Errorf("fatal = %q (source %s), want the deadlock message", r.Stop.Fatal, r.Stop.FatalSource)
	}
	if r.Stop.Signal == 0 {
		t.Error("no signal")
	}
	// Every goroutine sleeps: main in waitForResult's receive, the other
	// on the lock main holds. The first finding is the crash, naming the
	// lock waiter (locks name a cycle better than receives), and both
	// groups come before the runtime's.
	if len(r.Findings) == 0 || r.Findings[0].Kind != "crash" || r.Findings[0].Function != "main.deadlock.func1" {
		t.Errorf("first finding: %+v, want the crash naming main.deadlock.func1", r.Findings)
	}
	names := []string{r.Groups[0].Culprit, r.Groups[1].Culprit}
	if names[0] != "main.deadlock.func1" || names[1] != "main.waitForResult" || r.Groups[1].WaitReason != "chan receive" {
		t.Errorf("first groups: %v, want main.deadlock.func1 then main.waitForResult in chan receive", names)
	}
}

func TestUserScriptErrorIsReported(t *testing.T) {
	dir := crash(t, "deadlock")
	bad := filepath.Join(t.TempDir(), "bad.star")
	if err := os.WriteFile(bad, []byte("def main():\n    undefined_builtin()\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := analyzeBundle(t, dir, bad)
	if len(r.Scripts) != 1 || r.Scripts[0].Error == "" {
		t.Errorf("a failing script must be reported as failed: %+v", r.Scripts)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	if _, err := Run(context.Background(), Options{Core: "/nonexistent/core", Exe: crasherBin}); err == nil {
		t.Error("missing core: no error")
	}
	// An executable is not a core.
	if _, err := Run(context.Background(), Options{Core: crasherBin, Exe: crasherBin}); err == nil || !strings.Contains(err.Error(), "not a core") {
		t.Errorf("exe as core: err = %v", err)
	}
	if _, err := OptionsFromBundle(t.TempDir()); err == nil {
		t.Error("empty bundle dir: no error")
	}
}

func TestParseCrashOutput(t *testing.T) {
	text := "old run\npanic: first\n\ngoroutine 5 gp=0x1 m=0 mp=0x2 [running]:\nmain.f()\n\n" +
		"panic: runtime error: invalid memory address or nil pointer dereference\n" +
		"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b3c]\n\n" +
		"goroutine 42 gp=0x3 m=4 mp=0x5 [running]:\nmain.g()\n"
	fatal, g := parseCrashOutput(text)
	want := "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b3c]"
	if fatal != want || g != 42 {
		t.Errorf("got %q, goroutine %d; want the last crash, goroutine 42", fatal, g)
	}
	if externalSignal(fatal) {
		t.Error("a nil dereference is not an external signal")
	}
	if f, _ := parseCrashOutput("SIGQUIT: quit\nPC=0x408aee m=0 sigcode=0\n\ngoroutine 1 [sleep]:\n"); !externalSignal(f) {
		t.Errorf("SIGQUIT from kill is external: %q", f)
	}
}

func fmtWait(w *float64) string {
	if w == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.3fs", *w)
}
