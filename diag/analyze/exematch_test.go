package analyze

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/internal/testutil"
)

// A kernel core of the crasher, analyzed with another Go program, is
// refused with ErrExeMismatch in one line naming both files and both
// build IDs; with its own executable it passes the check.
func TestExeMismatchKernelCore(t *testing.T) {
	dir := crash(t, "panic")
	core, exe := filepath.Join(dir, bundle.CoreFile), filepath.Join(dir, bundle.ExeFile)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	other := testutil.BuildT(ctx, t, "target", "../watch/testdata/target")

	if warn, err := checkExeMatchesCore(core, exe); err != nil || warn != "" {
		t.Fatalf("own executable: err %v, warning %q", err, warn)
	}
	_, err := Run(ctx, Options{Core: core, Exe: other})
	if !errors.Is(err, ErrExeMismatch) {
		t.Fatalf("Run with another executable: %v, want ErrExeMismatch", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, core) || !strings.Contains(msg, other) || !strings.Contains(msg, "Go build ID") {
		t.Errorf("want one line naming %s, %s and the build IDs, got: %s", core, other, msg)
	}
}

// Without the executable's first page in the core (a core_filter without
// bit 4, or a tool that leaves it out), the check falls back to the
// segment layout in NT_FILE and still tells the two binaries apart.
func TestExeMismatchWithoutFirstPage(t *testing.T) {
	dir := crash(t, "panic")
	core, exe := filepath.Join(dir, bundle.CoreFile), filepath.Join(dir, bundle.ExeFile)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	other := testutil.BuildT(ctx, t, "target", "../watch/testdata/target")

	patched := filepath.Join(t.TempDir(), "core")
	data, err := os.ReadFile(core)
	if err != nil {
		t.Fatal(err)
	}
	ef, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	var base uint64
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Off == 0 {
			base = p.Vaddr
			break
		}
	}
	ef.Close()
	// Zero the file size of the core's segment at the executable's base:
	// the core then no longer holds that page.
	le := binary.LittleEndian
	phoff, phnum := le.Uint64(data[0x20:]), int(le.Uint16(data[0x38:]))
	dropped := false
	for i := range phnum {
		h := data[phoff+uint64(i)*56:]
		if elf.ProgType(le.Uint32(h)) == elf.PT_LOAD && le.Uint64(h[16:]) == base {
			le.PutUint64(h[32:], 0)
			dropped = true
		}
	}
	if !dropped {
		t.Fatalf("the core has no segment at the executable's base %#x", base)
	}
	if err := os.WriteFile(patched, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if warn, err := checkExeMatchesCore(patched, exe); err != nil || warn != "" {
		t.Fatalf("own executable, no first page: err %v, warning %q", err, warn)
	}
	_, err = checkExeMatchesCore(patched, other)
	if !errors.Is(err, ErrExeMismatch) || !strings.Contains(err.Error(), other) {
		t.Fatalf("other executable, no first page: %v, want ErrExeMismatch naming %s", err, other)
	}
}

// FuzzCoreLayout: the note parsers of the executable check read sizes and
// counts from the core; they must never panic nor allocate more than the
// input holds.
func FuzzCoreLayout(f *testing.F) {
	le := binary.LittleEndian
	var ntfile bytes.Buffer
	for _, v := range []uint64{2, 4096, 0x400000, 0x401000, 0, 0x401000, 0x402000, 1} {
		binary.Write(&ntfile, le, v)
	}
	ntfile.WriteString("/bin/a\x00/bin/a\x00")
	f.Add(ntfile.Bytes())
	f.Add([]byte{})
	huge := bytes.Clone(ntfile.Bytes())
	le.PutUint64(huge, 1<<62)
	f.Add(huge)
	f.Add([]byte("\x03\x00\x00\x00\x14\x00\x00\x00\x03\x00\x00\x00GNU\x00abcdefghijklmnopqrst"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if files := parseNTFile(data); len(files) > len(data)/24 {
			t.Fatalf("%d mappings from %d bytes", len(files), len(data))
		}
		parseBuildIDNotes(data)
		var lay coreLayout
		lay.parseNotes(data)
		page := make([]byte, 0, 4096)
		page = append(page, "\x7fELF\x02"...)
		page = append(page, data...)
		identityInPage(&elf.File{}, page)
	})
}
