package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

var webURL = regexp.MustCompile(`pprof web UI of (\S+): (http://127\.0\.0\.1:\d+/ui/) `)

// startProfileWeb runs wardgate with args and waits for the line naming
// the web UI; it returns the UI's URL, the file it shows and the process.
func startProfileWeb(t *testing.T, dir string, args ...string) (string, string, *exec.Cmd, chan struct{}) {
	t.Helper()
	cmd := exec.Command(wardgateBin, args...)
	cmd.Dir = dir
	var stderr testutil.SyncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	found := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := webURL.FindStringSubmatch(sc.Text()); m != nil {
				found <- m
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case m := <-found:
		return m[2], m[1], cmd, exited
	case <-exited:
		t.Fatalf("wardgate %v exited before serving: %v\n%s", args, cmd.ProcessState, stderr.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("wardgate %v printed no web UI URL within 3 minutes\n%s", args, stderr.String())
	}
	return "", "", nil, nil
}

func getPage(t *testing.T, url string) string {
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
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// stopWeb interrupts the UI like Ctrl-C and wants exit 0.
func stopWeb(t *testing.T, cmd *exec.Cmd, exited chan struct{}) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("the web UI did not stop within a minute of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit %d after SIGINT, want 0", code)
	}
}

// TestDiagProfileWebUI: `diag profile --target ... --http 127.0.0.1:0`
// captures a profile of a live process, then serves pprof's web UI whose
// flame graph names the function the process's goroutines are blocked in;
// `diag profile web DIR` shows a saved profile the same way. Ctrl-C stops
// both with exit 0.
func TestDiagProfileWebUI(t *testing.T) {
	target := diagAdmin(t)
	ch := make(chan struct{})
	defer close(ch)
	var in atomic.Int64
	for range 50 {
		go diagLeakyFn(ch, &in)
	}
	for in.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	dir := t.TempDir()
	saved := filepath.Join(dir, "bundle", "goroutine.pb.gz")
	if err := os.Mkdir(filepath.Dir(saved), 0o700); err != nil {
		t.Fatal(err)
	}

	url, file, cmd, exited := startProfileWeb(t, dir, "diag", "profile", "--target", target, "--type", "goroutine",
		"--out", saved, "--top", "3", "--http", "127.0.0.1:0")
	if file != saved {
		t.Errorf("serves %s, want the saved %s", file, saved)
	}
	if page := getPage(t, url+"flamegraph"); !strings.Contains(page, "diagLeakyFn") {
		t.Errorf("flame graph of the captured profile does not name diagLeakyFn (%d bytes)", len(page))
	}
	stopWeb(t, cmd, exited)

	// A saved profile, named by its directory (a bundle with one profile).
	url, _, cmd, exited = startProfileWeb(t, dir, "diag", "profile", "web", "--http", "127.0.0.1:0", filepath.Dir(saved))
	for _, page := range []string{"flamegraph", "top"} {
		if body := getPage(t, url+page); !strings.Contains(body, "diagLeakyFn") {
			t.Errorf("/ui/%s of the saved profile does not name diagLeakyFn", page)
		}
	}
	stopWeb(t, cmd, exited)
}

func TestDiagProfileWebErrors(t *testing.T) {
	dir := t.TempDir()
	two := filepath.Join(dir, "two")
	if err := os.Mkdir(two, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"heap.pb.gz", "allocs.pb.gz"} {
		if err := os.WriteFile(filepath.Join(two, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	notProfile := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notProfile, []byte("not a profile\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"diag", "profile", "web"}, 2, "name at least one profile"},
		{[]string{"diag", "profile", "web", "--http", "8080", notProfile}, 2, "--http: want host:port"},
		{[]string{"diag", "profile", "web", two}, 1, "several profiles"},
		// Checked before the capture (a closed port: no capture either way).
		{[]string{"diag", "profile", "--target", "http://127.0.0.1:1", "--type", "cpu", "--http", "nohostport"}, 2, "--http: want host:port"},
		{[]string{"diag", "profile", "web", filepath.Join(dir, "missing.pb.gz")}, 1, "no such file"},
		{[]string{"diag", "profile", "web", notProfile}, 1, "pprof web UI"},
	} {
		_, stderr, code := runWardgate(t, dir, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
	stdout, _, code := runWardgate(t, dir, "diag", "profile", "web", "-h")
	if code != 0 || !strings.Contains(stdout, "flamegraph") || !strings.Contains(stdout, "docs/runbooks/profile.md") {
		t.Errorf("diag profile web -h: exit %d\n%s", code, stdout)
	}
}
