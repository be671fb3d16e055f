package capture

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// selfMaps returns the lines of this process's /proc/self/maps: real
// lines with file paths, [heap], [stack], [vdso], [vvar] and anonymous
// mappings.
func selfMaps(tb testing.TB) []string {
	tb.Helper()
	data, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestParseMapsLineSelf: every real line parses, and the path is exactly
// what the kernel printed after the inode: "[vdso]" must be "[vdso]" (the
// capturer copies it whole and finds its syscall instruction there), a
// file path must name the file.
func TestParseMapsLineSelf(t *testing.T) {
	seen := map[string]bool{}
	for _, line := range selfMaps(t) {
		m, err := parseMapsLine(line)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(m.path, "["):
			seen[m.path] = true
			if !strings.HasSuffix(line, " "+m.path) {
				t.Errorf("line %q: path %q", line, m.path)
			}
		case m.path != "":
			if _, err := os.Stat(strings.TrimSuffix(m.path, " (deleted)")); err != nil && !strings.HasSuffix(m.path, " (deleted)") {
				t.Errorf("line %q: path %q: %v", line, m.path, err)
			}
			if m.inode == 0 || !m.fileBacked() {
				t.Errorf("line %q: file mapping with inode %d, fileBacked %v", line, m.inode, m.fileBacked())
			}
		}
	}
	for _, p := range []string{"[heap]", "[stack]", "[vdso]"} {
		if !seen[p] && p != "[heap]" { // a Go test binary may have no brk heap
			t.Errorf("no %s mapping found in /proc/self/maps", p)
		}
	}
	// Addresses that contain the inode's digits: the path was once
	// searched for from the start of the line.
	for line, want := range map[string]string{
		"7f0000001000-7f0000002000 r-xp 00000000 00:00 0                          [vdso]":       "[vdso]",
		"00400000-00452000 r-xp 00001000 08:02 1                                  /usr/bin/1 x": "/usr/bin/1 x",
		"7ffd12340000-7ffd12361000 rw-p 00000000 00:00 0":                                       "",
	} {
		m, err := parseMapsLine(line)
		if err != nil || m.path != want {
			t.Errorf("line %q: path %q, %v; want %q", line, m.path, err, want)
		}
	}
}

// FuzzParseMapsLine: a line the parser accepts has a sane range and
// permissions, and printing the mapping the kernel's way and parsing that
// gives the same mapping (the path is everything after the inode).
func FuzzParseMapsLine(f *testing.F) {
	for _, l := range selfMaps(f) {
		f.Add(l)
	}
	f.Add("7f0000001000-7f0000002000 r-xp 00000000 00:00 0                          [vdso]")
	f.Add("00400000-00452000 r-xp 00001000 08:02 173521                     /usr/bin/my server (deleted)")
	f.Add("7f5e1c000000-7f5e1c021000 rw-s 00000000 00:01 1234                 /SYSV00000000 (deleted)")
	f.Add("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]")
	f.Fuzz(func(t *testing.T, line string) {
		if strings.Contains(line, "\n") {
			// Not a line: parseMaps splits the file on "\n", and the
			// kernel escapes a newline in a path as "\012".
			return
		}
		m, err := parseMapsLine(line)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q spans lines", err)
			}
			return
		}
		if m.start > m.end {
			t.Fatalf("line %q: start %#x > end %#x", line, m.start, m.end)
		}
		if len(m.perms) != 4 || !strings.ContainsRune("r-", rune(m.perms[0])) || !strings.ContainsRune("w-", rune(m.perms[1])) ||
			!strings.ContainsRune("x-", rune(m.perms[2])) || !strings.ContainsRune("ps", rune(m.perms[3])) {
			t.Fatalf("line %q: perms %q", line, m.perms)
		}
		if m.path != strings.TrimSpace(m.path) {
			t.Fatalf("line %q: path %q", line, m.path)
		}
		if m.path != "" && !strings.HasSuffix(strings.TrimRightFunc(line, unicode.IsSpace), m.path) {
			t.Fatalf("line %q: path %q is not its end", line, m.path)
		}
		dev := strings.Fields(line)[3]
		again := fmt.Sprintf("%08x-%08x %s %08x %s %d", m.start, m.end, m.perms, m.offset, dev, m.inode)
		if m.path != "" {
			again += strings.Repeat(" ", 10) + m.path
		}
		m2, err := parseMapsLine(again)
		if err != nil || m2 != m {
			t.Fatalf("line %q parsed to %+v; printed again as %q it parses to %+v, %v", line, m, again, m2, err)
		}
		if _, err := strconv.ParseUint(strings.Fields(line)[4], 10, 64); err != nil {
			t.Fatalf("line %q: inode field accepted but not a number", line)
		}
	})
}
