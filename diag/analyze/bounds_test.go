package analyze

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Source paths come from the executable's DWARF: a device, a FIFO or a
// huge file must not be read (or block) while quoting source lines.
func TestSourceLinesBounded(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.go")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxSourceFile + 1); err != nil { // sparse
		t.Fatal(err)
	}
	f.Close()
	long := filepath.Join(dir, "long.go")
	if err := os.WriteFile(long, []byte("package x\n"+strings.Repeat("x", 10000)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newSourceCache()
	for _, p := range []string{"/dev/zero", fifo, big} {
		if got := c.line(p, 1); got != "" {
			t.Errorf("line 1 of %s = %.40q, want nothing", p, got)
		}
	}
	if got := c.line(long, 2); len(got) > maxSourceLine+3 || !strings.HasPrefix(got, "xxx") {
		t.Errorf("a 10000-character line came back as %d characters", len(got))
	}
	if got := c.line(long, 1); got != "package x" {
		t.Errorf("line 1 = %q", got)
	}
}
