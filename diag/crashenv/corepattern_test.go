package crashenv

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCorePatternGlob(t *testing.T) {
	for _, tc := range []struct {
		cp   CorePattern
		want string
	}{
		{CorePattern{Pattern: "core"}, "/w/core"},
		{CorePattern{Pattern: "core", UsesPID: true}, "/w/core.42"},
		{CorePattern{Pattern: "core.%e.%p.%t"}, "/w/core.child.42.*"},
		{CorePattern{Pattern: "/var/crash/%e-%%-%s"}, "/var/crash/child-%-*"},
		{CorePattern{Pattern: "|/usr/lib/systemd/systemd-coredump %P"}, ""},
	} {
		if got := tc.cp.Glob("/w", 42, "child"); got != tc.want {
			t.Errorf("%+v: glob %q, want %q", tc.cp, got, tc.want)
		}
	}
}

// FindCore picks the core the pattern names for this pid and ignores a
// core older than the process (left by an earlier run) and an empty one.
func TestFindCore(t *testing.T) {
	dir := t.TempDir()
	cp := CorePattern{Pattern: "core.%e.%p"}
	started := time.Now()
	stale := filepath.Join(dir, "core")
	if err := os.WriteFile(stale, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := started.Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "core.7"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := cp.FindCore(dir, 7, "jobqueue", started); got != "" {
		t.Fatalf("FindCore = %q with only a stale and an empty core", got)
	}
	want := filepath.Join(dir, "core.jobqueue.7")
	if err := os.WriteFile(want, []byte("ELF"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := cp.FindCore(dir, 7, "jobqueue", started); got != want {
		t.Fatalf("FindCore = %q, want %q", got, want)
	}
}

func TestReadCorePattern(t *testing.T) {
	procSys := writeProcSys(t, map[string]string{"kernel/core_pattern": "/var/crash/core.%e", "kernel/core_uses_pid": "1"})
	cp, err := ReadCorePattern(procSys)
	if err != nil || cp != (CorePattern{Pattern: "/var/crash/core.%e", UsesPID: true}) {
		t.Fatalf("ReadCorePattern = %+v, %v", cp, err)
	}
	if _, err := ReadCorePattern(t.TempDir()); err == nil || !strings.Contains(err.Error(), "core_pattern") {
		t.Fatalf("missing core_pattern: err %v", err)
	}
}

// ChildEnv adds the crash settings after the caller's environment, keeps
// the user's GODEBUG settings (after tracebacklabels, so theirs win) and
// leaves the caller's slice alone.
func TestChildEnv(t *testing.T) {
	env := []string{"PATH=/bin", "GODEBUG=gctrace=1"}
	got := ChildEnv(env, "/d/crash.txt")
	for _, kv := range []string{"PATH=/bin", "GOTRACEBACK=crash", "GODEBUG=tracebacklabels=1,gctrace=1", OutputEnv + "=/d/crash.txt"} {
		if !slices.Contains(got, kv) {
			t.Errorf("ChildEnv = %q: no %s", got, kv)
		}
	}
	if len(env) != 2 || env[1] != "GODEBUG=gctrace=1" {
		t.Errorf("caller's env changed: %q", env)
	}
}
