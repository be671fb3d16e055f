package analyze

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// crashOutputSeeds are the texts real crasher runs printed
// (testdata/crashoutput: GOTRACEBACK=single and =crash panics, the
// deadlock fatal error, SIGQUIT of the leak mode), keyed by file name.
func crashOutputSeeds(tb testing.TB) map[string]string {
	tb.Helper()
	files, err := filepath.Glob("testdata/crashoutput/*.txt")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no crash output seeds in testdata/crashoutput: %v", err)
	}
	seeds := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		seeds[filepath.Base(f)] = string(b)
	}
	return seeds
}

// normalizeLines drops the "\r" of "\r\n" line ends, as parseCrashOutput does.
func normalizeLines(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return strings.Join(lines, "\n")
}

var runningGoroutine = regexp.MustCompile(`(?m)^goroutine (\d+) [^\n]*\[running`)

// checkCrashOutput asserts what a reader of the report relies on: the
// fatal header is lines of the input, starting with a runtime header, and
// the goroutine is one the input reports as running after that header.
func checkCrashOutput(t *testing.T, text, fatal string, g int64) {
	t.Helper()
	if fatal == "" {
		if g != 0 {
			t.Fatalf("no fatal header but goroutine %d", g)
		}
		return
	}
	lines := strings.Split(fatal, "\n")
	if !fatalHeader.MatchString(lines[0]) {
		t.Fatalf("fatal %q does not start with a runtime crash header", fatal)
	}
	for _, l := range lines {
		if l == "" || strings.HasPrefix(l, "goroutine ") {
			t.Fatalf("fatal %q has an empty or goroutine line", fatal)
		}
	}
	norm := "\n" + normalizeLines(text) + "\n"
	pos := strings.LastIndex(norm, "\n"+fatal+"\n")
	if pos < 0 {
		t.Fatalf("fatal %q is not whole lines of the input", fatal)
	}
	if g != 0 {
		found := false
		for _, m := range runningGoroutine.FindAllStringSubmatch(norm[pos:], -1) {
			if id, err := strconv.ParseInt(m[1], 10, 64); err == nil && id == g {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("goroutine %d is not reported running after %q", g, fatal)
		}
	}
}

// FuzzParseCrashOutput: the header found is lines of the input; the crash
// found is the last one even when an earlier run's whole traceback comes
// first (files that crash output is appended to), and "\r\n" line ends
// change nothing.
func FuzzParseCrashOutput(f *testing.F) {
	seeds := crashOutputSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add("panic: runtime error: invalid memory address or nil pointer dereference\n" +
		"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b3c]\n\n" +
		"goroutine 42 gp=0x3 m=4 mp=0x5 [running]:\nmain.g()\n")
	f.Add("fatal error: concurrent map writes\n\ngoroutine 7 [running]:\nmain.w()\n\t/x/main.go:9 +0x1d\n")
	f.Add("panic: first [recovered]\n\tpanic: second\n\ngoroutine 1 [running]:\n")
	f.Add("panic: multi\n\tline value\n\ngoroutine 3 [running, locked to thread]:\n")
	earlier := seeds["deadlock.txt"] // a whole traceback, ending in a frame line
	f.Fuzz(func(t *testing.T, text string) {
		fatal, g := parseCrashOutput(text)
		checkCrashOutput(t, text, fatal, g)
		if fatal == "" {
			return
		}
		if f2, g2 := parseCrashOutput(earlier + text); f2 != fatal || g2 != g {
			t.Fatalf("after an earlier run's traceback: got %q, goroutine %d; alone: %q, goroutine %d", f2, g2, fatal, g)
		}
		if !strings.Contains(text, "\r") {
			if f2, g2 := parseCrashOutput(strings.ReplaceAll(text, "\n", "\r\n")); f2 != fatal || g2 != g {
				t.Fatalf("with CRLF line ends: got %q, goroutine %d; with LF: %q, goroutine %d", f2, g2, fatal, g)
			}
		}
	})
}

// TestParseCrashOutputAppendedRuns: a crash output file that several runs
// appended to, with no blank line between a traceback's last frame and
// the next run's "panic:" (what the runtime writes), names the last crash.
func TestParseCrashOutputAppendedRuns(t *testing.T) {
	seeds := crashOutputSeeds(t)
	text := seeds["deadlock.txt"] + seeds["panic-single.txt"]
	fatal, g := parseCrashOutput(text)
	if fatal != "panic: job 42: negative size -1" || g != 69 {
		t.Errorf("deadlock then panic: got %q, goroutine %d; want the panic of goroutine 69", fatal, g)
	}
	text = seeds["panic-single.txt"] + seeds["leak-sigquit.txt"]
	if fatal, _ := parseCrashOutput(text); !strings.HasPrefix(fatal, "SIGQUIT: quit\nPC=") {
		t.Errorf("panic then SIGQUIT: got %q, want the SIGQUIT", fatal)
	}
	// A fatal error printed right after a panic header is the same crash.
	fatal, _ = parseCrashOutput("panic: boom\nfatal error: panic while printing panic value\n\ngoroutine 1 [running]:\n")
	if fatal != "panic: boom\nfatal error: panic while printing panic value" {
		t.Errorf("panic + fatal error header: got %q", fatal)
	}
}

// TestParseCrashOutputGoroutineOutOfRange: a goroutine number too large
// for an int64 is no goroutine (it was reported as 9223372036854775807).
func TestParseCrashOutputGoroutineOutOfRange(t *testing.T) {
	fatal, g := parseCrashOutput("panic: boom\n\ngoroutine 10000000000000000000 [running]:\nmain.main()\n")
	if fatal != "panic: boom" || g != 0 {
		t.Errorf("got %q, goroutine %d; want the panic and no goroutine", fatal, g)
	}
}

// synthCore is a minimal ELF core: the ELF header, a PT_NOTE with an
// NT_PRSTATUS (signal sig, thread tid) and an NT_PRPSINFO (pid), and a
// 64-byte PT_LOAD, laid out like the kernel lays out a core.
func synthCore(pid, tid int32, sig uint16) []byte {
	le := binary.LittleEndian
	note := func(b []byte, typ elf.NType, desc []byte) []byte {
		b = le.AppendUint32(b, 5)
		b = le.AppendUint32(b, uint32(len(desc)))
		b = le.AppendUint32(b, uint32(typ))
		b = append(b, "CORE\x00\x00\x00\x00"...)
		b = append(b, desc...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	prstatus := make([]byte, 336)
	le.PutUint16(prstatus[12:], sig)
	le.PutUint32(prstatus[32:], uint32(tid))
	prpsinfo := make([]byte, 136)
	le.PutUint32(prpsinfo[24:], uint32(pid))
	copy(prpsinfo[40:], "crasher")
	notes := note(note(nil, elf.NT_PRSTATUS, prstatus), elf.NT_PRPSINFO, prpsinfo)

	const ehsize, phsize, phnum = 64, 56, 2
	notesOff := uint64(ehsize + phsize*phnum)
	loadOff := notesOff + uint64(len(notes))
	b := make([]byte, ehsize, int(loadOff)+64)
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS], b[elf.EI_DATA], b[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	le.PutUint16(b[16:], uint16(elf.ET_CORE))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(b[32:], ehsize) // e_phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], phnum)
	phdr := func(typ elf.ProgType, flags elf.ProgFlag, off, vaddr, size uint64) {
		b = le.AppendUint32(b, uint32(typ))
		b = le.AppendUint32(b, uint32(flags))
		b = le.AppendUint64(b, off)
		b = le.AppendUint64(b, vaddr)
		b = le.AppendUint64(b, 0)
		b = le.AppendUint64(b, size) // filesz
		b = le.AppendUint64(b, size) // memsz
		b = le.AppendUint64(b, 1)
	}
	phdr(elf.PT_NOTE, 0, notesOff, 0, uint64(len(notes)))
	phdr(elf.PT_LOAD, elf.PF_R|elf.PF_W, loadOff, 0xc000000000, 64)
	b = append(b, notes...)
	return append(b, make([]byte, 64)...)
}

func TestReadCoreNotesSynthetic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "core")
	if err := os.WriteFile(path, synthCore(4242, 4243, 6), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := readCoreNotes(path)
	if err != nil {
		t.Fatal(err)
	}
	if n != (coreNotes{pid: 4242, signal: 6, threadID: 4243}) {
		t.Errorf("notes = %+v, want pid 4242, signal 6, thread 4243", n)
	}
}

// FuzzReadCoreNotes feeds readCoreNotes arbitrary files: it must return
// the notes or a one-line error naming the file, never panic, and never
// try to allocate what a corrupt header claims.
func FuzzReadCoreNotes(f *testing.F) {
	good := synthCore(4242, 4243, 6)
	f.Add(good)
	f.Add(good[:64])
	f.Add(good[:100])
	f.Add(good[:len(good)-64-10]) // inside the notes
	f.Add(good[:len(good)-1])     // inside the PT_LOAD
	// Inputs that once crashed it (see TestReadCoreNotesCorruptHeaders):
	// a 1 TiB note segment, an unpadded last note.
	le := binary.LittleEndian
	huge := synthCore(1, 2, 6)
	le.PutUint64(huge[64+32:], 1<<40)
	f.Add(huge)
	unpadded := synthCore(1, 2, 6)
	noteOff := le.Uint64(unpadded[64+8:])
	le.PutUint32(unpadded[noteOff+12+8+336+4:], 27)
	le.PutUint64(unpadded[64+32:], 12+8+336+12+8+27)
	f.Add(unpadded)
	f.Add([]byte("\x7fELF"))
	f.Add([]byte("not a core"))
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "core")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := readCoreNotes(path)
		if err == nil {
			// Accepted: then every segment is in the file, so nothing
			// after us reads past its end.
			ef, eerr := elf.NewFile(bytes.NewReader(data))
			if eerr != nil {
				t.Fatalf("accepted, but debug/elf rejects it: %v", eerr)
			}
			for _, p := range ef.Progs {
				if p.Off+p.Filesz < p.Off || p.Off+p.Filesz > uint64(len(data)) {
					t.Fatalf("accepted a %d-byte core whose %s segment ends at %d", len(data), p.Type, p.Off+p.Filesz)
				}
			}
			return
		}
		msg := err.Error()
		if !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
			t.Fatalf("error %q: want one line naming %s", msg, path)
		}
	})
}

