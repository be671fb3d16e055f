package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
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

// startCaptureTarget builds and runs diag/capture's test program (100
// goroutines parked under pprof labels) and returns its pid.
func startCaptureTarget(t *testing.T) int {
	t.Helper()
	bin := testutil.BuildT(context.Background(), t, "target", "../../diag/capture/testdata/target")
	cmd := exec.Command(bin, "-goroutines", "100", "-heap-mb", "2")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-ready:
		if !strings.HasPrefix(line, "ready pid=") {
			t.Fatalf("target said %q", line)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("target not ready within 60s")
	}
	return cmd.Process.Pid
}

func captureRunWardgate(t *testing.T, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return captureRunWardgateBin(t, wardgateBin, cred, args...)
}

func captureRunWardgateBin(t *testing.T, bin string, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func TestDiagCaptureCLI(t *testing.T) {
	pid := startCaptureTarget(t)
	dir := filepath.Join(t.TempDir(), "bundle")
	stdout, stderr, code := captureRunWardgate(t, nil, "diag", "capture", "--pid", strconv.Itoa(pid), "--out", dir, "--method", "native")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if lines[0] != dir {
		t.Errorf("first line %q, want the bundle path %q", lines[0], dir)
	}
	if len(lines) < 2 || !strings.Contains(lines[1], "method=native") || !strings.Contains(lines[1], "pause=") || !strings.Contains(lines[1], "on disk") {
		t.Errorf("no one-line summary with method, pause and core size:\n%s", stdout)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		PID    int    `json:"pid"`
		Method string `json:"method"`
	}
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.PID != pid || meta.Method != "native" {
		t.Errorf("bundle.json pid=%d method=%q", meta.PID, meta.Method)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("target is gone after the capture: %v", err)
	}
}

func TestDiagCaptureCLIErrors(t *testing.T) {
	stdout, _, code := captureRunWardgate(t, nil, "diag", "capture", "--help")
	if code != 0 || !strings.Contains(stdout, "--pid") || !strings.Contains(stdout, "dlv core") {
		t.Errorf("--help: exit %d, stdout %q", code, stdout)
	}
	if _, stderr, code := captureRunWardgate(t, nil, "diag", "capture"); code != 2 || !strings.Contains(stderr, "--pid or --pid-file is required") {
		t.Errorf("no --pid: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := captureRunWardgate(t, nil, "diag", "capture", "--pid-file", filepath.Join(t.TempDir(), "none")); code != 2 || !strings.Contains(stderr, "none") {
		t.Errorf("missing --pid-file: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := captureRunWardgate(t, nil, "diag", "capture", "--pid", "1", "--method", "magic"); code != 2 || !strings.Contains(stderr, "auto, native or gcore") {
		t.Errorf("bad --method: exit %d, stderr %q", code, stderr)
	}

	// A pid that is certainly gone: a process we started and reaped.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := captureRunWardgate(t, nil, "diag", "capture", "--pid", strconv.Itoa(gone.Process.Pid), "--out", filepath.Join(t.TempDir(), "b"))
	if code != 1 || !strings.Contains(stderr, "no such process") {
		t.Errorf("gone pid: exit %d, stderr %q", code, stderr)
	}

	// An unprivileged user may not trace a root process.
	if os.Getuid() == 0 {
		pid := startCaptureTarget(t)
		// nobody needs to reach the binary and the output directory.
		out, err := os.MkdirTemp("", "capture-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(out) })
		bin, err := os.ReadFile(wardgateBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, "wardgate"), bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(out, 0o777); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := captureRunWardgateBin(t, filepath.Join(out, "wardgate"), &syscall.Credential{Uid: 65534, Gid: 65534},
			"diag", "capture", "--pid", strconv.Itoa(pid), "--out", filepath.Join(out, "b"), "--method", "native")
		if code != 1 || !strings.Contains(stderr, "CAP_SYS_PTRACE") {
			t.Errorf("capture as nobody: exit %d, stderr %q; want a permission error naming CAP_SYS_PTRACE", code, stderr)
		}
	}
}

// TestDiagCaptureUploads: --pid-file names the process (a pid file as up
// writes it) and --upload puts the bundle in the bucket; the key is
// printed and the bundle stays on disk.
func TestDiagCaptureUploads(t *testing.T) {
	bucket, _ := fakeBucket(t, "bundles")
	pid := startCaptureTarget(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	stdout, stderr, code := captureRunWardgate(t, nil, "diag", "capture", "--pid-file", pidFile, "--out", dir, "--quiet", "--upload", bucket)
	if code != 0 || strings.TrimSpace(stdout) != dir {
		t.Fatalf("exit %d, stdout %q\nstderr: %s", code, stdout, stderr)
	}
	host, _ := os.Hostname()
	key := host + "/bundle.tar.gz"
	if !strings.Contains(stderr, "key "+key) {
		t.Fatalf("stderr does not name key %s:\n%s", key, stderr)
	}
	files := readTarGz(t, bucket, key)
	for _, f := range []string{"core", "exe", "bundle.json", "environ"} {
		local, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(files["bundle/"+f]) != string(local) {
			t.Errorf("%s: uploaded %d bytes, on disk %d (%v)", f, len(files["bundle/"+f]), len(local), err)
		}
	}
}
