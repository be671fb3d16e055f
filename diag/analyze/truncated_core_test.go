package analyze

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTruncatedCore cuts one real core (a GOTRACEBACK=crash deadlock) where
// a full disk or an interrupted copy would cut it, and analyzes each cut
// copy: every one must fail with a one-line error naming the file and
// saying it is empty or truncated, never panic, hang or yield a report
// built from missing memory.
func TestTruncatedCore(t *testing.T) {
	dir := crash(t, "deadlock")
	opts, err := OptionsFromBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(opts.Core)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(opts.Core)
	if err != nil {
		t.Fatal(err)
	}
	ef.Close()
	var notes, lastLoad *elf.Prog
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_NOTE:
			notes = p
		case elf.PT_LOAD:
			if p.Filesz > 0 && (lastLoad == nil || p.Off > lastLoad.Off) {
				lastLoad = p
			}
		}
	}
	if notes == nil || lastLoad == nil {
		t.Fatalf("core without notes or loaded segments: %+v", ef.Progs)
	}
	phoff := uint64(64) // the kernel puts the program headers right after the ELF header
	size := uint64(len(data))
	t.Logf("core: %d bytes, %d program headers, notes at %d (+%d), last PT_LOAD at %d (+%d)",
		size, len(ef.Progs), notes.Off, notes.Filesz, lastLoad.Off, lastLoad.Filesz)
	cuts := []struct {
		name string
		at   uint64
		want string
	}{
		{"empty", 0, "is empty"},
		{"inside the ELF magic", 2, "is truncated"},
		{"inside the ELF header", 40, "is truncated"},
		{"inside the program headers", phoff + 56*uint64(len(ef.Progs))/2 + 3, "is truncated"},
		{"inside the notes", notes.Off + notes.Filesz/2, "is truncated"},
		{"half the file", size / 2, "is truncated"},
		{"inside the last segment", lastLoad.Off + lastLoad.Filesz/2, "is truncated"},
		{"all but the last page", size - 4096, "is truncated"},
		{"all but the last byte", size - 1, "is truncated"},
	}
	for _, c := range cuts {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if c.at >= size {
				t.Fatalf("cut at %d is past the %d-byte core", c.at, size)
			}
			cut := filepath.Join(t.TempDir(), "core")
			if err := os.WriteFile(cut, data[:c.at], 0o600); err != nil {
				t.Fatal(err)
			}
			o := opts
			o.Core = cut
			err := runGuarded(t, o)
			if err == nil {
				t.Fatalf("cut at byte %d of %d: analysis succeeded", c.at, size)
			}
			msg := err.Error()
			t.Logf("cut at %d: %s", c.at, msg)
			if !strings.Contains(msg, cut) || !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Errorf("cut at byte %d of %d: error %q; want one line naming %s that says %q", c.at, size, msg, cut, c.want)
			}
		})
	}
}

// runGuarded runs the analysis in its own goroutine, turning a panic into
// a test failure with its value and a hang into one after a generous
// deadline (a hang guard, not a timing assertion).
func runGuarded(t *testing.T, o Options) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("PANIC: %v", v)
			}
		}()
		_, err := Run(ctx, o)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && strings.HasPrefix(err.Error(), "PANIC: ") {
			t.Fatalf("analysis of %s panicked: %v", o.Core, err)
		}
		return err
	case <-time.After(6 * time.Minute):
		t.Fatalf("analysis of %s still running after 6 minutes", o.Core)
		return nil
	}
}
