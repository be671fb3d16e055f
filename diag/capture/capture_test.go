package capture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/internal/testutil"
	"golang.org/x/sys/unix"
)

// targetBin is the test program built by TestMain (testdata/target).
var targetBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	return testutil.RunMain(m, &targetBin, "capture-test-bin-", "target", "./testdata/target")
}

const testTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"

// target is a running testdata/target process.
type target struct {
	cmd   *exec.Cmd
	pid   int
	stdin io.WriteCloser
	lines chan string
}

// startTarget runs the test program with n parked goroutines and heapMB of
// touched heap, waits until it reports ready and returns it. It has the
// secret API_TOKEN=hunter2 in its environment.
func startTarget(t testing.TB, n, heapMB int) *target {
	t.Helper()
	return startTargetArgs(t, "-goroutines", strconv.Itoa(n), "-heap-mb", strconv.Itoa(heapMB))
}

func startTargetArgs(t testing.TB, args ...string) *target {
	t.Helper()
	cmd := exec.Command(targetBin, append(args, "-trace-id", testTraceID)...)
	cmd.Env = append(os.Environ(), "API_TOKEN=hunter2", "DB_PASSWORD=swordfish", "PLAIN_SETTING=visible-value")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tg := &target{cmd: cmd, pid: cmd.Process.Pid, stdin: stdin, lines: make(chan string, 16)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			tg.lines <- sc.Text()
		}
		close(tg.lines)
	}()
	want := fmt.Sprintf("ready pid=%d", tg.pid)
	if got := tg.next(t); got != want {
		t.Fatalf("target said %q, want %q", got, want)
	}
	return tg
}

