package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

// upWait bounds every wait in these tests: generous, the machine is shared.
const upWait = 2 * time.Minute

// upRow is one row of the table `wardgate up` prints.
type upRow struct {
	service, public, metrics string
	pid                      int
}

// upProc is a running `wardgate up` with its table and its log.
type upProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	data   string
	rows   map[string]upRow
	stderr *logBuffer
	exited chan struct{}
}

// logBuffer collects up's stderr (its JSON log plus the children's
// prefixed lines) for the tests to search.
type logBuffer struct {
	testutil.SyncBuffer
}

// upLogs returns up's own JSON log records (not the children's lines).
func (l *logBuffer) upLogs() []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["service"] == "wardgate-up" {
			out = append(out, m)
		}
	}
	return out
}

func startUp(t *testing.T, args ...string) *upProc {
	t.Helper()
	return startUpEnv(t, nil, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
}

// startUpEnv runs `wardgate up --data TMP args...` with env added to the
// test's environment and waits for its table.
func startUpEnv(t *testing.T, env []string, args ...string) *upProc {
	t.Helper()
	u := &upProc{t: t, data: t.TempDir(), rows: map[string]upRow{}, stderr: &logBuffer{}, exited: make(chan struct{})}
	u.cmd = exec.Command(wardgateBin, append([]string{"up", "--data", u.data}, args...)...)
	u.cmd.Env = append(os.Environ(), env...)
	u.cmd.Stderr = u.stderr
	stdout, err := u.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = u.cmd.Wait(); close(u.exited) }()
	t.Cleanup(func() {
		_ = testutil.Terminate(u.cmd.Process, u.exited, upWait)
		if t.Failed() {
			t.Logf("wardgate up log:\n%s", u.stderr.String())
		}
	})

	table := make(chan error, 1)
	go func() {
		rows, err := testutil.ReadUpTable(bufio.NewScanner(stdout))
		for _, r := range rows {
			u.rows[r.Service] = upRow{service: r.Service, pid: r.PID, public: r.Public, metrics: r.Metrics}
		}
		table <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err := <-table:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(upWait):
		t.Fatal("no service table within the deadline")
	}
	return u
}

// stop sends SIGTERM to up and returns its exit code.
func (u *upProc) stop() int {
	u.t.Helper()
	if err := testutil.Terminate(u.cmd.Process, u.exited, upWait); err != nil {
		u.t.Fatalf("up did not exit after SIGTERM: %v", err)
	}
	return u.cmd.ProcessState.ExitCode()
}

