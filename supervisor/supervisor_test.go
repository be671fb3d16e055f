package supervisor

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/diag/crashenv"
	"github.com/wardgate/wardgate/internal/testutil"
)

// childBin is the test child (testdata/child), built once by TestMain.
var childBin string

func TestMain(m *testing.M) {
	os.Exit(testutil.RunMain(m, &childBin, "supervisor-test", "child", "./testdata/child"))
}

// waitTimeout is generous: the machine running tests may be loaded.
const waitTimeout = 90 * time.Second

type harness struct {
	t      *testing.T
	sup    *Supervisor
	data   string
	events chan Event
	seen   []Event
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, data: t.TempDir(), events: make(chan Event, 1000)}
	opts.DataDir = h.data
	opts.OnEvent = func(e Event) { h.events <- e }
	if testing.Verbose() {
		opts.Forward = os.Stderr
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.sup = s
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	return h
}

// wait returns the earliest event not yet returned that f accepts; events
// it passes over stay available to later waits (a restart's ready event may
// come before the post-mortem's analysis finishes).
func (h *harness) wait(what string, f func(Event) bool) Event {
	h.t.Helper()
	for i, e := range h.seen {
		if f(e) {
			h.seen = append(h.seen[:i:i], h.seen[i+1:]...)
			return e
		}
	}
	deadline := time.After(waitTimeout)
	for {
		select {
		case e := <-h.events:
			if f(e) {
				return e
			}
			h.seen = append(h.seen, e)
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s; events so far: %+v", what, h.seen)
		}
	}
}

func serveSpec(t *testing.T, name string, args ...string) Spec {
	addr := testutil.FreeAddr(t)
	return Spec{
		Name: name,
		Command: func() *exec.Cmd {
			cmd := exec.Command(childBin, args...)
			cmd.Env = append(os.Environ(), "LISTEN="+addr)
			return cmd
		},
		ReadyLine: "listening ",
		HealthURL: "http://" + addr + "/healthz",
	}
}

func pidOf(t *testing.T, s *Supervisor, name string) int {
	t.Helper()
	for _, st := range s.Status() {
		if st.Name == name {
			return st.PID
		}
	}
	t.Fatalf("no child %s in %+v", name, s.Status())
	return 0
}

func TestBackoffDoublesCapsAndResets(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, ResetAfter: 30 * time.Second}
	var got []time.Duration
	failures := 0
	for range 6 {
		var d time.Duration
		d, failures = b.Delay(failures, time.Second)
		got = append(got, d)
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("delays = %v, want %v ms", got, want)
		}
	}
	if d, f := b.Delay(failures, 31*time.Second); d != 100*time.Millisecond || f != 1 {
		t.Fatalf("after a healthy run: delay %v failures %d, want 100ms 1", d, f)
	}
	if d, _ := (Backoff{}).Delay(50, 0); d != 10*time.Second {
		t.Fatalf("default cap = %v, want 10s", d)
	}
}

func TestChildGetsCrashEnvironmentAndOwnDir(t *testing.T) {
	h := newHarness(t, Options{})
	spec := serveSpec(t, "envchild", "env")
	if err := h.sup.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(h.data, "run", "envchild")
	out, err := os.ReadFile(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	var hard syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &hard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"env GOTRACEBACK=crash\n",
		"env WARDGATE_CRASH_OUTPUT=" + filepath.Join(dir, "crash.txt") + "\n",
		"env cwd=" + dir + "\n",
		"env rlimit_core=" + strconv.FormatUint(hard.Max, 10) + "\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(string(out), "env GODEBUG=tracebacklabels=1") {
		t.Errorf("GODEBUG lacks tracebacklabels=1:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.sup.Shutdown(ctx); err != nil {
		t.Fatalf("clean shutdown: %v", err)
	}
	h.wait("clean exit", func(e Event) bool { return e.Kind == EventExited && e.Status == "exit status 0" })
}

// TestTracebackShowsLabels checks that the environment we give children
// makes Go 1.26 print pprof labels (our trace IDs) in crash tracebacks.
func TestTracebackShowsLabels(t *testing.T) {
	dir := t.TempDir()
	crash := filepath.Join(dir, "crash.txt")
	cmd := exec.Command(childBin, "panic-labels")
	cmd.Dir = dir
	cmd.Env = crashenv.ChildEnv(os.Environ(), crash)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatal("panicking child exited 0")
	}
	out, rerr := os.ReadFile(crash)
	if rerr != nil {
		t.Fatal(rerr)
	}
	want := `labels:{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}`
	if !strings.Contains(string(out), want) || !strings.Contains(stderr.String(), want) {
		t.Fatalf("traceback lacks %s\ncrash output:\n%s\nstderr:\n%s", want, out, stderr.String())
	}
	if !strings.HasPrefix(string(out), "panic: boom with labels") {
		t.Fatalf("crash output does not start with the panic:\n%.300s", out)
	}
}