// next returns the next stdout line of the target, failing after a
// generous deadline.
func (tg *target) next(t testing.TB) string {
	t.Helper()
	select {
	case l, ok := <-tg.lines:
		if !ok {
			t.Fatal("target exited")
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatal("target did not answer within 60s")
	}
	return ""
}

// ping checks the target still runs and answers.
func (tg *target) ping(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(tg.stdin, "ping\n"); err != nil {
		t.Fatalf("target no longer reads its input: %v", err)
	}
	if got := tg.next(t); !strings.HasPrefix(got, "pong") {
		t.Fatalf("target answered %q to ping", got)
	}
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// dlvCore opens core with the real delve and runs the given commands.
func dlvCore(t *testing.T, exe, core string, cmds ...string) string {
	t.Helper()
	dlv := dlvPath(t)
	initFile := filepath.Join(t.TempDir(), "init.dlv")
	if err := os.WriteFile(initFile, []byte(strings.Join(append(cmds, "exit"), "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dlv, "core", exe, core, "--init", initFile, "--allow-non-terminal-interactive")
	cmd.Env = append(os.Environ(), "TERM=dumb")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dlv core: %v\n%s", err, lastLines(string(out), 40))
	}
	return ansi.ReplaceAllString(string(out), "")
}

func dlvPath(t *testing.T) string {
	t.Helper()
	return testutil.GoTool(t, "dlv")
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkCoreInDelve asserts that every parked goroutine of the target is in
// the core, parked in main.parkedInCaptureTarget, with its pprof labels,
// and that the main goroutine (blocked in a read syscall, so unwound from
// its thread's registers) unwinds to main.main.
func checkCoreInDelve(t *testing.T, b *Bundle, parked int) {
	t.Helper()
	out := dlvCore(t, b.Exe, b.Core,
		"goroutine 1 bt",
		"goroutines -l -t 12 -with label trace_id="+testTraceID,
	)
	bt, listing, found := strings.Cut(out, "Goroutine ")
	if !found {
		t.Fatalf("no goroutine listing in dlv output:\n%s", lastLines(out, 40))
	}
	if !strings.Contains(bt, "main.main") || !strings.Contains(bt, "syscall.read") {
		t.Errorf("goroutine 1 bt does not show main.main reading stdin:\n%s", bt)
	}
	headers := regexp.MustCompile(`(?m)^\s*Goroutine \d+ - User: \S+ main\.parkedInCaptureTarget .*\[chan receive\]`).FindAllString("  Goroutine "+listing, -1)
	if len(headers) != parked {
		t.Errorf("dlv lists %d goroutines parked in main.parkedInCaptureTarget with trace_id label, want %d\n%s", len(headers), parked, lastLines(out, 30))
	}
	labels := strings.Count(listing, `"trace_id":"`+testTraceID+`"`)
	if labels != parked {
		t.Errorf("%d goroutines carry the trace_id label, want %d", labels, parked)
	}
	if n := strings.Count(listing, "runtime/pprof.Do"); n != parked {
		t.Errorf("runtime/pprof.Do on %d stacks, want %d", n, parked)
	}
	if !strings.Contains(listing, fmt.Sprintf("[%d goroutines]", parked)) {
		t.Errorf("dlv does not report [%d goroutines]:\n%s", parked, lastLines(out, 5))
	}
}

// checkBundleFiles asserts the bundle's modes, meta and redaction.
func checkBundleFiles(t *testing.T, b *Bundle, tg *target, method string) {
	t.Helper()
	st, err := os.Stat(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("bundle dir mode %v, want 0700", st.Mode().Perm())
	}
	for _, name := range []string{bundle.CoreFile, bundle.ExeFile, bundle.MetaFile, bundle.MapsFile, bundle.StatusFile, bundle.EnvironFile} {
		st, err := os.Stat(filepath.Join(b.Dir, name))
		if err != nil {
			t.Errorf("bundle file missing: %v", err)
			continue
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	env, err := os.ReadFile(filepath.Join(b.Dir, bundle.EnvironFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", "swordfish"} {
		if strings.Contains(string(env), secret) {
			t.Errorf("environ leaks the secret %q", secret)
		}
	}
	for _, line := range []string{"API_TOKEN=<redacted>", "DB_PASSWORD=<redacted>", "PLAIN_SETTING=visible-value"} {
		if !strings.Contains(string(env), line+"\n") {
			t.Errorf("environ lacks the line %q", line)
		}
	}

	read, err := bundle.Read(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	m := read.Meta
	if m.PID != tg.pid || m.Method != method {
		t.Errorf("bundle.json pid=%d method=%q, want %d %q", m.PID, m.Method, tg.pid, method)
	}
	if len(m.Cmdline) == 0 || m.Cmdline[0] != targetBin {
		t.Errorf("bundle.json cmdline %q, want it to start with %q", m.Cmdline, targetBin)
	}
	if !strings.HasPrefix(m.GoVersion, "go1.") || !strings.Contains(m.BuildInfo, "path\t") {
		t.Errorf("bundle.json go_version=%q build_info=%q: want the target's build info", m.GoVersion, m.BuildInfo)
	}
	if m.PauseMS <= 0 || m.CoreBytesOnDisk <= 0 || m.CoreBytesApparent < m.CoreBytesOnDisk/2 || m.Time.IsZero() {
		t.Errorf("bundle.json pause_ms=%v on_disk=%d apparent=%d time=%v: want them all set", m.PauseMS, m.CoreBytesOnDisk, m.CoreBytesApparent, m.Time)
	}
	if m.Threads < 2 {
		t.Errorf("bundle.json threads=%d, want the target's threads", m.Threads)
	}
	exe, err := os.ReadFile(b.Exe)
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(targetBin)
	if err != nil {
		t.Fatal(err)
	}
	if string(exe) != string(orig) {
		t.Error("bundle exe differs from the target's executable")
	}
}

func TestCaptureGcore(t *testing.T) {
	const parked = 1000
	tg := startTarget(t, parked, 4)
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: dir, Method: MethodGcore})
	if err != nil {
		t.Fatal(err)
	}
	tg.ping(t)
	checkBundleFiles(t, b, tg, MethodGcore)
	checkCoreInDelve(t, b, parked)
}

func TestCaptureNoSuchProcess(t *testing.T) {
	// A pid that existed and is gone: start and reap a process.
	cmd := exec.Command(targetBin, "-goroutines", "1", "-heap-mb", "0")
	cmd.Stdin = strings.NewReader("quit\n")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	gone := cmd.Process.Pid
	for _, method := range []string{MethodAuto, MethodNative, MethodGcore} {
		dir := filepath.Join(t.TempDir(), "bundle")
		_, err := Capture(context.Background(), Options{PID: gone, OutDir: dir, Method: method})
		if !errors.Is(err, ErrNoProcess) {
			t.Errorf("%s: capture of exited pid %d: err = %v, want ErrNoProcess", method, gone, err)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.Itoa(gone)) {
			t.Errorf("%s: error %q does not name the pid", method, err)
		}
		if _, serr := os.Stat(dir); serr == nil {
			t.Errorf("%s: failed capture left %s behind", method, dir)
		}
	}
}

func TestCaptureRefusesNonEmptyOutDir(t *testing.T) {
	tg := startTarget(t, 1, 0)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: dir, Method: MethodNative})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("capture into a non-empty dir: err = %v, want a 'not empty' error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Errorf("existing file was touched: %v", err)
	}
}

func TestCaptureBadMethod(t *testing.T) {
	_, err := Capture(context.Background(), Options{PID: os.Getpid(), Method: "magic"})
	if err == nil || !strings.Contains(err.Error(), `"magic"`) {
		t.Fatalf("err = %v, want an unknown-method error", err)
	}
}

func TestRedactEnviron(t *testing.T) {
	raw := "HOME=/root\x00GITHUB_TOKEN=ghp_x\x00aws_secret_access_key=abc\x00Session_Id=s1\x00" +
		"DATABASE_URL=postgres://u:pw@db/x\x00OTHER_URL=https://user:pass@example.com/\x00" +
		"MULTI=a\nb\x00NOEQ\x00LANG=C\x00"
	got := string(RedactEnviron([]byte(raw)))
	want := "HOME=/root\nGITHUB_TOKEN=<redacted>\naws_secret_access_key=<redacted>\nSession_Id=<redacted>\n" +
		"DATABASE_URL=<redacted>\nOTHER_URL=<redacted>\nMULTI=a\\nb\nNOEQ\nLANG=C\n"
	if got != want {
		t.Errorf("RedactEnviron:\n got %q\nwant %q", got, want)
	}
}

func TestCaptureNative(t *testing.T) {
	const parked, heapMB = 1000, 16
	tg := startTarget(t, parked, heapMB)
	dir := filepath.Join(t.TempDir(), "bundle")
	b, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: dir, Method: MethodNative})
	if err != nil {
		t.Fatal(err)
	}
	tg.ping(t)
	checkBundleFiles(t, b, tg, MethodNative)
	m := b.Meta
	// The touched heap must be in the core, and the core must be sparse:
	// gcore writes over a gigabyte for this process.
	if m.MemoryBytesCopied < heapMB<<20 {
		t.Errorf("copied %d bytes, less than the %d MiB heap", m.MemoryBytesCopied, heapMB)
	}
	if m.CoreBytesOnDisk < heapMB<<20 || m.CoreBytesOnDisk > 128<<20 {
		t.Errorf("core takes %d bytes on disk; want the ~%d MiB heap plus runtime, well under 128 MiB", m.CoreBytesOnDisk, heapMB)
	}
	if m.CoreBytesApparent <= m.CoreBytesOnDisk {
		t.Errorf("core apparent size %d <= on-disk %d: holes were written out", m.CoreBytesApparent, m.CoreBytesOnDisk)
	}
	checkCoreInDelve(t, b, parked)

	// A second capture of the same process works too: the first one left
	// it detached and running.
	b2, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: filepath.Join(t.TempDir(), "again"), Method: MethodAuto})
	if err != nil {
		t.Fatal(err)
	}
	if b2.Meta.Method != MethodNative || b2.Meta.FallbackReason != "" {
		t.Errorf("auto used %q (fallback %q), want native", b2.Meta.Method, b2.Meta.FallbackReason)
	}
	tg.ping(t)
}

func TestCaptureNativeBusyProcess(t *testing.T) {
	// Goroutines that keep running and allocating, so threads are caught
	// mid-flight and the runtime may be starting new threads.
	tg := startTargetArgs(t, "-goroutines", "50", "-heap-mb", "1", "-busy", "8")
	for i := 0; i < 3; i++ {
		b, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: filepath.Join(t.TempDir(), "b"), Method: MethodNative})
		if err != nil {
			t.Fatal(err)
		}
		tg.ping(t)
		out := dlvCore(t, b.Exe, b.Core, "threads", "goroutines -with startloc main.busyLoop")
		if err := checkBusyGoroutines(out, 8); err != nil {
			t.Errorf("capture %d: %v\n%s", i, err, out)
		}
	}
}

