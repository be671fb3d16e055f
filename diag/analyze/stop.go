package analyze

import (
	"debug/buildinfo"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

func readBuild(exe string) (Build, error) {
	info, err := buildinfo.ReadFile(exe)
	if err != nil {
		return Build{}, fmt.Errorf("analyze: build info of %s: %w", exe, err)
	}
	b := Build{GoVersion: info.GoVersion, Path: info.Path, MainModule: info.Main.Path, MainVersion: info.Main.Version}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs":
			b.VCS = s.Value
		case "vcs.revision":
			b.VCSRevision = s.Value
		case "vcs.time":
			b.VCSTime = s.Value
		case "vcs.modified":
			b.VCSModified = s.Value == "true"
		}
	}
	return b, nil
}

type coreNotes struct {
	pid, signal, threadID int
}

// readCoreNotes reads the pid and the signal of the first NT_PRSTATUS note.
// The kernel writes the thread that took the fatal signal first, and delve
// makes that thread its current thread too. Delve parses these notes but
// keeps the signal to itself, hence this small reader; the offsets are those
// of struct elf_prstatus, identical on every 64-bit Linux architecture:
// si_signo, si_code, si_errno (3 x int32), pr_cursig (int16) at 12, then
// sigpend and sighold (2 x ulong) and pr_pid (int32) at 32.
func readCoreNotes(path string) (coreNotes, error) {
	f, err := elf.Open(path)
	if err != nil {
		if st, serr := os.Stat(path); serr == nil && st.Size() == 0 {
			return coreNotes{}, fmt.Errorf("analyze: core %s is empty (0 bytes; was the disk full while it was written?)", path)
		}
		if truncatedELF(path) {
			return coreNotes{}, fmt.Errorf("analyze: core %s is truncated (it ends inside its ELF headers; was the disk full while it was written?): %w", path, err)
		}
		return coreNotes{}, fmt.Errorf("analyze: core %s is not an ELF core file: %w", path, err)
	}
	defer f.Close()
	if f.Type != elf.ET_CORE {
		return coreNotes{}, fmt.Errorf("analyze: %s is an ELF %s, not a core file", path, f.Type)
	}
	st, err := os.Stat(path)
	if err != nil {
		return coreNotes{}, fmt.Errorf("analyze: core %s: %w", path, err)
	}
	// A core cut short (disk full, an interrupted copy) still has all its
	// headers, which announce more than the file holds. Say so here,
	// before delve maps and reads segments that are not there.
	size := uint64(st.Size())
	for _, p := range f.Progs {
		end := p.Off + p.Filesz
		if end < p.Off {
			return coreNotes{}, fmt.Errorf("analyze: core %s is corrupt: its %s segment at offset %d claims %d bytes", path, p.Type, p.Off, p.Filesz)
		}
		if end > size {
			return coreNotes{}, fmt.Errorf("analyze: core %s is truncated: it has %d bytes, but its %s segment ends at byte %d (was the disk full while it was written, or the copy cut?)",
				path, size, p.Type, end)
		}
	}
	var n coreNotes
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		if p.Filesz > maxNoteSegment {
			return coreNotes{}, fmt.Errorf("analyze: core %s is corrupt: its note segment claims %d bytes (more than %d)", path, p.Filesz, maxNoteSegment)
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			return coreNotes{}, fmt.Errorf("analyze: core %s is truncated (its notes end early; was the disk full while it was written?): %w", path, err)
		}
		// Sizes are 32-bit in the file: compute in 64 bits so that a
		// corrupt size cannot wrap around to a small one.
		for len(data) >= 12 {
			namesz := uint64(binary.LittleEndian.Uint32(data[0:]))
			descsz := uint64(binary.LittleEndian.Uint32(data[4:]))
			typ := elf.NType(binary.LittleEndian.Uint32(data[8:]))
			off := 12 + align4(namesz)
			if off+descsz > uint64(len(data)) {
				break
			}
			desc := data[off : off+descsz]
			// The last note's padding may be missing.
			data = data[min(off+align4(descsz), uint64(len(data))):]
			if typ == elf.NT_PRSTATUS && n.threadID == 0 && len(desc) >= 36 {
				n.signal = int(binary.LittleEndian.Uint16(desc[12:]))
				n.threadID = int(int32(binary.LittleEndian.Uint32(desc[32:])))
			}
			if typ == elf.NT_PRPSINFO && len(desc) >= 28 {
				// struct elf_prpsinfo on 64-bit: 4 chars, pad, ulong flag,
				// uid, gid (uint32), then pr_pid at 24.
				n.pid = int(int32(binary.LittleEndian.Uint32(desc[24:])))
			}
		}
	}
	if n.pid == 0 {
		n.pid = n.threadID
	}
	return n, nil
}

// maxNoteSegment bounds the PT_NOTE segment read into memory: a Go
// process has at most 10000 threads by default (debug.SetMaxThreads), a
// few KB of notes each, so a larger size is a corrupt header, and reading
// it would exhaust memory.
const maxNoteSegment = 256 << 20

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

func signalName(sig int) string {
	if sig <= 0 {
		return ""
	}
	name := syscall.Signal(sig).String() // "aborted", "quit", ...
	if abbr, ok := sigAbbrev[sig]; ok {
		return abbr + " (" + name + ")"
	}
	return name
}

var sigAbbrev = map[int]string{
	int(syscall.SIGABRT): "SIGABRT", int(syscall.SIGQUIT): "SIGQUIT", int(syscall.SIGSEGV): "SIGSEGV",
	int(syscall.SIGBUS): "SIGBUS", int(syscall.SIGILL): "SIGILL", int(syscall.SIGFPE): "SIGFPE",
	int(syscall.SIGTRAP): "SIGTRAP", int(syscall.SIGKILL): "SIGKILL", int(syscall.SIGSTOP): "SIGSTOP",
	int(syscall.SIGSYS): "SIGSYS", int(syscall.SIGXCPU): "SIGXCPU", int(syscall.SIGXFSZ): "SIGXFSZ",
}

