package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

// analyzeJobqueue is a running `wardgate jobqueue`.
type analyzeJobqueue = testutil.Proc

// analyzeStartJobqueue runs `wardgate jobqueue` with env on loopback ports
// and waits for its "listening" line.
func analyzeStartJobqueue(t *testing.T, env ...string) *analyzeJobqueue {
	t.Helper()
	cmd := exec.Command(wardgateBin, "jobqueue")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "LISTEN=127.0.0.1:0", "ADMIN_LISTEN=127.0.0.1:0")
	cmd.Env = append(cmd.Env, env...)
	return testutil.StartListening(t, cmd, 60*time.Second)
}

// analyzeClosedPort returns a loopback address nothing listens on.
func analyzeClosedPort(t *testing.T) string {
	t.Helper()
	return testutil.FreeAddr(t)
}

// analyzePost posts one collection of n payloads and returns the status.
func analyzePost(t *testing.T, base string, n int, tag string) int {
	t.Helper()
	var b strings.Builder
	b.WriteString(`{"version":"analyze-e2e","data":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"tag":%q,"i":%d}`, tag, i)
	}
	b.WriteString("]}")
	resp, err := http.Post(base+"/v1/payloads", "application/json", strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// analyzeRun runs the wardgate binary and returns stdout, stderr and the
// exit code.
func analyzeRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, wardgateBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

// analyzeDlv is the real delve binary the team installs
// (scripts/install-test-deps.sh).
func analyzeDlv(t *testing.T) string {
	t.Helper()
	return testutil.GoTool(t, "dlv")
}

// analyzeReport is the part of `diag analyze --json` these tests read.
type analyzeReport struct {
	Build struct {
		GoVersion string `json:"go_version"`
	} `json:"build"`
	Stop struct {
		Signal  int    `json:"signal"`
		Summary string `json:"summary"`
	} `json:"stop"`
	Goroutines int `json:"goroutines"`
	States     []struct {
		State string `json:"state"`
		Count int    `json:"count"`
	} `json:"states"`
	Groups []struct {
		Count              int                 `json:"count"`
		State              string              `json:"state"`
		WaitReason         string              `json:"wait_reason"`
		Culprit            string              `json:"culprit"`
		LongestWaitSeconds *float64            `json:"longest_wait_seconds"`
		Labels             map[string][]string `json:"labels"`
		Frames             []struct {
			Function string `json:"function"`
		} `json:"frames"`
	} `json:"groups"`
	JobQueue struct {
		Found       bool   `json:"found"`
		Note        string `json:"note"`
		Depth       *int64 `json:"depth"`
		Capacity    *int64 `json:"capacity"`
		BusyWorkers *int64 `json:"busy_workers"`
		Workers     *int64 `json:"workers"`
		Source      string `json:"source"`
	} `json:"job_queue"`
	Scripts []struct {
		Path   string `json:"path"`
		Output string `json:"output"`
		Error  string `json:"error"`
	} `json:"scripts"`
	Warnings []string `json:"warnings"`
}

func int64p(p *int64) string {
	if p == nil {
		return "nil"
	}
	return strconv.FormatInt(*p, 10)
}

// jobqueueBundle is a native capture of a running job queue whose store is
// down: every posted payload is acked and stays queued.
type jobqueueBundle struct {
	dir      string
	jq       *analyzeJobqueue
	payloads int
	// started is before the process started; gc is after its forced GC.
	started, gc time.Time
}

const (
	analyzeMaxWorkers = 3
	analyzeMaxQueue   = 5000
)

// captureStuckJobqueue starts `wardgate jobqueue` with an S3 store on a
// closed port (every PUT fails and is retried, nothing is stored), posts
// collections, and captures it with `wardgate diag capture --method native`.
func captureStuckJobqueue(t *testing.T) jobqueueBundle {
	t.Helper()
	started := time.Now()
	jq := analyzeStartJobqueue(t,
		"BLOB_URL=s3://wardgate-test?endpoint=http://"+analyzeClosedPort(t)+"&region=us-east-1&use_path_style=true",
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
		"ACK_MODE=enqueued",
		"MAX_WORKERS="+strconv.Itoa(analyzeMaxWorkers),
		"MAX_QUEUE="+strconv.Itoa(analyzeMaxQueue),
		"BATCH_MAX_WAIT=10ms",
	)
	payloads := 0
	for i, n := range []int{7, 40, 3, 150, 1, 99} {
		if code := analyzePost(t, jq.Public, n, fmt.Sprint("c", i)); code != http.StatusAccepted {
			t.Fatalf("post %d: status %d, want 202; stderr:\n%s", i, code, jq.Stderr)
		}
		payloads += n
	}
	// Wait until a worker has taken payloads and failed to store them.
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(jq.Stderr.String(), "blob put failed, retrying") {
		if time.Now().After(deadline) {
			t.Fatalf("no failed PUT within 60s; stderr:\n%s", jq.Stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The runtime stamps a blocked goroutine's waitsince only when a GC
	// scans it: force one (pprof's heap handler with gc=1 runs runtime.GC)
	// so the report has wait times to show.
	analyzeGet(t, jq.Admin+"/debug/pprof/heap?gc=1")
	gc := time.Now()
	time.Sleep(200 * time.Millisecond) // some scheduler activity after the GC
	out := filepath.Join(t.TempDir(), "bundle")
	stdout, stderr, code := analyzeRun(t, "diag", "capture", "--pid", strconv.Itoa(jq.Cmd.Process.Pid), "--method", "native", "--out", out)
	if code != 0 {
		t.Fatalf("diag capture: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "method=native") {
		t.Fatalf("diag capture did not use the native capturer:\n%s", stdout)
	}
	return jobqueueBundle{dir: out, jq: jq, payloads: payloads, started: started, gc: gc}
}

func analyzeGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// TestDiagAnalyzeJobqueueCore: a real job queue with its store down,
// captured live; the real dlv lists its worker goroutines in the core, and
// `diag analyze --json` reads depth = payloads posted, capacity = MAX_QUEUE
// and workers = MAX_WORKERS from the queue's memory.
func TestDiagAnalyzeJobqueueCore(t *testing.T) {
	b := captureStuckJobqueue(t)

	// The process keeps running after the capture.
	if body := analyzeGet(t, b.jq.Admin+"/healthz"); body == "" {
		t.Fatal("empty /healthz after capture")
	}

	// The real dlv opens the core and sees the worker goroutines (-s: by
	// start location).
	initFile := filepath.Join(t.TempDir(), "init.dlv")
	if err := os.WriteFile(initFile, []byte("goroutines -s\nexit\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dlv := exec.CommandContext(ctx, analyzeDlv(t), "core", filepath.Join(b.dir, "exe"), filepath.Join(b.dir, "core"),
		"--init", initFile, "--allow-non-terminal-interactive")
	dlv.Stdin = strings.NewReader("")
	out, err := dlv.CombinedOutput()
	if err != nil {
		t.Fatalf("dlv core: %v\n%s", err, out)
	}
	workers := strings.Count(string(out), "jobqueue.(*Queue).worker")
	if workers != analyzeMaxWorkers {
		t.Errorf("dlv lists %d goroutines started at jobqueue.(*Queue).worker, want %d:\n%s", workers, analyzeMaxWorkers, out)
	}

	stdout, stderr, code := analyzeRun(t, "diag", "analyze", b.dir, "--json")
	if code != 0 {
		t.Fatalf("diag analyze: exit %d\n%s", code, stderr)
	}
	var r analyzeReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout)
	}
	jq := r.JobQueue
	if !jq.Found {
		t.Fatalf("job queue not found: %s", jq.Note)
	}
	if jq.Depth == nil || *jq.Depth != int64(b.payloads) {
		t.Errorf("depth %s, want %d payloads posted (source %s)", int64p(jq.Depth), b.payloads, jq.Source)
	}
	if jq.Capacity == nil || *jq.Capacity != analyzeMaxQueue {
		t.Errorf("capacity %s, want MAX_QUEUE=%d (source %s)", int64p(jq.Capacity), analyzeMaxQueue, jq.Source)
	}
	if jq.Workers == nil || *jq.Workers != analyzeMaxWorkers {
		t.Errorf("workers %s, want MAX_WORKERS=%d (source %s)", int64p(jq.Workers), analyzeMaxWorkers, jq.Source)
	}
	if jq.BusyWorkers == nil || *jq.BusyWorkers < 0 || *jq.BusyWorkers > analyzeMaxWorkers {
		t.Errorf("busy workers %s, want 0..%d", int64p(jq.BusyWorkers), analyzeMaxWorkers)
	}
	// Longest wait: known for goroutines the forced GC saw blocked, never
	// more than the process has lived (the core's "now" is estimated from
	// runtime timestamps and must not run ahead).
	lived := time.Since(b.started).Seconds()
	waits := 0
	for _, g := range r.Groups {
		if g.LongestWaitSeconds == nil {
			continue
		}
		waits++
		t.Logf("group %d × %s (%s): longest wait ≥ %.3fs", g.Count, g.Culprit, g.WaitReason, *g.LongestWaitSeconds)
		if w := *g.LongestWaitSeconds; w < 0 || w > lived {
			t.Errorf("group %d × %s: longest wait %.3fs, but the process lived %.3fs", g.Count, g.Culprit, w, lived)
		}
	}
	if waits == 0 {
		t.Errorf("no group has a longest wait although a GC ran after the goroutines blocked")
	}
	t.Logf("job queue: depth=%s capacity=%s workers=%s busy=%s from %s", int64p(jq.Depth), int64p(jq.Capacity), int64p(jq.Workers), int64p(jq.BusyWorkers), jq.Source)
}

// TestDiagAnalyzeCLI drives `wardgate diag analyze` on one live capture of
// a job queue: Markdown by default, --json, --out, --script with a shipped
// delve script, a core file with --exe, and the usage errors.
func TestDiagAnalyzeCLI(t *testing.T) {
	b := captureStuckJobqueue(t)
	core, exe := filepath.Join(b.dir, "core"), filepath.Join(b.dir, "exe")

	t.Run("markdown", func(t *testing.T) {
		stdout, stderr, code := analyzeRun(t, "diag", "analyze", b.dir)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{
			"# Post-mortem report\n",
			"## Why it stopped\n",
			"## Goroutines: ",
			"## Goroutines grouped by stack",
			"## Job queue\n",
			fmt.Sprintf("| %d | %d | ", b.payloads, analyzeMaxQueue),
			fmt.Sprintf(" | %d |\n", analyzeMaxWorkers),
			"github.com/wardgate/wardgate/jobqueue.(*Queue).worker",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("Markdown report lacks %q:\n%s", want, stdout)
			}
		}
	})

	t.Run("json and core with --exe", func(t *testing.T) {
		for _, args := range [][]string{{b.dir, "--json"}, {"--json", core, "--exe", exe}} {
			stdout, stderr, code := analyzeRun(t, append([]string{"diag", "analyze"}, args...)...)
			if code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, stderr)
			}
			var r analyzeReport
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatalf("%v: not JSON: %v", args, err)
			}
			sum := 0
			for _, s := range r.States {
				sum += s.Count
			}
			if r.Goroutines == 0 || sum != r.Goroutines {
				t.Errorf("%v: %d goroutines, states add up to %d", args, r.Goroutines, sum)
			}
			if !strings.HasPrefix(r.Build.GoVersion, "go1.") {
				t.Errorf("%v: go version %q", args, r.Build.GoVersion)
			}
			if r.JobQueue.Depth == nil || *r.JobQueue.Depth != int64(b.payloads) {
				t.Errorf("%v: depth %s, want %d", args, int64p(r.JobQueue.Depth), b.payloads)
			}
		}
	})

	t.Run("out", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "report.json")
		stdout, stderr, code := analyzeRun(t, "diag", "analyze", b.dir, "--json", "--out", out)
		if code != 0 || stdout != "" {
			t.Fatalf("exit %d, stdout %q: %s", code, stdout, stderr)
		}
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("report mode %v, want 0600 (it may quote secrets from memory)", st.Mode().Perm())
		}
		data, _ := os.ReadFile(out)
		var r analyzeReport
		if err := json.Unmarshal(data, &r); err != nil || r.Goroutines == 0 {
			t.Fatalf("--out file is not the JSON report (%v):\n%s", err, data)
		}
	})

	t.Run("script", func(t *testing.T) {
		script, err := filepath.Abs("../../scripts/postmortem/jobqueue.star")
		if err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := analyzeRun(t, "diag", "analyze", b.dir, "--json", "--script", script, "--dlv", analyzeDlv(t))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var r analyzeReport
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Scripts) != 1 || r.Scripts[0].Error != "" {
			t.Fatalf("scripts: %+v", r.Scripts)
		}
		// One line per worker, each in the worker loop.
		if n := strings.Count(r.Scripts[0].Output, "in github.com/wardgate/wardgate/jobqueue.(*Queue).worker"); n != analyzeMaxWorkers {
			t.Errorf("jobqueue.star shows %d workers, want %d:\n%s", n, analyzeMaxWorkers, r.Scripts[0].Output)
		}
		// And the Markdown report carries the script's output.
		md, _, code := analyzeRun(t, "diag", "analyze", b.dir, "--script", script, "--dlv", analyzeDlv(t))
		if code != 0 || !strings.Contains(md, "## Script ") || !strings.Contains(md, fmt.Sprintf("workers: %d busy workers:", analyzeMaxWorkers)) {
			t.Errorf("Markdown report (exit %d) lacks the script section:\n%s", code, md)
		}
	})

	t.Run("errors", func(t *testing.T) {
		dir := t.TempDir()
		garbage := filepath.Join(dir, "garbage.core")
		if err := os.WriteFile(garbage, bytes.Repeat([]byte("not a core\n"), 100), 0o600); err != nil {
			t.Fatal(err)
		}
		// A core cut short: the ELF header is there, the segments are not.
		// The cut is after the program header table (at least 4 KiB in):
		// a core with many mappings has more headers than fit in 4 KiB,
		// and cutting inside them makes a core that is not ELF at all.
		truncated := filepath.Join(dir, "truncated.core")
		f, err := os.Open(core)
		if err != nil {
			t.Fatal(err)
		}
		ehdr := make([]byte, 64) // ELF64 header: e_phoff at 32, e_phentsize at 54, e_phnum at 56
		if _, err := io.ReadFull(f, ehdr); err != nil {
			t.Fatal(err)
		}
		phEnd := binary.LittleEndian.Uint64(ehdr[32:]) +
			uint64(binary.LittleEndian.Uint16(ehdr[54:]))*uint64(binary.LittleEndian.Uint16(ehdr[56:]))
		head := make([]byte, max(4096, phEnd))
		f.ReadAt(head, 0)
		f.Close()
		if err := os.WriteFile(truncated, head, 0o600); err != nil {
			t.Fatal(err)
		}
		// Cut in the middle of the memory segments, as a full disk would:
		// every header is there, so delve would open it and report a
		// partial picture without a word.
		half := filepath.Join(dir, "half.core")
		if src, err := os.Open(core); err != nil {
			t.Fatal(err)
		} else {
			st, _ := src.Stat()
			dst, err := os.Create(half)
			if err == nil {
				_, err = io.CopyN(dst, src, st.Size()/2)
				err = errors.Join(err, dst.Close())
			}
			src.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		noCore := filepath.Join(dir, "bundle-without-core")
		if err := os.Mkdir(noCore, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(exe, filepath.Join(noCore, "exe")); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			args []string
			code int
			want string
		}{
			{"no argument", nil, 2, "want exactly one BUNDLE_DIR or CORE"},
			{"two arguments", []string{b.dir, b.dir}, 2, "want exactly one BUNDLE_DIR or CORE"},
			{"missing bundle", []string{filepath.Join(dir, "nope")}, 2, "no such file or directory"},
			{"bundle without core", []string{noCore}, 2, "core: no such file or directory"},
			{"core without --exe", []string{core}, 2, "needs --exe"},
			{"missing exe", []string{core, "--exe", filepath.Join(dir, "nope")}, 1, "no such file or directory"},
			{"garbage core", []string{garbage, "--exe", exe}, 1, "is not an ELF core file"},
			{"truncated core", []string{truncated, "--exe", exe}, 1, "is truncated"},
			{"core cut in half", []string{half, "--exe", exe}, 1, "is truncated"},
			{"missing script", []string{b.dir, "--script", filepath.Join(dir, "nope.star")}, 2, "nope.star"},
			{"bad max-groups", []string{b.dir, "--max-groups", "x"}, 2, "invalid value"},
			{"unknown flag", []string{b.dir, "--frobnicate"}, 2, "frobnicate"},
		} {
			stdout, stderr, code := analyzeRun(t, append([]string{"diag", "analyze"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("%s: exit %d, want %d with %q; stdout %q stderr %q", tc.name, code, tc.code, tc.want, stdout, stderr)
			}
		}
	})

	t.Run("help", func(t *testing.T) {
		stdout, _, code := analyzeRun(t, "diag", "analyze", "--help")
		if code != 0 || !strings.Contains(stdout, "Usage:") || !strings.Contains(stdout, "-script") || !strings.Contains(stdout, "TRACE_URL_TEMPLATE") {
			t.Errorf("--help: exit %d\n%s", code, stdout)
		}
	})
}