var (
	dlvThreadLine    = regexp.MustCompile(`(?m)^[ *]*Thread (\d+) at 0x[0-9a-f]+ \S+ (\S+)`)
	dlvGoroutineLine = regexp.MustCompile(`(?m)^[ *]*Goroutine (\d+) - User: \S+ (\S+) \(0x[0-9a-f]+\)(?: \(thread (\d+)\))?`)
)

// checkBusyGoroutines checks dlv's "threads" and "goroutines -with startloc
// main.busyLoop" output for a core of the target run with -busy want:
// every busy goroutine is in the core and is in busyLoop. A goroutine that
// was running when its thread stopped may instead show any frame when that
// thread stopped inside the runtime (entering a signal handler for async
// preemption, a GC assist): delve v1.27.2 cannot unwind through
// runtime.sigtramp on Go 1.26 (it looks for runtime.sigreturn, now named
// runtime.sigreturn__sigaction), and gcore's cores show the same. The thread's
// registers must still name a function: garbage registers fail the check.
// (CI caught both: a thread at the first instruction of runtime.sigtramp,
// and one whose goroutine unwound to its go statement's wrapper.)
func checkBusyGoroutines(out string, want int) error {
	threadFn := map[string]string{}
	for _, m := range dlvThreadLine.FindAllStringSubmatch(out, -1) {
		threadFn[m[1]] = m[2]
	}
	gs := dlvGoroutineLine.FindAllStringSubmatch(out, -1)
	if len(gs) != want {
		return fmt.Errorf("dlv lists %d goroutines started at main.busyLoop, want %d", len(gs), want)
	}
	for _, g := range gs {
		id, userFn, thread := g[1], g[2], g[3]
		if userFn == "main.busyLoop" {
			continue
		}
		if thread == "" {
			return fmt.Errorf("goroutine %s is parked at %s, not in main.busyLoop", id, userFn)
		}
		fn, ok := threadFn[thread]
		if !ok {
			return fmt.Errorf("goroutine %s runs on thread %s, which dlv does not list", id, thread)
		}
		if !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "internal/runtime/") {
			return fmt.Errorf("goroutine %s shows %s, its thread %s is in %s: neither busyLoop nor the runtime", id, userFn, thread, fn)
		}
	}
	return nil
}

