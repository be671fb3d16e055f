// Package e2e runs the real `wardgate jobqueue` binary on loopback ports:
// the contract a supervisor (wardgate up) and an SRE rely on.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	os.Exit(testutil.RunMain(m, &binary, "wardgate-jobqueue-e2e", "wardgate", testutil.WardgatePkg))
}

// proc is a running `wardgate jobqueue`.
type proc = testutil.Proc

// start runs `wardgate jobqueue` with env and waits for its listening line.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"jobqueue"}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "LISTEN=127.0.0.1:0", "ADMIN_LISTEN=127.0.0.1:0")
	cmd.Env = append(cmd.Env, env...)
	return testutil.StartListening(t, cmd, 60*time.Second)
}

// wait waits for p to exit and returns its exit code.
func wait(t *testing.T, p *proc) int {
	t.Helper()
	select {
	case <-p.Exited:
	case <-time.After(2 * time.Minute):
		t.Fatalf("did not exit\n%s", p.Stderr)
	}
	return p.Cmd.ProcessState.ExitCode()
}

func postCollection(client *http.Client, url string, n int, tag string) (int, error) {
	var b strings.Builder
	b.WriteString(`{"version":"e2e","data":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"tag":%q,"i":%d}`, tag, i)
	}
	b.WriteString("]}")
	resp, err := client.Post(url+"/v1/payloads", "application/json", strings.NewReader(b.String()))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// storedLines counts payload lines in every object under dir.
func storedLines(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(path, ".gz") && !strings.HasSuffix(path, ".ndjson") {
			return fmt.Errorf("unexpected file %s", path)
		}
		data, err := testutil.ReadBlob(path)
		if err != nil {
			return err
		}
		n += bytes.Count(data, []byte("\n"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSIGTERMUnderLoad: clients post concurrently, SIGTERM arrives
// mid-load; the process exits 0 and the store holds exactly the payloads
// that were answered 202.
func TestSIGTERMUnderLoad(t *testing.T) {
	for _, mode := range []string{"enqueued", "durable"} {
		t.Run(mode, func(t *testing.T) {
			blobs := filepath.Join(t.TempDir(), "blobs")
			p := start(t, []string{"BLOB_URL=file://" + blobs, "ACK_MODE=" + mode, "MAX_WORKERS=4",
				"BATCH_MAX_WAIT=50ms", "BATCH_MAX_PAYLOADS=200", "MAX_QUEUE=20000", "INSTANCE=e2e"})
			client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			var acked, refused atomic.Int64
			var wg sync.WaitGroup
			for c := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						code, err := postCollection(client, p.Public, 25, fmt.Sprint(c, "-", i))
						if err != nil {
							return // the process stopped listening
						}
						switch code {
						case http.StatusAccepted:
							acked.Add(25)
						case http.StatusServiceUnavailable:
							refused.Add(1)
							time.Sleep(time.Millisecond)
						default:
							t.Errorf("status %d", code)
							return
						}
					}
				}()
			}
			deadline := time.Now().Add(time.Minute)
			for acked.Load() < 2000 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := wait(t, p); code != 0 {
				t.Fatalf("exit code %d\n%s", code, p.Stderr)
			}
			wg.Wait()
			if acked.Load() < 2000 {
				t.Fatalf("only %d payloads acked before the deadline", acked.Load())
			}
			if got := storedLines(t, blobs); int64(got) != acked.Load() {
				t.Fatalf("%d payload lines stored, %d acked (%d requests refused)\n%s", got, acked.Load(), refused.Load(), p.Stderr)
			}
			if !strings.Contains(p.Stderr.String(), "every acked payload is stored") {
				t.Errorf("no drain log line:\n%s", p.Stderr)
			}
			t.Logf("%s: %d payloads acked and stored, %d requests refused while draining", mode, acked.Load(), refused.Load())
		})
	}
}

