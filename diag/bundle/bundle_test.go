package bundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadRejectsNonBundle(t *testing.T) {
	_, err := Read(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not a capture bundle") {
		t.Fatalf("err = %v, want 'not a capture bundle'", err)
	}
}

func TestWriteMetaRead(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{CoreFile, ExeFile} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), FileMode); err != nil {
			t.Fatal(err)
		}
	}
	want := Meta{PID: 42, Cmdline: []string{"/bin/x", "-v"}, Method: "native", PauseMS: 1.5, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := WriteMeta(dir, &want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, MetaFile))
	if err != nil || st.Mode().Perm() != FileMode {
		t.Fatalf("bundle.json: %v mode %v", err, st.Mode().Perm())
	}
	b, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Meta.PID != 42 || b.Meta.Cmdline[1] != "-v" || b.Meta.PauseMS != 1.5 || !b.Meta.Time.Equal(want.Time) || b.Core != filepath.Join(dir, CoreFile) {
		t.Errorf("read back %+v", b)
	}
}

// The supervisor's post-mortem metadata goes to bundle.json, or to
// supervisor.json beside a watchdog capture's bundle.json, which it must
// not overwrite; Locate then finds the core, exe and crash output.
func TestWritePostmortemLocate(t *testing.T) {
	dir := t.TempDir()
	p := Postmortem{Service: "jobqueue-1", PID: 7, Method: MethodCrash, CrashReason: "panic: boom"}
	path, err := WritePostmortem(dir, &p)
	if err != nil || path != filepath.Join(dir, "bundle.json") {
		t.Fatalf("WritePostmortem = %q, %v; want bundle.json", path, err)
	}
	capture := []byte(`{"method":"native"}`)
	if err := os.WriteFile(path, capture, FileMode); err != nil {
		t.Fatal(err)
	}
	p.Method = MethodWatchdog
	path, err = WritePostmortem(dir, &p)
	if err != nil || path != filepath.Join(dir, "supervisor.json") {
		t.Fatalf("WritePostmortem = %q, %v; want supervisor.json", path, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bundle.json")); string(b) != string(capture) {
		t.Errorf("bundle.json overwritten: %s", b)
	}
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"method": "watchdog"`) || !strings.Contains(string(b), `"crash_reason": "panic: boom"`) {
		t.Errorf("supervisor.json = %s", b)
	}

	if _, err := Locate(dir); err == nil {
		t.Fatal("Locate of a bundle without core: no error")
	}
	for _, f := range []string{"core", "exe", "crash.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), FileMode); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Locate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Core != filepath.Join(dir, "core") || f.Exe != filepath.Join(dir, "exe") || f.CrashOutput != filepath.Join(dir, "crash.txt") {
		t.Errorf("Locate = %+v", f)
	}
}

// A capture whose executable could not be copied names where the process
// ran from in bundle.json's exe; Locate falls back to it.
func TestLocateExeFromMeta(t *testing.T) {
	dir, elsewhere := t.TempDir(), filepath.Join(t.TempDir(), "server")
	if err := os.WriteFile(elsewhere, []byte("x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CoreFile), []byte("x"), FileMode); err != nil {
		t.Fatal(err)
	}
	if err := WriteMeta(dir, &Meta{PID: 1, Exe: elsewhere}); err != nil {
		t.Fatal(err)
	}
	f, err := Locate(dir)
	if err != nil || f.Exe != elsewhere || f.CrashOutput != "" {
		t.Fatalf("Locate = %+v, %v; want exe %s and no crash output", f, err, elsewhere)
	}
}