func TestCaptureAlreadyTraced(t *testing.T) {
	tg := startTarget(t, 1, 0)
	// Be the other tracer: hold the process with ptrace from this thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.PtraceSeize(tg.pid); err != nil {
		t.Fatal(err)
	}
	defer unix.PtraceDetach(tg.pid)
	for _, method := range []string{MethodNative, MethodAuto} {
		_, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: filepath.Join(t.TempDir(), "b"), Method: method})
		// The kernel names the tracing thread.
		if !errors.Is(err, ErrTraced) || !strings.Contains(err.Error(), fmt.Sprintf("by pid %d", unix.Gettid())) {
			t.Errorf("%s: capture of a traced process: err = %v, want ErrTraced naming %d", method, err, unix.Gettid())
		}
	}
}

// nativeStats reads the native capturer's figures from b's bundle.json.
func nativeStats(t *testing.T, b *Bundle) NativeStats {
	t.Helper()
	st, err := ReadNativeStats(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCaptureNativePreCopyIdle: a process with a 256 MiB heap it does not
// touch is copied nearly all while it runs; the final stop copies only
// what the runtime wrote meanwhile, and the core is complete.
func TestCaptureNativePreCopyIdle(t *testing.T) {
	const parked, heapMB = 100, 256
	tg := startTarget(t, parked, heapMB)
	b, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: filepath.Join(t.TempDir(), "b"), Method: MethodNative})
	if err != nil {
		t.Fatal(err)
	}
	tg.ping(t)
	st := nativeStats(t, b)
	t.Logf("pause %.1f ms, %+v", b.Meta.PauseMS, st)
	heapPages := int64(heapMB << 20 / os.Getpagesize())
	if st.PreCopyRounds < 1 || st.PreCopyUnavailableReason != "" {
		t.Fatalf("precopy_rounds=%d unavailable=%q: want pre-copy used", st.PreCopyRounds, st.PreCopyUnavailableReason)
	}
	if st.PagesCopiedLive < heapPages {
		t.Errorf("pages_copied_live=%d, want at least the %d pages of the heap", st.PagesCopiedLive, heapPages)
	}
	if st.PagesCopiedPaused*10 > st.PagesCopiedLive {
		t.Errorf("pages_copied_paused=%d is over a tenth of pages_copied_live=%d for an idle heap", st.PagesCopiedPaused, st.PagesCopiedLive)
	}
	if st.Stops < 1 || st.LongestPauseMS <= 0 || st.LongestPauseMS > b.Meta.PauseMS+0.001 {
		t.Errorf("stops=%d longest_pause_ms=%v pause_ms=%v: want at least the final stop, longest <= total", st.Stops, st.LongestPauseMS, b.Meta.PauseMS)
	}
	if b.Meta.MemoryBytesCopied < heapMB<<20 {
		t.Errorf("memory_bytes_copied=%d, less than the %d MiB heap", b.Meta.MemoryBytesCopied, heapMB)
	}
	checkBundleFiles(t, b, tg, MethodNative)
	checkCoreInDelve(t, b, parked)
}