// waitLog waits for a record of up's log that f accepts.
func (u *upProc) waitLog(what string, f func(map[string]any) bool) map[string]any {
	u.t.Helper()
	deadline := time.Now().Add(upWait)
	for time.Now().Before(deadline) {
		for _, m := range u.stderr.upLogs() {
			if f(m) {
				return m
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	u.t.Fatalf("timed out waiting for %s in up's log", what)
	return nil
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	return testutil.Get(context.Background(), &http.Client{Timeout: 10 * time.Second}, url)
}

// waitOK polls url until it answers 200.
func waitOK(t *testing.T, url string) {
	t.Helper()
	testutil.WaitHTTPOK(context.Background(), t, url, upWait)
}

// postCollection posts one collection whose payloads are {"marker": m}
// through the gateway and returns the status code.
func postCollection(t *testing.T, gateway string, markers []string) int {
	t.Helper()
	data := make([]map[string]string, len(markers))
	for i, m := range markers {
		data[i] = map[string]string{"marker": m}
	}
	body, _ := json.Marshal(map[string]any{"version": "10.0.19045", "token": "t", "data": data})
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Post(gateway+"/v1/payloads", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST through the gateway: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// storedMarkers reads every stored object under blobs and returns how many
// times each payload marker appears.
func storedMarkers(t *testing.T, blobs string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	err := filepath.WalkDir(blobs, func(path string, d fs.DirEntry, err error) error {
		// KEY.<hex>.tmp: a write a killed job queue never finished (and
		// never acknowledged); the next start removes it once stale.
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") || strings.HasSuffix(d.Name(), ".tmp") {
			return err
		}
		data, err := testutil.ReadBlob(path)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var line struct {
				Payload struct {
					Marker string `json:"marker"`
				} `json:"payload"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			seen[line.Payload.Marker]++
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// upSample scrapes metricsURL and returns the value of the series of
// family name whose labels include labels (for a histogram, its sample
// count), and whether there is one.
func upSample(t *testing.T, metricsURL, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	fams, err := telScrape(metricsURL)
	if err != nil {
		t.Fatalf("scrape %s: %v", metricsURL, err)
	}
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// upWaitSample polls up's metrics until the series reaches want.
func (u *upProc) waitSample(name string, labels map[string]string, want float64) {
	u.t.Helper()
	url := u.rows["up"].metrics
	deadline := time.Now().Add(upWait)
	for {
		v, ok := upSample(u.t, url, name, labels)
		if ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("%s%v = %v (present: %v) on %s, want %v", name, labels, v, ok, url, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUpTableMetricsIngestAndCleanStop(t *testing.T) {
	u := startUp(t)
	if len(u.rows) != 4 {
		t.Fatalf("table has %d rows, want up, gateway, jobqueue-1, jobqueue-2: %+v", len(u.rows), u.rows)
	}
	// up's own row: its pid, no public listener, its admin listener.
	if r := u.rows["up"]; r.pid != u.cmd.Process.Pid || r.public != "-" {
		t.Fatalf("up row %+v, want pid %d and public -", r, u.cmd.Process.Pid)
	}
	for _, name := range []string{"jobqueue-1", "jobqueue-2", "gateway"} {
		if v, ok := upSample(t, u.rows["up"].metrics, "wardgate_child_up", map[string]string{"service": name}); !ok || v != 1 {
			t.Fatalf("up's wardgate_child_up{service=%q} = %v (present: %v), want 1", name, v, ok)
		}
	}
	if code, body := httpGet(t, strings.TrimSuffix(u.rows["up"].metrics, "/metrics")+"/healthz"); code != http.StatusOK || !strings.Contains(body, "wardgate-up") {
		t.Fatalf("up's /healthz: %d %s", code, body)
	}
	for _, name := range []string{"up", "gateway", "jobqueue-1", "jobqueue-2"} {
		r, ok := u.rows[name]
		if !ok {
			t.Fatalf("no row for %s: %+v", name, u.rows)
		}
		if !alive(r.pid) {
			t.Fatalf("%s pid %d is not running", name, r.pid)
		}
		if !strings.HasPrefix(r.metrics, "http://127.0.0.1:") || !strings.HasSuffix(r.metrics, "/metrics") {
			t.Fatalf("%s metrics URL %q", name, r.metrics)
		}
		code, body := httpGet(t, r.metrics)
		if code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
			t.Fatalf("%s %s: %d, body without go_goroutines:\n%.500s", name, r.metrics, code, body)
		}
	}
	gw := u.rows["gateway"].public
	var acked []string
	for i := range 30 {
		batch := []string{fmt.Sprintf("c%d-a", i), fmt.Sprintf("c%d-b", i), fmt.Sprintf("c%d-c", i)}
		if code := postCollection(t, gw, batch); code != http.StatusAccepted {
			t.Fatalf("collection %d: %d, want 202", i, code)
		}
		acked = append(acked, batch...)
	}
	// Both job queues got traffic: the gateway balances over them.
	for _, jq := range []string{"jobqueue-1", "jobqueue-2"} {
		_, body := httpGet(t, u.rows[jq].metrics)
		if !strings.Contains(body, "wardgate_") {
			t.Fatalf("%s exposes no wardgate_ metrics", jq)
		}
	}
	if code := u.stop(); code != 0 {
		t.Fatalf("up exited %d after SIGTERM, want 0", code)
	}
	for name, r := range u.rows {
		if alive(r.pid) {
			t.Errorf("%s (pid %d) still running after up exited", name, r.pid)
		}
	}
	seen := storedMarkers(t, filepath.Join(u.data, "blobs"))
	for _, m := range acked {
		if seen[m] != 1 {
			t.Errorf("acked payload %s stored %d times, want 1", m, seen[m])
		}
	}
	if len(seen) != len(acked) {
		t.Errorf("stored %d distinct payloads, acked %d", len(seen), len(acked))
	}
	// The stop order is the contract: gateway first, then the job queues.
	var order []string
	for _, m := range u.stderr.upLogs() {
		if m["msg"] == "child exited" {
			order = append(order, m["child"].(string))
		}
	}
	if len(order) != 3 || order[0] != "gateway" {
		t.Fatalf("exit order %v, want the gateway first", order)
	}
}

// TestUpGatewayRestartRefusesNoClient: up holds the public socket and hands
// it to every gateway process, so a client that connects while the gateway
// is dead waits in the accept queue and is served by the next one, where
// it used to be refused. Once up stops, the port is free again.
func TestUpGatewayRestartRefusesNoClient(t *testing.T) {
	u := startUp(t, "--jobqueues", "1", "--ack-mode", "durable")
	gw := u.rows["gateway"]
	if code := postCollection(t, gw.public, []string{"before"}); code != http.StatusAccepted {
		t.Fatalf("POST before the restart: %d", code)
	}
	if err := syscall.Kill(gw.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// up has seen the exit and is in its restart backoff: no gateway runs.
	u.waitLog("gateway exit", func(m map[string]any) bool {
		return m["msg"] == "child died" && m["child"] == "gateway" && m["pid"] == float64(gw.pid)
	})
	if code := postCollection(t, gw.public, []string{"during"}); code != http.StatusAccepted {
		t.Fatalf("POST while the gateway restarts: %d, want 202 from the next gateway", code)
	}
	started := u.waitLog("gateway restart", func(m map[string]any) bool {
		return m["msg"] == "child started" && m["child"] == "gateway" && m["pid"] != float64(gw.pid)
	})
	if code := postCollection(t, gw.public, []string{"after"}); code != http.StatusAccepted {
		t.Fatalf("POST after the restart (gateway pid %v): %d", started["pid"], code)
	}
	if code := u.stop(); code != 0 {
		t.Fatalf("up exited %d after SIGTERM, want 0", code)
	}
	seen := storedMarkers(t, filepath.Join(u.data, "blobs"))
	for _, m := range []string{"before", "during", "after"} {
		if seen[m] != 1 {
			t.Errorf("payload %q stored %d times, want once (all: %v)", m, seen[m], seen)
		}
	}
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(gw.public, "http://"), 5*time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after up exited", gw.public)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s after up exited: %v, want connection refused", gw.public, err)
	}
}

func TestUpRestartsCrashedJobqueuesWithPostmortem(t *testing.T) {
	u := startUp(t, "--ack-mode", "durable")
	gw := u.rows["gateway"].public
	// up's counters exist from the start, at 0.
	killed := map[string]string{"service": "jobqueue-1", "reason": "signal"}
	crashed := map[string]string{"service": "jobqueue-2", "reason": "crash"}
	analyzed := map[string]string{"service": "jobqueue-2", "result": "analyzed"}
	u.waitSample("wardgate_child_restarts_total", killed, 0)
	u.waitSample("wardgate_child_restarts_total", crashed, 0)
	u.waitSample("wardgate_postmortems_total", analyzed, 0)

	// kill -9: restarted on the same port, no post-mortem (nothing to read).
	jq1 := u.rows["jobqueue-1"]
	if err := syscall.Kill(jq1.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	started := u.waitLog("jobqueue-1 restart", func(m map[string]any) bool {
		return m["msg"] == "child started" && m["child"] == "jobqueue-1" && m["pid"] != float64(jq1.pid)
	})
	waitOK(t, jq1.public+"/healthz")
	waitOK(t, jq1.metrics)
	newPID := int(started["pid"].(float64))
	if !alive(newPID) {
		t.Fatalf("restarted jobqueue-1 pid %d not running", newPID)
	}
	u.waitSample("wardgate_child_restarts_total", killed, 1)
	u.waitSample("wardgate_child_up", map[string]string{"service": "jobqueue-1"}, 1)
	u.waitSample("wardgate_postmortems_total", map[string]string{"service": "jobqueue-1", "result": "no_core"}, 0)

	// SIGQUIT: GOTRACEBACK=crash makes the child dump core; up turns it
	// into a post-mortem and restarts the child.
	jq2 := u.rows["jobqueue-2"]
	logBefore := len(u.stderr.String())
	if err := syscall.Kill(jq2.pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	pm := u.waitLog("post-mortem", func(m map[string]any) bool {
		return m["postmortem"] != nil && m["child"] == "jobqueue-2"
	})
	dir := pm["postmortem"].(string)
	want := filepath.Join(u.data, "postmortem") + string(filepath.Separator)
	if !strings.HasPrefix(dir, want) || !strings.HasSuffix(dir, "-jobqueue-2-"+strconv.Itoa(jq2.pid)) {
		t.Fatalf("post-mortem dir %s, want %s<UTC time>-jobqueue-2-%d", dir, want, jq2.pid)
	}
	if pm["level"] != "INFO" {
		t.Fatalf("post-mortem analysis failed: %v", pm)
	}
	// Counted before the log line is written.
	u.waitSample("wardgate_postmortems_total", analyzed, 1)
	u.waitSample("wardgate_postmortem_analyze_duration_seconds", map[string]string{"service": "jobqueue-2"}, 1)
	core, err := elf.Open(filepath.Join(dir, "core"))
	if err != nil {
		t.Fatalf("post-mortem core: %v", err)
	}
	if core.Type != elf.ET_CORE {
		t.Fatalf("core is %v, want ET_CORE", core.Type)
	}
	core.Close()
	for _, f := range []string{"exe", "crash.txt", "bundle.json", "report.md", "report.json"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("post-mortem %s: %v", f, err)
		}
	}
	crash, _ := os.ReadFile(filepath.Join(dir, "crash.txt"))
	if !strings.HasPrefix(string(crash), "SIGQUIT: quit") {
		t.Errorf("crash.txt starts %.60q", crash)
	}
	report, _ := os.ReadFile(filepath.Join(dir, "report.md"))
	if !strings.HasPrefix(string(report), "# Post-mortem report\n\n## Findings\n") {
		t.Errorf("report.md does not open with its Findings:\n%.500s", report)
	}
	if !strings.Contains(string(report), "SIGQUIT") && !strings.Contains(string(report), "SIGABRT") {
		t.Errorf("report.md does not say why the process stopped:\n%.1500s", report)
	}
	var rj map[string]any
	if b, err := os.ReadFile(filepath.Join(dir, "report.json")); err != nil || json.Unmarshal(b, &rj) != nil {
		t.Errorf("report.json unreadable: %v", err)
	}
	u.waitLog("jobqueue-2 restart", func(m map[string]any) bool {
		return m["msg"] == "child started" && m["child"] == "jobqueue-2" && m["pid"] != float64(jq2.pid)
	})
	waitOK(t, jq2.public+"/healthz")
	checkCrashQuiet(t, u, u.stderr.String()[logBefore:], dir, jq2.pid)
	u.waitSample("wardgate_child_restarts_total", crashed, 1)
	u.waitSample("wardgate_child_restarts_total", killed, 1)

	// The stack still ingests through the gateway (durable: 202 means stored).
	var acked []string
	deadline := time.Now().Add(upWait)
	for i := 0; len(acked) < 20; i++ {
		m := fmt.Sprintf("after-restart-%d", i)
		switch code := postCollection(t, gw, []string{m}); code {
		case http.StatusAccepted:
			acked = append(acked, m)
		case http.StatusBadGateway, http.StatusServiceUnavailable:
			// the gateway may still have the restarted target marked down
			if time.Now().After(deadline) {
				t.Fatalf("gateway still answers %d", code)
			}
			time.Sleep(100 * time.Millisecond)
		default:
			t.Fatalf("POST after restarts: %d", code)
		}
	}
	seen := storedMarkers(t, filepath.Join(u.data, "blobs"))
	for _, m := range acked {
		if seen[m] != 1 {
			t.Errorf("durably acked %s stored %d times", m, seen[m])
		}
	}
	if code := u.stop(); code != 0 {
		t.Fatalf("up exited %d, want 0", code)
	}
	if _, err := os.Stat(filepath.Join(u.data, "run", "jobqueue-2", "core")); !os.IsNotExist(err) {
		t.Errorf("core left in the run dir: %v", err)
	}
}

// checkCrashQuiet checks what up printed from a job queue's SIGQUIT to its
// restart (log): not the runtime's dump of every goroutine (it is in the
// child's stderr.log and the post-mortem's crash.txt), but one line that
// says what crashed, the headline of its report and the report's path,
// among a handful of lifecycle lines.
func checkCrashQuiet(t *testing.T, u *upProc, log, pmDir string, pid int) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(log), "\n")
	var dumpLines, summaries int
	for _, l := range lines {
		if strings.Contains(l, "goroutine ") && strings.Contains(l, "[") && !strings.HasPrefix(l, "{") {
			dumpLines++
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["postmortem"] != pmDir {
			continue
		}
		summaries++
		report, _ := m["report"].(string)
		headline, _ := m["headline"].(string)
		if m["child"] != "jobqueue-2" || report != filepath.Join(pmDir, "report.md") || headline == "" {
			t.Errorf("post-mortem line: child %v, headline %q, report %q; want jobqueue-2, the report's headline, %s/report.md", m["child"], headline, report, pmDir)
		}
		if b, err := os.ReadFile(report); err != nil || !strings.Contains(string(b), headline) {
			t.Errorf("the headline %q is not in %s (%v)", headline, report, err)
		}
	}
	if summaries != 1 {
		t.Errorf("%d lines name the post-mortem %s, want 1", summaries, pmDir)
	}
	// Lifecycle lines only: died, restarting, started, the new process's
	// listening lines, the post-mortem, the gateway noticing; the dump is
	// hundreds of lines.
	if dumpLines > 0 || len(lines) > 25 {
		t.Errorf("up printed %d lines (%d of a goroutine dump) from the SIGQUIT to the restart, want a handful and no dump:\n%s", len(lines), dumpLines, log)
	}
	// The crash output is kept: in the child's stderr.log and crash.txt.
	for _, f := range []string{filepath.Join(u.data, "run", "jobqueue-2", "stderr.log"), filepath.Join(pmDir, "crash.txt")} {
		if b, err := os.ReadFile(f); err != nil || !strings.Contains(string(b), "goroutine ") {
			t.Errorf("%s does not keep the goroutine dump (%v)", f, err)
		}
	}
	t.Logf("up printed %d lines for the crash of pid %d:\n%s", len(lines), pid, log)
}

func TestUpFlags(t *testing.T) {
	help := exec.Command(wardgateBin, "up", "--help")
	var helpErr bytes.Buffer
	help.Stderr = &helpErr
	out, err := help.Output()
	if err != nil || helpErr.Len() != 0 {
		t.Fatalf("up --help: %v, want exit 0 with the usage on stdout only; stderr:\n%s", err, helpErr.String())
	}
	for _, want := range []string{"-listen", "-admin", "-data", "-workers", "-queue", "-ack-mode", "-blob-url", "-keep-postmortems", "docs/up.md", "/status", "DATA/run/<service>/pid", "-only", "-gateway-config", "-upload", "WARDGATE_UPLOAD"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("up --help does not mention %s", want)
		}
	}
	for _, args := range [][]string{
		{"--ack-mode", "sometimes"},
		{"--listen", "8080"},
		{"--admin", "localhost"},
		{"--workers", "-1"},
		{"--keep-postmortems", "-1"},
		{"--blob-url", "not a url"},
		{"extra"},
		{"--only", "gateway,jobqueue"},
		{"--only", "gateway"}, // no --gateway-config
		{"--only", "jobqueue", "--jobqueues", "3"},
		{"--only", "jobqueue", "--listen", "0.0.0.0:8080"},
		{"--only", "gateway", "--gateway-config", "f.yaml", "--workers", "8"},
		{"--gateway-config", "f.yaml"},
		{"--upload", "ftp://bucket"},
	} {
		cmd := exec.CommandContext(context.Background(), wardgateBin, append([]string{"up"}, args...)...)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 {
			t.Errorf("up %v: %v, want exit 2\n%s", args, err, out)
		}
		if !strings.Contains(string(out), strings.TrimLeft(args[0], "-")) {
			t.Errorf("up %v: error does not name %s: %s", args, args[0], out)
		}
	}
	// A taken --listen port is a clear error before anything starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err = exec.Command(wardgateBin, "up", "--listen", ln.Addr().String(), "--data", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("up on a taken port: %v\n%s", err, out)
	}
}

// TestUpWatchdogCapturesStuckCrash makes a job queue look stuck in its crash
// path (its crash output starts with a fatal error, then nothing more, and the
// process does not exit): up must capture it live with the native capturer,
// kill it, write the post-mortem with a report, and restart it.
func TestUpWatchdogCapturesStuckCrash(t *testing.T) {
	u := startUp(t, "--jobqueues", "1")
	jq := u.rows["jobqueue-1"]
	crash := filepath.Join(u.data, "run", "jobqueue-1", "crash.txt")
	f, err := os.OpenFile(crash, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("fatal error: simulated crash that never finishes\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pm := u.waitLog("post-mortem", func(m map[string]any) bool {
		return m["postmortem"] != nil && m["child"] == "jobqueue-1"
	})
	if pm["level"] != "INFO" || pm["exit"] != "signal: killed" {
		t.Fatalf("post-mortem log %v, want a clean analysis of a killed process", pm)
	}
	dir := pm["postmortem"].(string)
	var capMeta struct {
		PID    int    `json:"pid"`
		Method string `json:"method"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "bundle.json")); err != nil || json.Unmarshal(b, &capMeta) != nil || capMeta.PID != jq.pid || capMeta.Method != "native" {
		t.Fatalf("capture bundle.json: %+v %v", capMeta, err)
	}
	var sup struct {
		Method string `json:"method"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "supervisor.json")); err != nil || json.Unmarshal(b, &sup) != nil || sup.Method != "watchdog" {
		t.Fatalf("supervisor.json: %+v %v", sup, err)
	}
	core, err := elf.Open(filepath.Join(dir, "core"))
	if err != nil {
		t.Fatalf("captured core: %v", err)
	}
	core.Close()
	report, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil || !strings.Contains(string(report), "simulated crash that never finishes") {
		t.Fatalf("report.md does not carry the crash output (%v):\n%.1500s", err, report)
	}
	u.waitLog("restart", func(m map[string]any) bool {
		return m["msg"] == "child started" && m["child"] == "jobqueue-1" && m["pid"] != float64(jq.pid)
	})
	waitOK(t, jq.public+"/healthz")
	u.waitSample("wardgate_watchdog_captures_total", map[string]string{"service": "jobqueue-1"}, 1)
	u.waitSample("wardgate_child_restarts_total", map[string]string{"service": "jobqueue-1", "reason": "watchdog"}, 1)
	u.waitSample("wardgate_child_restarts_total", map[string]string{"service": "jobqueue-1", "reason": "signal"}, 0)
	if code := u.stop(); code != 0 {
		t.Fatalf("up exited %d, want 0", code)
	}
}

// TestUpAnswers503ThroughAGatewayCrashLoop: clients of a gateway in a crash
// loop must not hang in the accept queue for the whole backoff. Once a
// restart is scheduled a second or more away, up answers on the gateway's
// socket itself: 503, Retry-After, the reason. When the gateway is back,
// requests go through again.
func TestUpAnswers503ThroughAGatewayCrashLoop(t *testing.T) {
	u := startUp(t, "--jobqueues", "1")
	gw := u.rows["gateway"].public
	pid := u.rows["gateway"].pid
	seen := map[float64]bool{float64(pid): true} // every gateway pid so far
	newGateway := func(m map[string]any) bool {
		return m["msg"] == "child started" && m["child"] == "gateway" && !seen[m["pid"].(float64)]
	}
	restarts := func() []map[string]any {
		var out []map[string]any
		for _, m := range u.stderr.upLogs() {
			if m["msg"] == "restarting child" && m["child"] == "gateway" {
				out = append(out, m)
			}
		}
		return out
	}
	// Backoff doubles from 100ms: kill each new gateway until a restart is
	// scheduled at least 3s away, time enough to ask it on a slow machine.
	for kills := 1; ; kills++ {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var delay time.Duration
		testutil.Eventually(context.Background(), t, upWait, 20*time.Millisecond, "restart scheduled", func() (bool, string) {
			rs := restarts()
			if len(rs) < kills {
				return false, fmt.Sprintf("%d restarts logged", len(rs))
			}
			d, err := time.ParseDuration(rs[kills-1]["after"].(string))
			delay = d
			return err == nil, fmt.Sprint(err)
		})
		if delay >= 3*time.Second {
			break
		}
		started := u.waitLog("gateway restart", newGateway)
		pid = int(started["pid"].(float64))
		seen[started["pid"].(float64)] = true
		waitOK(t, u.rows["gateway"].metrics) // up and serving before the next kill
	}

	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(gw + "/v1/payloads")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	retry, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusServiceUnavailable || retry < 1 || !strings.Contains(string(body), "gateway restarting") {
		t.Fatalf("during a %v backoff: %d Retry-After %q %s; want 503 from up with Retry-After", "≥3s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	u.waitLog("gateway back", newGateway)
	testutil.Eventually(context.Background(), t, upWait, 50*time.Millisecond, "a POST through the restarted gateway", func() (bool, string) {
		code := postCollection(t, gw, []string{"back"})
		return code == http.StatusAccepted, fmt.Sprint(code)
	})
}