var (
	fatalHeader   = regexp.MustCompile(`^(panic: |fatal error: |SIG[A-Z0-9]+: )`)
	goroutineHead = regexp.MustCompile(`^goroutine (\d+)( gp=\S+)?( m=\S+)?( mp=\S+)? \[([^\]]*)\]`)
)

// parseCrashOutput finds the last crash in a runtime traceback (the file
// may have crashes of earlier runs appended) and returns its header lines
// ("panic: ...", "[signal ...]", "fatal error: ...", "SIGQUIT: quit") and the
// goroutine the traceback reports as running right after it.
func parseCrashOutput(text string) (fatal string, goroutine int64) {
	// Walk the lines in place: a traceback of 100k goroutines is over
	// 100 MB, and copying or regexp-matching every line was a third of the
	// analysis time.
	next := func(off int) (line string, end int) {
		i := strings.IndexByte(text[off:], '\n')
		if i < 0 {
			return strings.TrimSuffix(text[off:], "\r"), len(text)
		}
		return strings.TrimSuffix(text[off:off+i], "\r"), off + i + 1
	}
	// A fatal header starts a crash unless it continues the header block
	// of the one before ("panic: ...\nfatal error: panic while printing
	// panic value"). Any tab-indented line may continue a header, but only
	// right after one: the tab-indented frame lines of an earlier run's
	// traceback, which the next run's "panic:" follows without a blank
	// line in an appended file, are no header.
	start, inHeader := -1, false
	for off := 0; off < len(text); {
		l, end := next(off)
		switch {
		case isFatalHeader(l):
			if !inHeader {
				start = off
			}
			inHeader = true
		default:
			inHeader = inHeader && isHeaderLine(l)
		}
		off = end
	}
	if start < 0 {
		return "", 0
	}
	var head []string
	off := start
	for off < len(text) {
		l, end := next(off)
		if !isHeaderLine(l) {
			break
		}
		head = append(head, l)
		off = end
	}
	for off < len(text) {
		l, end := next(off)
		off = end
		if !strings.HasPrefix(l, "goroutine ") {
			if isFatalHeader(l) {
				break
			}
			continue
		}
		m := goroutineHead.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if strings.HasPrefix(m[5], "running") {
			// An id out of range is garbage, not goroutine MaxInt64.
			if id, err := strconv.ParseInt(m[1], 10, 64); err == nil {
				goroutine = id
			}
		}
		break
	}
	return strings.Join(head, "\n"), goroutine
}

// isFatalHeader matches fatalHeader, checking the first byte before running
// the regexp on each of the traceback's (maybe millions of) lines.
func isFatalHeader(l string) bool {
	if l == "" || (l[0] != 'p' && l[0] != 'f' && l[0] != 'S') {
		return false
	}
	return fatalHeader.MatchString(l)
}

// isHeaderLine: a crash header line or its continuation (a nested panic,
// "[signal ...]", a multi-line panic value indented by the runtime).
func isHeaderLine(l string) bool {
	switch {
	case l == "":
		return false
	case isFatalHeader(l), strings.HasPrefix(l, "[signal "), strings.HasPrefix(l, "\tpanic: "),
		strings.HasPrefix(l, "PC="), strings.HasPrefix(l, "\t[recovered"):
		return true
	case strings.HasPrefix(l, "goroutine "), strings.HasPrefix(l, "runtime stack:"):
		return false
	}
	return strings.HasPrefix(l, "\t")
}

func stopSummary(s Stop) string {
	var parts []string
	if s.Fatal != "" {
		parts = append(parts, strings.SplitN(s.Fatal, "\n", 2)[0])
	}
	if s.Signal != 0 {
		parts = append(parts, fmt.Sprintf("core written on signal %s in thread %d", s.SignalName, s.ThreadID))
	} else {
		parts = append(parts, "no fatal signal in the core (a live capture: gcore or wardgate diag capture)")
	}
	if s.Goroutine != 0 {
		parts = append(parts, fmt.Sprintf("goroutine %d", s.Goroutine))
	}
	return strings.Join(parts, "; ")
}

var sigcodeRE = regexp.MustCompile(`sigcode=(-?\d+)`)

// externalSignal reports whether the crash header is a signal sent by
// another process or by kill/tkill (si_code SI_USER=0, SI_TKILL=-6), as
// opposed to a fault the crashing goroutine caused itself.
func externalSignal(fatal string) bool {
	if !strings.HasPrefix(fatal, "SIG") {
		return false
	}
	m := sigcodeRE.FindStringSubmatch(fatal)
	return m != nil && (m[1] == "0" || m[1] == "-6")
}

// truncatedELF reports whether path starts like a 64-bit ELF file but is too
// short to hold the program header table its header announces: a core cut
// off while it was written, rather than something that never was a core.
func truncatedELF(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [64]byte
	n, _ := io.ReadFull(f, h[:])
	if n < 4 {
		return n > 0 && strings.HasPrefix(elf.ELFMAG, string(h[:n]))
	}
	if string(h[:4]) != elf.ELFMAG {
		return false
	}
	if n < len(h) {
		return true
	}
	phoff := binary.LittleEndian.Uint64(h[32:])
	phentsize := uint64(binary.LittleEndian.Uint16(h[54:]))
	phnum := uint64(binary.LittleEndian.Uint16(h[56:]))
	st, err := f.Stat()
	return err == nil && uint64(st.Size()) < phoff+phentsize*phnum
}