// TestCaptureNativePreCopyConsistent captures a process that rewrites 64
// MiB in a loop during the whole capture and checks, in the real delve,
// that the core shows its memory at one instant (see writeLoop in
// testdata/target): pages copied while it ran and written afterwards must
// have been copied again during the stop.
func TestCaptureNativePreCopyConsistent(t *testing.T) {
	tg := startTargetArgs(t, "-goroutines", "10", "-heap-mb", "16", "-writer-mb", "64")
	for _, preCopy := range []string{PreCopyOn, PreCopyOff} {
		b, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: filepath.Join(t.TempDir(), "b"), Method: MethodNative, PreCopy: preCopy})
		if err != nil {
			t.Fatal(err)
		}
		tg.ping(t)
		st := nativeStats(t, b)
		t.Logf("pre-copy %s: pause %.1f ms, %+v", preCopy, b.Meta.PauseMS, st)
		if preCopy == PreCopyOn && (st.PreCopyRounds < 1 || st.PagesCopiedLive == 0 || st.PagesCopiedPaused == 0) {
			t.Errorf("pre-copy on: precopy_rounds=%d pages_copied_live=%d pages_copied_paused=%d: want live rounds and the writer's pages copied again in the stop",
				st.PreCopyRounds, st.PagesCopiedLive, st.PagesCopiedPaused)
		}
		if preCopy == PreCopyOff && (st.PreCopyRounds != 0 || st.PagesCopiedLive != 0 || st.PagesCopiedPaused == 0) {
			t.Errorf("pre-copy off: precopy_rounds=%d pages_copied_live=%d pages_copied_paused=%d: want everything copied in the stop",
				st.PreCopyRounds, st.PagesCopiedLive, st.PagesCopiedPaused)
		}
		checkWriterInstant(t, b, preCopy)
	}
}

// checkWriterInstant reads the writer's state from the core with dlv and
// checks the one-instant invariant of writeLoop.
func checkWriterInstant(t *testing.T, b *Bundle, label string) {
	t.Helper()
	const samples = 32
	cmds := []string{"config max-array-values 2048", "print main.sequence.v", "print len(main.big)", "print main.guardA"}
	out := dlvCore(t, b.Exe, b.Core, cmds...)
	seqM := regexp.MustCompile(`(?m)^(\d+)\n(\d+)\n\[1024\]uint64 \[([0-9, ]+)\]`).FindStringSubmatch(out)
	if seqM == nil {
		t.Fatalf("%s: cannot find sequence, len(big) and guardA in dlv output:\n%s", label, lastLines(out, 20))
	}
	seq, _ := strconv.ParseUint(seqM[1], 10, 64)
	bigLen, _ := strconv.Atoi(seqM[2])
	words := parseUints(t, seqM[3])
	// Samples of big, one per 2 MiB stretch, then guardB.
	cmds = []string{"config max-array-values 2048"}
	for i := range samples {
		cmds = append(cmds, fmt.Sprintf("print main.big[%d]", i*(bigLen/samples)), fmt.Sprintf("print main.big[%d]", (i+1)*(bigLen/samples)-1))
	}
	cmds = append(cmds, "print main.guardB")
	out = dlvCore(t, b.Exe, b.Core, cmds...)
	nums := regexp.MustCompile(`(?m)^(\d+)$`).FindAllString(out, -1)
	guardB := regexp.MustCompile(`\[1024\]uint64 \[([0-9, ]+)\]`).FindStringSubmatch(out)
	if len(nums) != 2*samples || guardB == nil {
		t.Fatalf("%s: got %d samples of big (want %d) and guardB=%v from dlv:\n%s", label, len(nums), 2*samples, guardB != nil, lastLines(out, 20))
	}
	for _, n := range nums {
		v, _ := strconv.ParseUint(n, 10, 64)
		words = append(words, v)
	}
	words = append(words, parseUints(t, guardB[1])...)
	if seq < 2 {
		t.Fatalf("%s: sequence=%d in the core; the writer had done at least 2 passes before the capture", label, seq)
	}
	for i, v := range words {
		if v != seq && v != seq+1 {
			t.Fatalf("%s: word %d of guardA/big/guardB is %d but sequence is %d: not one instant (torn copy)", label, i, v, seq)
		}
		if i > 0 && v > words[i-1] {
			t.Fatalf("%s: word %d is %d after %d: the writer goes front to back, so this mixes moments (torn copy)", label, i, v, words[i-1])
		}
	}
}

