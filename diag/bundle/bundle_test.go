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
