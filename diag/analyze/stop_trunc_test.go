package analyze

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCoreNotesTruncatedHeaders(t *testing.T) {
	exe, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cut := filepath.Join(dir, "cut")
	if err := os.WriteFile(cut, exe[:80], 0o600); err != nil { // ELF header, then only 16 bytes of program headers
		t.Fatal(err)
	}
	if _, err := readCoreNotes(cut); err == nil || !strings.Contains(err.Error(), "is truncated") {
		t.Errorf("cut inside the headers: %v, want an error saying it is truncated", err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a core ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readCoreNotes(junk); err == nil || !strings.Contains(err.Error(), "not an ELF core file") {
		t.Errorf("junk: %v, want an error saying it is not an ELF core", err)
	}
}