func TestKilledChildIsRestartedWithoutPostmortem(t *testing.T) {
	m := newMeters(t)
	h := newHarness(t, Options{Backoff: Backoff{Initial: 10 * time.Millisecond}, MeterProvider: m.mp})
	spec := serveSpec(t, "victim")
	if err := h.sup.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	// Every counter of a supervised service starts at 0, so dashboards
	// show 0 rather than no data.
	for _, r := range []string{ReasonExit, ReasonSignal, ReasonCrash, ReasonWatchdog} {
		m.expect(0, "wardgate.child.restarts", svc("victim"), reason(r))
	}
	for _, r := range []string{ResultAnalyzed, ResultAnalyzeFailed, ResultNoCore} {
		m.expect(0, "wardgate.postmortems", svc("victim"), result(r))
	}
	m.expect(0, "wardgate.watchdog.captures", svc("victim"))
	m.expect(1, "wardgate.child.up", svc("victim"))
	pid := pidOf(t, h.sup, "victim")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.wait("exit by SIGKILL", func(e Event) bool { return e.Kind == EventExited && e.PID == pid })
	h.wait("restart", func(e Event) bool { return e.Kind == EventStarted && e.PID != pid })
	ready := h.wait("ready again", func(e Event) bool { return e.Kind == EventReady && e.PID != pid })
	if ready.PID == pid || ready.PID == 0 {
		t.Fatalf("restarted pid %d, old %d", ready.PID, pid)
	}
	st := h.sup.Status()[0]
	if st.Restarts != 1 || st.PID != ready.PID {
		t.Fatalf("status %+v, want 1 restart and pid %d", st, ready.PID)
	}
	ents, err := os.ReadDir(filepath.Join(h.data, "postmortem"))
	if err != nil || len(ents) != 0 {
		t.Fatalf("SIGKILL left post-mortems %v (%v); nothing to analyse there", ents, err)
	}
	m.expect(1, "wardgate.child.restarts", svc("victim"), reason(ReasonSignal))
	m.expect(0, "wardgate.child.restarts", svc("victim"), reason(ReasonCrash))
	m.expect(0, "wardgate.postmortems", svc("victim"), result(ResultNoCore))
	m.expect(1, "wardgate.child.up", svc("victim"))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.sup.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	m.expect(0, "wardgate.child.up", svc("victim"))
	m.expect(1, "wardgate.child.restarts", svc("victim"), reason(ReasonSignal)) // a stop is not a restart
}

