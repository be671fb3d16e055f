package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wardgate/wardgate/diag/triage"
)

// TestDiagTriageCLI: a healthy job queue is "No findings" and exit 0; the
// same binary with its store down and its queue filling is a stuck-queue
// finding and exit 1; an unreachable target or bad flags exit 2. The
// bundle is private (0700, files 0600).
func TestDiagTriageCLI(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		jq := analyzeStartJobqueue(t, "BLOB_URL=mem://", "BATCH_MAX_WAIT=10ms")
		if code := analyzePost(t, jq.Public, 50, "healthy"); code != http.StatusAccepted {
			t.Fatalf("post: %d", code)
		}
		// The bundle also goes to the bucket of WARDGATE_UPLOAD.
		bucket, _ := fakeBucket(t, "bundles")
		t.Setenv("WARDGATE_UPLOAD", bucket)
		out := filepath.Join(t.TempDir(), "bundle")
		stdout, stderr, code := analyzeRun(t, "diag", "triage", "--pid", strconv.Itoa(jq.Cmd.Process.Pid), "--interval", "1s", "--out", out)
		if code != 0 || !strings.Contains(stdout, "\nFindings\nNo findings: nothing suspicious") {
			t.Fatalf("exit %d, want 0 and no findings:\n%s\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "triage:") {
			t.Errorf("no progress on stderr: %q", stderr)
		}
		fi, err := os.Stat(out)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("bundle dir: %v %v", fi, err)
		}
		for _, name := range []string{"report.txt", "report.json", "goroutines-2.txt", "goroutine-1.pb.gz", "heap-1.pb.gz", "heap-2.pb.gz", "cpu.pb.gz", "metrics-2.txt"} {
			fi, err := os.Stat(filepath.Join(out, name))
			if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
				t.Errorf("%s: %v %v", name, fi, err)
			}
		}
		host, _ := os.Hostname()
		key := host + "/bundle.tar.gz"
		if !strings.Contains(stderr, "key "+key) {
			t.Fatalf("stderr does not name the uploaded key %s:\n%s", key, stderr)
		}
		report, _ := os.ReadFile(filepath.Join(out, "report.txt"))
		if got := readTarGz(t, bucket, key)["bundle/report.txt"]; len(report) == 0 || string(got) != string(report) {
			t.Errorf("uploaded report.txt (%d bytes) differs from the one on disk (%d)", len(got), len(report))
		}
	})

	t.Run("stuck queue", func(t *testing.T) {
		jq := analyzeStartJobqueue(t,
			"BLOB_URL=s3://wardgate-test?endpoint=http://"+analyzeClosedPort(t)+"&region=us-east-1&use_path_style=true",
			"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test",
			"MAX_WORKERS=2", "MAX_QUEUE=400", "BATCH_MAX_WAIT=10ms")
		for i := 0; i < 3; i++ {
			if code := analyzePost(t, jq.Public, 100, "stuck"); code != http.StatusAccepted {
				t.Fatalf("post: %d", code)
			}
		}
		stdout, stderr, code := analyzeRun(t, "diag", "triage", "--target", jq.Admin, "--interval", "1s", "--json", "--out", filepath.Join(t.TempDir(), "b"))
		if code != 1 {
			t.Fatalf("exit %d, want 1:\n%s\n%s", code, stdout, stderr)
		}
		var rep triage.Report
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatal(err)
		}
		f := rep.Findings[0]
		if f.Kind != "stuck-queue" || !strings.HasPrefix(f.Function, "github.com/wardgate/wardgate/jobqueue") || f.Numbers["depth"] != 300 || f.Numbers["capacity"] != 400 {
			t.Fatalf("first finding %+v, want stuck-queue at depth 300 of 400 in the job queue's code", f)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--target", "http://" + analyzeClosedPort(t)}, "unreachable"},
			{nil, "give the process"},
			{[]string{"--pid", "1", "--pid-file", "x"}, "exclusive"},
			{[]string{"--pid-file", filepath.Join(t.TempDir(), "nope")}, "pid file"},
			{[]string{"--target", "http://127.0.0.1:1", "--interval", "10ms"}, "at least 1s"},
		} {
			_, stderr, code := analyzeRun(t, append([]string{"diag", "triage"}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
			}
		}
	})
}
