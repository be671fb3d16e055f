package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oneLine fails t unless s is exactly one line holding every one of want.
func oneLine(t *testing.T, what, s string, want ...string) {
	t.Helper()
	if strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
		t.Errorf("%s: want one line, got %q", what, s)
	}
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s: %q lacks %q", what, s, w)
		}
	}
}

// TestDiagProfileTypeRequired: without --type, diag profile says the flag
// is required and lists the types, before contacting anything.
func TestDiagProfileTypeRequired(t *testing.T) {
	stdout, stderr, code := runWardgate(t, t.TempDir(), "diag", "profile", "--target", "http://127.0.0.1:1")
	if code != 2 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 2 and nothing", code, stdout)
	}
	oneLine(t, "diag profile without --type", stderr, "--type is required", "cpu, heap, allocs, goroutine, mutex or block")
}

// TestDiagGoroutinesLabelMatchingNothing: a --label no goroutine carries
// is a failure a script can test (like grep), said on stderr, with nothing
// on stdout, in text and JSON mode alike.
func TestDiagGoroutinesLabelMatchingNothing(t *testing.T) {
	target := diagAdmin(t)
	for _, extra := range [][]string{nil, {"--json"}} {
		args := append([]string{"diag", "goroutines", "--target", target, "--label", "trace_id=no-such-trace"}, extra...)
		stdout, stderr, code := runWardgate(t, t.TempDir(), args...)
		if code != 1 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q; want exit 1 and nothing on stdout", args, code, stdout)
		}
		oneLine(t, strings.Join(args, " "), stderr, "no goroutine has label(s) trace_id=no-such-trace")
	}
	// The same target without the filter lists goroutines: exit 0.
	if stdout, stderr, code := runWardgate(t, t.TempDir(), "diag", "goroutines", "--target", target); code != 0 || stdout == "" {
		t.Errorf("unfiltered: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// holdPort listens on a loopback port for the test's duration, as another
// program would, and returns its address.
func holdPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// TestPortInUseIsOneLine: every command that listens says in one line which
// address is taken and which flag (or setting) picks another, and creates
// nothing on disk before it fails.
func TestPortInUseIsOneLine(t *testing.T) {
	taken := holdPort(t)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"up", "--listen", taken}, []string{"wardgate up: --listen " + taken + ": address already in use", "choose another address with --listen"}},
		{[]string{"up", "--listen", "127.0.0.1:0", "--admin", taken}, []string{"wardgate up: --admin " + taken + ": address already in use", "with --admin"}},
		{[]string{"jobqueue", "--listen", taken}, []string{"wardgate jobqueue: --listen / LISTEN " + taken + ": address already in use"}},
		{[]string{"jobqueue", "--listen", "127.0.0.1:0", "--admin-listen", taken}, []string{"--admin-listen / ADMIN_LISTEN " + taken + ": address already in use"}},
		{[]string{"gateway", "--config", "gw.yaml", "--listen", taken}, []string{"wardgate gateway: --listen (or listen: in gw.yaml) " + taken + ": address already in use"}},
		{[]string{"gateway", "--config", "gw.yaml", "--admin", taken}, []string{"--admin (or admin: in gw.yaml) " + taken + ": address already in use"}},
	} {
		dir := t.TempDir()
		cfg := "listen: 127.0.0.1:0\nadmin: 127.0.0.1:0\nroutes:\n  - {path_prefix: /, upstream: u}\nupstreams:\n  u:\n    targets: [{url: \"http://127.0.0.1:1\"}]\n"
		if err := os.WriteFile(filepath.Join(dir, "gw.yaml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		args := c.args
		if args[0] == "up" {
			args = append(args, "--data", "data")
		}
		stdout, stderr, code := runWardgate(t, dir, args...)
		name := strings.Join(args, " ")
		if code != 1 {
			t.Errorf("%s: exit %d, want 1 (stdout %q)", name, code, stdout)
		}
		oneLine(t, name, stderr, c.want...)
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("%s: created %v before failing, want nothing but gw.yaml", name, names)
		}
	}
}