func TestAdminAndPublicListeners(t *testing.T) {
	p := start(t, []string{"BLOB_URL=mem://"})
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(p.Admin + "/metrics"); code != 200 || !strings.Contains(body, "wardgate_queue_capacity") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("admin /metrics: %d", code)
	}
	if code, _ := get(p.Admin + "/debug/pprof/goroutine?debug=1"); code != 200 {
		t.Fatalf("admin pprof: %d", code)
	}
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		if code, _ := get(p.Public + path); code != 404 {
			t.Errorf("public %s answered %d, want 404", path, code)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _ := get(p.Public + path); code != 200 {
			t.Errorf("public %s answered %d", path, code)
		}
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := wait(t, p); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestConfigErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		args []string
		name string
	}{
		{[]string{"MAX_QUEUE=-3"}, nil, "MAX_QUEUE"},
		{[]string{"MAX_WORKERS=many"}, nil, "MAX_WORKERS"},
		{[]string{"MAX_LENGTH=1XB"}, nil, "MAX_LENGTH"},
		{[]string{"BATCH_MAX_WAIT=soon"}, nil, "BATCH_MAX_WAIT"},
		{[]string{"ACK_MODE=maybe"}, nil, "ACK_MODE"},
		{[]string{"COMPRESSION=zip"}, nil, "COMPRESSION"},
		{[]string{"BLOB_URL=ftp://x/y"}, nil, "BLOB_URL"},
		{[]string{"LISTEN=nonsense"}, nil, "LISTEN"},
		{[]string{"BLOB_PUT_TIMEOUT=0s"}, nil, "BLOB_PUT_TIMEOUT"},
		{[]string{"ACK_TIMEOUT=forever"}, nil, "ACK_TIMEOUT"},
		{[]string{"DRAIN_TIMEOUT=-1s"}, nil, "DRAIN_TIMEOUT"},
		{nil, []string{"--max-queue=0"}, "MAX_QUEUE"},
	} {
		cmd := exec.Command(binary, append([]string{"jobqueue"}, tc.args...)...)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), tc.env...)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), tc.name) {
			t.Errorf("%v %v: exit %d, output %q; want 2 and a line naming %s", tc.env, tc.args, code, out, tc.name)
		}
	}
}

// TestFlagOverridesEnv: a bad environment value is overridden by a good
// flag, so the process starts.
func TestFlagOverridesEnv(t *testing.T) {
	p := start(t, []string{"BLOB_URL=mem://", "ACK_MODE=bogus"}, "--ack-mode=durable")
	if code, err := postCollection(http.DefaultClient, p.Public, 3, "x"); err != nil || code != 202 {
		t.Fatalf("%d %v", code, err)
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	if code := wait(t, p); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var stdout bytes.Buffer
	cmd := exec.CommandContext(context.Background(), binary, "jobqueue", "--help")
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"LISTEN", "ADMIN_LISTEN", "MAX_WORKERS", "MAX_QUEUE", "MAX_LENGTH", "BLOB_URL",
		"BATCH_MAX_PAYLOADS", "BATCH_MAX_BYTES", "BATCH_MAX_WAIT", "ACK_MODE", "API_TOKENS", "COMPRESSION",
		"INSTANCE", "DRAIN_TIMEOUT", "SPILL_DIR", "BLOB_PUT_TIMEOUT", "ACK_TIMEOUT", "(default 25s)", "ADMIN_TOKEN", "file://./data/blobs", "127.0.0.1:9001"} {
		if !strings.Contains(stdout.String(), v) {
			t.Errorf("--help does not mention %s", v)
		}
	}
}

// TestStartRemovesStaleUnfinishedWrites: a job queue killed mid-PUT on a
// file:// store leaves KEY.<hex>.tmp beside the objects. The next process on
// that directory removes the stale ones in the background and says so;
// objects and a live writer's fresh temp file stay.
func TestStartRemovesStaleUnfinishedWrites(t *testing.T) {
	blobs := filepath.Join(t.TempDir(), "blobs")
	hour := filepath.Join(blobs, "payloads", "2026", "11", "25", "18")
	if err := os.MkdirAll(hour, 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(hour, "vm-1-3.ndjson.gz.18eb5c87cb2a5f2b.tmp")
	fresh := filepath.Join(hour, "vm-2-4.ndjson.gz.18eb5c87cb2a5f2c.tmp")
	object := filepath.Join(hour, "vm-1-2.ndjson.gz")
	for _, f := range []string{stale, fresh, object} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	for _, f := range []string{stale, object} {
		if err := os.Chtimes(f, old, old); err != nil {
			t.Fatal(err)
		}
	}
	p := start(t, []string{"BLOB_URL=file://" + blobs})
	testutil.Eventually(context.Background(), t, time.Minute, 20*time.Millisecond, "the removal logged", func() (bool, string) {
		for line := range strings.Lines(p.Stderr.String()) {
			if strings.Contains(line, "removed unfinished writes") && strings.Contains(line, `"files":1`) {
				return true, ""
			}
		}
		return false, p.Stderr.String()
	})
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file still there: %v", err)
	}
	for _, f := range []string{fresh, object} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