func TestSIGQUITCoreBecomesPostmortem(t *testing.T) {
	if cp, err := crashenv.ReadCorePattern(crashenv.ProcSys); err != nil || cp.Piped() {
		t.Fatalf("this test needs cores written to files; core_pattern %q (%v): run wardgate diag crash-setup", cp.Pattern, err)
	}
	analyzed := make(chan Postmortem, 1)
	m := newMeters(t)
	h := newHarness(t, Options{
		Backoff:       Backoff{Initial: 10 * time.Millisecond},
		MeterProvider: m.mp,
		Analyze: func(_ context.Context, pm Postmortem) (Analysis, error) {
			analyzed <- pm
			report := filepath.Join(pm.Dir, "report.md")
			return Analysis{Headline: "test headline", Report: report}, os.WriteFile(report, []byte("# report\n"), 0o600)
		},
	})
	// A secret on the command line must not reach bundle.json.
	const cmdlineSecret = "t0k3n-in-cmdline"
	if err := h.sup.Start(context.Background(), serveSpec(t, "quitter", "serve", "--api-tokens", cmdlineSecret)); err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, h.sup, "quitter")
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	ex := h.wait("crash exit", func(e Event) bool { return e.Kind == EventExited && e.PID == pid })
	if !strings.Contains(ex.Status, "core dumped") {
		t.Fatalf("exit status %q: GOTRACEBACK=crash should make SIGQUIT dump core", ex.Status)
	}
	pmEv := h.wait("post-mortem", func(e Event) bool { return e.Kind == EventPostmortem })
	if pmEv.Err != nil {
		t.Fatal(pmEv.Err)
	}
	pm := <-analyzed
	dir := pmEv.Dir
	if pm.Dir != dir || pm.Core != filepath.Join(dir, "core") || pm.Exe != filepath.Join(dir, "exe") || pm.CrashOutput != filepath.Join(dir, "crash.txt") {
		t.Fatalf("Analyze got %+v for dir %s", pm, dir)
	}
	if want := fmt.Sprintf("-quitter-%d", pid); !strings.HasSuffix(dir, want) || filepath.Dir(dir) != filepath.Join(h.data, "postmortem") {
		t.Fatalf("post-mortem dir %s, want DATA/postmortem/<time>%s", dir, want)
	}
	if _, err := time.Parse("20060102T150405Z", strings.SplitN(filepath.Base(dir), "-", 2)[0]); err != nil {
		t.Fatalf("dir name does not start with a UTC time: %v", err)
	}
	f, err := elf.Open(pm.Core)
	if err != nil {
		t.Fatalf("core: %v", err)
	}
	if f.Type != elf.ET_CORE {
		t.Fatalf("core type %v", f.Type)
	}
	f.Close()
	if bi, err := buildinfo.ReadFile(pm.Exe); err != nil || !strings.HasSuffix(bi.Path, "testdata/child") {
		t.Fatalf("exe copy: %v %v", bi, err)
	}
	crash, err := os.ReadFile(pm.CrashOutput)
	if err != nil || !strings.HasPrefix(string(crash), "SIGQUIT: quit") {
		t.Fatalf("crash output %.100q %v", crash, err)
	}
	var info bundle.Postmortem
	b, err := os.ReadFile(filepath.Join(dir, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatal(err)
	}
	if info.PID != pid || info.Service != "quitter" || info.Signal != "aborted" || !info.CoreDumped || info.CrashReason != "SIGQUIT: quit" || info.Method != "crash" || info.CoreSize == 0 {
		t.Fatalf("bundle.json: %s", b)
	}
	if strings.Contains(string(b), cmdlineSecret) || !strings.Contains(strings.Join(info.Cmdline, " "), "--api-tokens <redacted>") {
		t.Errorf("bundle.json cmdline %q: want --api-tokens <redacted>", info.Cmdline)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.md")); err != nil {
		t.Fatal(err)
	}
	// The core moved out of the working dir, and the child is back.
	if _, err := os.Stat(filepath.Join(h.data, "run", "quitter", "core")); !os.IsNotExist(err) {
		t.Fatalf("core left in the working dir: %v", err)
	}
	h.wait("ready again", func(e Event) bool { return e.Kind == EventReady && e.PID != pid })
	m.expect(1, "wardgate.postmortems", svc("quitter"), result(ResultAnalyzed))
	m.expect(0, "wardgate.postmortems", svc("quitter"), result(ResultAnalyzeFailed))
	m.expect(1, "wardgate.postmortem.analyze.duration", svc("quitter"))
	m.expect(1, "wardgate.child.restarts", svc("quitter"), reason(ReasonCrash))
	m.expect(0, "wardgate.child.restarts", svc("quitter"), reason(ReasonSignal))
}

// gcoreCapture is a real live capture from another process, as Options.Capture
// requires (`wardgate up` runs `wardgate diag capture --method native`).
func gcoreCapture(ctx context.Context, pid int, dir string) error {
	out, err := exec.CommandContext(ctx, "gcore", "-o", filepath.Join(dir, "core"), strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gcore: %w: %s", err, out)
	}
	if err := os.Rename(filepath.Join(dir, "core."+strconv.Itoa(pid)), filepath.Join(dir, "core")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "bundle.json"), []byte(fmt.Sprintf(`{"pid": %d, "method": "gcore"}`, pid)), 0o600)
}

