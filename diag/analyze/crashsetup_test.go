package analyze

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

// On this machine TestMain set core_pattern=core and raised RLIMIT_CORE,
// which is exactly the setup the checks ask for.
func TestCrashSetupThisMachine(t *testing.T) {
	env := CrashSetupFromSystem(t.TempDir())
	env.GOTRACEBACK = "crash"
	env.MinFreeBytes = 1 << 20
	checks := CheckCrashSetup(env)
	for _, c := range checks {
		t.Logf("%v %s %s: %s (fix: %s)", c.OK, c.Name, c.Value, c.Detail, c.Fix)
		if !c.OK {
			t.Errorf("%s: not OK after TestMain's setup: %+v", c.Name, c)
		}
	}
	if c := checkNamed(t, checks, "core_pattern"); c.Value != "core" {
		t.Errorf("core_pattern value %q", c.Value)
	}
	if c := checkNamed(t, checks, "RLIMIT_CORE"); !strings.Contains(c.Value, "soft unlimited") {
		t.Errorf("RLIMIT_CORE value %q", c.Value)
	}

	env.GOTRACEBACK = ""
	c := checkNamed(t, CheckCrashSetup(env), "GOTRACEBACK")
	if c.OK || c.Fix != "export GOTRACEBACK=crash" {
		t.Errorf("unset GOTRACEBACK: %+v", c)
	}
}

func TestCrashSetupPipedCores(t *testing.T) {
	procSys := t.TempDir()
	for path, v := range map[string]string{
		"kernel/core_pattern":      "|/lib/systemd/systemd-coredump %P %u %g %s %t 9223372036854775808 %h",
		"kernel/core_uses_pid":     "1",
		"kernel/yama/ptrace_scope": "3",
	} {
		p := filepath.Join(procSys, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	checks := CheckCrashSetup(CrashSetupEnv{ProcSys: procSys, Dir: t.TempDir(), GOTRACEBACK: "crash", MinFreeBytes: 1 << 62})
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
