package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiagWatchOnceCLI(t *testing.T) {
	target := diagAdmin(t)
	out := t.TempDir()
	// This process has more than one goroutine: --goroutines 1 triggers.
	stdout, stderr, code := runWardgate(t, out, "diag", "watch", "--target", target, "--goroutines", "1", "--once", "--out", out)
	if code != exitTriggered {
		t.Fatalf("exit %d, want %d: %s", code, exitTriggered, stderr)
	}
	if !strings.Contains(stderr, `"msg":"watch trigger"`) {
		t.Fatalf("no trigger log line: %s", stderr)
	}
	first, _, _ := strings.Cut(stdout, "\n")
	dir := strings.TrimSpace(first[strings.LastIndex(first, ": ")+2:])
	for _, f := range []string{"trigger.json", "goroutine.pb.gz", "findings.txt"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("bundle %s: %v (stdout %q)", dir, err, stdout)
		}
	}
	stdout, stderr, code = runWardgate(t, out, "diag", "watch", "--target", target, "--goroutines", "1000000", "--once", "--out", t.TempDir())
	if code != 0 || !strings.Contains(stdout, "no threshold crossed") {
		t.Fatalf("below threshold: exit %d: %s%s", code, stdout, stderr)
	}
}

// TestDiagWatchUploadsBundle: with --upload the bundle a trigger writes
// also lands in the bucket (key and findings printed); a bucket that
// cannot take it leaves the bundle on disk and exit code 4.
func TestDiagWatchUploadsBundle(t *testing.T) {
	bucket, _ := fakeBucket(t, "bundles")
	target := diagAdmin(t)
	out := t.TempDir()
	stdout, stderr, code := runWardgate(t, out, "diag", "watch", "--target", target, "--goroutines", "1", "--once", "--out", out, "--upload", bucket)
	if code != exitTriggered {
		t.Fatalf("exit %d, want %d: %s", code, exitTriggered, stderr)
	}
	first, _, _ := strings.Cut(stdout, "\n")
	dir := strings.TrimSpace(first[strings.LastIndex(first, ": ")+2:])
	host, _ := os.Hostname()
	key := host + "/" + filepath.Base(dir) + ".tar.gz"
	if !strings.Contains(stderr, "uploaded "+dir) || !strings.Contains(stderr, "key "+key) {
		t.Fatalf("no upload line naming %s and key %s:\n%s", dir, key, stderr)
	}
	files := readTarGz(t, bucket, key)
	want, _ := os.ReadFile(filepath.Join(dir, "findings.txt"))
	if got := files[filepath.Base(dir)+"/findings.txt"]; len(want) == 0 || string(got) != string(want) {
		t.Errorf("uploaded findings.txt %q, on disk %q", got, want)
	}

	missing := strings.Replace(bucket, "s3://bundles", "s3://no-such-bucket", 1)
	out2 := t.TempDir()
	_, stderr, code = runWardgate(t, out2, "diag", "watch", "--target", target, "--goroutines", "1", "--once", "--out", out2, "--upload", missing)
	if code != exitUploadFailed || !strings.Contains(stderr, "upload failed; the bundle stays in "+out2) {
		t.Fatalf("failed upload: exit %d, want %d:\n%s", code, exitUploadFailed, stderr)
	}
	if _, stderr, code = runWardgate(t, out2, "diag", "watch", "--target", target, "--goroutines", "1", "--once", "--upload", "ftp://x"); code != 2 {
		t.Fatalf("--upload ftp://x: exit %d, want 2: %s", code, stderr)
	}
}