// TestReadCoreNotesCorruptHeaders: cores whose headers lie about sizes
// get an error or the notes that are there, not a crash of wardgate.
func TestReadCoreNotesCorruptHeaders(t *testing.T) {
	le := binary.LittleEndian
	const phNote = 64 // the PT_NOTE program header
	noteOff := func(b []byte) uint64 { return le.Uint64(b[phNote+8:]) }
	setNoteSize := func(b []byte, n uint64) { le.PutUint64(b[phNote+32:], n) }
	dir := t.TempDir()
	write := func(t *testing.T, b []byte) string {
		path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "-"))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	wantErr := func(t *testing.T, path, words string) {
		t.Helper()
		_, err := readCoreNotes(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), words) || strings.Contains(err.Error(), "\n") {
			t.Errorf("err = %v; want one line naming %s that says %q", err, path, words)
		}
	}
	// Was: "fatal error: runtime: out of memory" (make([]byte, 1 TiB)).
	t.Run("note segment past the end", func(t *testing.T) {
		b := synthCore(1, 2, 6)
		setNoteSize(b, 1<<40)
		wantErr(t, write(t, b), "is truncated")
	})
	// Within the file (sparse, so the test stays cheap) but absurd.
	t.Run("huge note segment", func(t *testing.T) {
		b := synthCore(1, 2, 6)
		setNoteSize(b, maxNoteSegment+1)
		path := write(t, b)
		if err := os.Truncate(path, int64(noteOff(b))+maxNoteSegment+4096); err != nil {
			t.Fatal(err)
		}
		wantErr(t, path, "is corrupt")
	})
	t.Run("segment offset wraps", func(t *testing.T) {
		b := synthCore(1, 2, 6)
		le.PutUint64(b[phNote+8:], ^uint64(0)-8)
		setNoteSize(b, 64)
		_, err := readCoreNotes(write(t, b))
		if err == nil {
			t.Error("no error")
		}
	})
	// Was: "slice bounds out of range [28:27]". The last note's desc is
	// not 4-aligned and the segment ends right after it, unpadded.
	t.Run("unpadded last note", func(t *testing.T) {
		b := synthCore(1, 2, 6)
		last := noteOff(b) + 12 + 8 + 336 // the second note, NT_PRPSINFO
		le.PutUint32(b[last+4:], 27)
		setNoteSize(b, last+12+8+27-noteOff(b))
		n, err := readCoreNotes(write(t, b))
		if err != nil || n != (coreNotes{pid: 2, signal: 6, threadID: 2}) {
			t.Errorf("notes %+v, %v; want signal 6 of thread 2 (pid unreadable: prpsinfo too short)", n, err)
		}
	})
	// A name size of 2^32-2 once wrapped around to a 0-byte name.
	t.Run("namesz wraps around", func(t *testing.T) {
		b := synthCore(1, 2, 6)
		le.PutUint32(b[noteOff(b):], ^uint32(0)-1)
		n, err := readCoreNotes(write(t, b))
		if err != nil || n != (coreNotes{}) {
			t.Errorf("notes %+v, %v; want none: the first note overruns the segment", n, err)
		}
	})
	t.Run("cut inside the ELF magic", func(t *testing.T) {
		wantErr(t, write(t, []byte("\x7fEL")), "is truncated")
	})
	t.Run("empty", func(t *testing.T) {
		wantErr(t, write(t, nil), "is empty")
	})
}