func TestWatchdogCapturesChildStuckInCrash(t *testing.T) {
	if _, err := exec.LookPath("gcore"); err != nil {
		t.Fatalf("gcore missing (scripts/install-test-deps.sh installs gdb): %v", err)
	}
	analyzed := make(chan Postmortem, 1)
	m := newMeters(t)
	h := newHarness(t, Options{
		Backoff:  Backoff{Initial: 10 * time.Millisecond},
		Watchdog: Watchdog{Poll: 50 * time.Millisecond, Idle: 500 * time.Millisecond, Stuck: 2 * time.Second},
		Capture:  gcoreCapture,
		Analyze: func(_ context.Context, pm Postmortem) (Analysis, error) {
			analyzed <- pm
			return Analysis{}, errors.New("no delve here")
		},
		MeterProvider: m.mp,
	})
	spec := serveSpec(t, "stuck", "stuck-once")
	spec.HealthURL = "" // the stuck run never listens
	if err := h.sup.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, h.sup, "stuck")
	wd := h.wait("watchdog", func(e Event) bool { return e.Kind == EventWatchdog })
	if wd.PID != pid || wd.Err != nil {
		t.Fatalf("watchdog event %+v for pid %d", wd, pid)
	}
	ex := h.wait("exit", func(e Event) bool { return e.Kind == EventExited && e.PID == pid })
	if ex.Status != "signal: killed" {
		t.Fatalf("stuck child exit %q, want killed", ex.Status)
	}
	pmEv := h.wait("post-mortem", func(e Event) bool { return e.Kind == EventPostmortem })
	if pmEv.Dir != wd.Dir {
		t.Fatalf("post-mortem in %s, watchdog captured into %s", pmEv.Dir, wd.Dir)
	}
	pm := <-analyzed
	f, err := elf.Open(pm.Core)
	if err != nil {
		t.Fatalf("captured core: %v", err)
	}
	f.Close()
	// The capture's bundle.json stays; the supervisor's view goes next to it.
	b, err := os.ReadFile(filepath.Join(pm.Dir, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	var capMeta struct {
		PID    int    `json:"pid"`
		Method string `json:"method"`
	}
	if err := json.Unmarshal(b, &capMeta); err != nil || capMeta.PID != pid || capMeta.Method != "gcore" {
		t.Fatalf("capture bundle.json %s (%v)", b, err)
	}
	b, err = os.ReadFile(filepath.Join(pm.Dir, "supervisor.json"))
	if err != nil {
		t.Fatal(err)
	}
	var info bundle.Postmortem
	if err := json.Unmarshal(b, &info); err != nil || info.Method != "watchdog" || info.CrashReason != "fatal error: simulated crash that never finishes" || info.Exit != "signal: killed" {
		t.Fatalf("supervisor.json %s (%v)", b, err)
	}
	if pm.Exe != filepath.Join(pm.Dir, "exe") || pm.CrashOutput != filepath.Join(pm.Dir, "crash.txt") {
		t.Fatalf("Analyze got %+v", pm)
	}
	h.wait("restarted", func(e Event) bool { return e.Kind == EventReady && e.PID != pid })
	m.expect(1, "wardgate.watchdog.captures", svc("stuck"))
	m.expect(1, "wardgate.child.restarts", svc("stuck"), reason(ReasonWatchdog))
	m.expect(0, "wardgate.child.restarts", svc("stuck"), reason(ReasonSignal))
	m.expect(1, "wardgate.postmortems", svc("stuck"), result(ResultAnalyzeFailed))
	m.expect(0, "wardgate.postmortems", svc("stuck"), result(ResultAnalyzed))
	m.expect(1, "wardgate.postmortem.analyze.duration", svc("stuck"))
}

func TestShutdownStopsGroupsInOrderAndKillsLaggards(t *testing.T) {
	h := newHarness(t, Options{})
	front := serveSpec(t, "front")
	back := serveSpec(t, "back", "ignore-term")
	back.StopOrder = 1
	back.StopTimeout = 500 * time.Millisecond
	for _, s := range []Spec{back, front} {
		if err := h.sup.Start(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	// Status lists children in stop order, front first, whatever the
	// start order was.
	if st := h.sup.Status(); len(st) != 2 || st[0].Name != "front" || st[1].Name != "back" {
		t.Fatalf("Status order %+v, want front then back", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := h.sup.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "back") {
		t.Fatalf("Shutdown = %v, want an error naming the killed child", err)
	}
	var order []string
	for len(h.events) > 0 {
		e := <-h.events
		switch e.Kind {
		case EventStopping, EventExited, EventKilled:
			order = append(order, string(e.Kind)+" "+e.Service)
		}
	}
	want := "stopping front,exited front,stopping back,killed back,exited back"
	if got := strings.Join(order, ","); got != want {
		t.Fatalf("shutdown order %s\nwant %s", got, want)
	}
	if err := h.sup.Start(context.Background(), serveSpec(t, "late")); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
}

func TestStartFailureReportsStderr(t *testing.T) {
	h := newHarness(t, Options{})
	spec := serveSpec(t, "broken", "fail")
	err := h.sup.Start(context.Background(), spec)
	if err == nil || !strings.Contains(err.Error(), "bad config: FOO") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Start = %v, want the exit status and stderr", err)
	}
	if len(h.sup.Status()) != 0 {
		t.Fatalf("failed child still listed: %+v", h.sup.Status())
	}
	if err := h.sup.Start(context.Background(), Spec{Name: "../x", Command: spec.Command}); err == nil {
		t.Fatal("path-like name accepted")
	}
}
