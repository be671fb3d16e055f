package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDiagCrashSetupCLI runs the checks on this machine: the exit status
// says whether every check passed, --json says the same, and the
// GOTRACEBACK check follows the environment it runs in.
func TestDiagCrashSetupCLI(t *testing.T) {
	run := func(gotraceback string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(wardgateBin, append([]string{"diag", "crash-setup", "--dir", t.TempDir()}, args...)...)
		cmd.Env = append(os.Environ(), "GOTRACEBACK="+gotraceback)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if e.Len() > 0 && code != 2 {
			t.Errorf("stderr: %s", e.String())
		}
		return o.String(), code
	}
	type report struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
			Fix  string `json:"fix"`
		} `json:"checks"`
	}
	for _, tb := range []string{"crash", "none"} {
		text, code := run(tb)
		if warns := strings.Count(text, "WARN "); (warns == 0) != (code == 0) || (code != 0 && code != 1) {
			t.Errorf("GOTRACEBACK=%s: exit %d with %d WARN lines:\n%s", tb, code, warns, text)
		}
		out, jcode := run(tb, "--json")
		var r report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("--json: %v\n%s", err, out)
		}
		if jcode != code || r.OK != (code == 0) {
			t.Errorf("GOTRACEBACK=%s: --json ok=%v exit %d, text exit %d", tb, r.OK, jcode, code)
		}
		all, names := true, map[string]bool{}
		for _, c := range r.Checks {
			all = all && c.OK
			names[c.Name] = c.OK
			if !c.OK && c.Fix == "" {
				t.Errorf("check %s fails without saying what to change", c.Name)
			}
		}
		if all != r.OK {
			t.Errorf("ok=%v but checks all OK=%v", r.OK, all)
		}
		for _, n := range []string{"core_pattern", "RLIMIT_CORE", "GOTRACEBACK", "ptrace_scope", "free space"} {
			if _, ok := names[n]; !ok {
				t.Errorf("no %s check in %+v", n, r.Checks)
			}
		}
		if names["GOTRACEBACK"] != (tb == "crash") {
			t.Errorf("GOTRACEBACK=%s judged OK=%v", tb, names["GOTRACEBACK"])
		}
		if tb == "none" && code != 1 {
			t.Errorf("GOTRACEBACK=none: exit %d, want 1 (no core on a fatal error)", code)
		}
	}
	if stdout, _ := run("crash", "--help"); !strings.Contains(stdout, "Usage:") {
		t.Errorf("--help:\n%s", stdout)
	}
	if _, code := run("crash", "extra"); code != 2 {
		t.Errorf("unexpected argument: exit %d, want 2", code)
	}
}
