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
