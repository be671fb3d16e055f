package crashenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func checkNamed(t *testing.T, checks []Check, name string) Check {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, checks)
	return Check{}
}

// writeProcSys writes kernel settings (path under /proc/sys -> value) into
// a fresh directory standing in for /proc/sys, so the checks can be run
// against any machine's settings without changing this one's.
func writeProcSys(t *testing.T, settings map[string]string) string {
	t.Helper()
	procSys := t.TempDir()
	for path, v := range settings {
		p := filepath.Join(procSys, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return procSys
}

// The setup the checks ask for (core_pattern=core, GOTRACEBACK=crash, the
// soft core limit raised to the hard one) passes the core_pattern and
// GOTRACEBACK checks, and RLIMIT_CORE reports this process's real limit.
func TestCrashSetupGoodSetup(t *testing.T) {
	lim, err := RaiseCoreLimit()
	if err != nil {
		t.Fatal(err)
	}
	env := SetupFromSystem(t.TempDir())
	env.ProcSys = writeProcSys(t, map[string]string{"kernel/core_pattern": "core", "kernel/core_uses_pid": "0", "kernel/yama/ptrace_scope": "0"})
	env.GOTRACEBACK = "crash"
	env.MinFreeBytes = 1 << 20
	checks := CheckCrashSetup(env)
	for _, c := range checks {
		t.Logf("%v %s %s: %s (fix: %s)", c.OK, c.Name, c.Value, c.Detail, c.Fix)
	}
	for _, name := range []string{"core_pattern", "core_uses_pid", "GOTRACEBACK", "ptrace_scope", "free space"} {
		if c := checkNamed(t, checks, name); !c.OK {
			t.Errorf("%s: not OK for the recommended setup: %+v", name, c)
		}
	}
	if c := checkNamed(t, checks, "core_pattern"); c.Value != "core" || !strings.Contains(c.Detail, "working directory") {
		t.Errorf("core_pattern: %+v", c)
	}
	rc := checkNamed(t, checks, "RLIMIT_CORE")
	if want := "soft " + rlim(lim.Cur) + ", hard " + rlim(lim.Max); rc.Value != want {
		t.Errorf("RLIMIT_CORE value %q, want %q", rc.Value, want)
	}
	if rc.OK != (lim.Cur == RlimInfinity) {
		t.Errorf("RLIMIT_CORE OK=%v with soft limit %s", rc.OK, rlim(lim.Cur))
	}

	env.GOTRACEBACK = ""
	c := checkNamed(t, CheckCrashSetup(env), "GOTRACEBACK")
	if c.OK || c.Fix != "export GOTRACEBACK=crash" {
		t.Errorf("unset GOTRACEBACK: %+v", c)
	}
}

func TestCrashSetupPipedCores(t *testing.T) {
	procSys := writeProcSys(t, map[string]string{
		"kernel/core_pattern":      "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h",
		"kernel/core_uses_pid":     "1",
		"kernel/yama/ptrace_scope": "3",
	})
	checks := CheckCrashSetup(SetupEnv{ProcSys: procSys, Dir: t.TempDir(), GOTRACEBACK: "crash", MinFreeBytes: 1 << 62})
	cp := checkNamed(t, checks, "core_pattern")
	if cp.OK || cp.Fix != "sysctl -w kernel.core_pattern=core" || !strings.Contains(cp.Detail, "coredumpctl") {
		t.Errorf("piped core_pattern: %+v", cp)
	}
	if ps := checkNamed(t, checks, "ptrace_scope"); ps.OK || !strings.Contains(ps.Fix, "ptrace_scope=0") {
		t.Errorf("ptrace_scope 3: %+v", ps)
	}
	if fs := checkNamed(t, checks, "free space"); fs.OK || fs.Fix == "" {
		t.Errorf("free space below an impossible minimum: %+v", fs)
	}
}