func parseUints(t *testing.T, list string) []uint64 {
	t.Helper()
	var out []uint64
	for f := range strings.SplitSeq(list, ",") {
		v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			t.Fatalf("dlv value %q: %v", f, err)
		}
		out = append(out, v)
	}
	return out
}

// TestCaptureNativePreCopyUnavailable: when soft-dirty bits cannot be
// cleared, the capture still works, copying everything in the stop, and
// the bundle says why.
func TestCaptureNativePreCopyUnavailable(t *testing.T) {
	tg := startTarget(t, 10, 4)
	// A directory cannot be opened for writing, like clear_refs on a
	// kernel or sandbox that does not let us.
	b, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: filepath.Join(t.TempDir(), "b"), Method: MethodNative, noTracking: "tracking disabled by the test"})
	if err != nil {
		t.Fatal(err)
	}
	tg.ping(t)
	st := nativeStats(t, b)
	if !strings.Contains(st.PreCopyUnavailableReason, "tracking disabled by the test") || st.PreCopyRounds != 0 || st.PagesCopiedLive != 0 || st.PagesCopiedPaused < 4<<20/int64(os.Getpagesize()) {
		t.Errorf("stats %+v: want no pre-copy, the reason, and the heap copied in the stop", st)
	}
	if !slices.ContainsFunc(b.Meta.Warnings, func(w string) bool { return strings.Contains(w, "no pre-copy") }) {
		t.Errorf("warnings %q do not mention the missing pre-copy", b.Meta.Warnings)
	}
	out := dlvCore(t, b.Exe, b.Core, "goroutines -with userloc main.parkedInCaptureTarget")
	if !strings.Contains(out, "[10 goroutines]") {
		t.Errorf("dlv does not see the 10 parked goroutines:\n%s", lastLines(out, 10))
	}

	if _, err := Capture(context.Background(), Options{PID: tg.pid, OutDir: filepath.Join(t.TempDir(), "c"), Method: MethodNative, PreCopy: "sometimes"}); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
		t.Errorf("PreCopy \"sometimes\": err = %v, want an unknown-setting error", err)
	}
}

func TestCheckBusyGoroutines(t *testing.T) {
	// Real dlv output of a native core from a CI run: thread 11344 was
	// stopped at the entry of the preemption signal's handler.
	const threads = `* Thread 11333 at 0x482f23 /usr/local/go/src/runtime/sys_linux_amd64.s:570 runtime.futex
  Thread 11344 at 0x482c40 /usr/local/go/src/runtime/sys_linux_amd64.s:349 runtime.sigtramp
  Thread 11350 at 0x4be1fa /work/main/diag/capture/testdata/target/main.go:66 main.busyLoop
`
	const inSigtramp = `  Goroutine 69 - User: /w/target/main.go:66 main.busyLoop (0x4be1fa) [semacquire 18388927473513]
* Goroutine 70 - User: /w/target/main.go:66 main.busyLoop (0x4be1fa) (thread 11333) [stopping the world]
  Goroutine 72 - User: /usr/local/go/src/runtime/sys_linux_amd64.s:349 runtime.sigtramp (0x482c40) (thread 11344)
[3 goroutines]
`
	if err := checkBusyGoroutines(threads+inSigtramp, 3); err != nil {
		t.Errorf("a thread caught entering a signal handler: %v", err)
	}
	for name, tc := range map[string]struct {
		out  string
		want int
	}{
		"one missing": {threads + inSigtramp, 4},
		"parked elsewhere": {threads + `  Goroutine 69 - User: /w/target/main.go:40 main.other (0x4be1fa) [semacquire 1]
`, 1},
		"thread not listed": {threads + `  Goroutine 72 - User: /x.s:349 runtime.sigtramp (0x482c40) (thread 99)
`, 1},
		"thread in user code but stack unwound elsewhere": {threads + `  Goroutine 72 - User: /w/target/main.go:101 main.main.gowrap2 (0x4beabb) (thread 11350)
`, 1},
	} {
		if err := checkBusyGoroutines(tc.out, tc.want); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
