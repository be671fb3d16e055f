package analyze

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
)

// ErrExeMismatch is wrapped by the error Run returns when the executable
// is not the one that wrote the core.
var ErrExeMismatch = errors.New("executable does not match the core")

// Why verify at all: delve trusts the executable it is given. With another
// binary's symbols every runtime variable (runtime.allgs, allglen, ...)
// points at unrelated bytes of the core, and delve then walks millions of
// "goroutines" built from garbage, allocating for each one. A report from
// such a pairing is garbage too, so the pairing is refused up front.
//
// The evidence, strongest first:
//
//  1. The kernel (coredump_filter bit 4, on by default), gcore and
//     `wardgate diag capture` keep the first page of every mapped ELF
//     file. For a Go binary that page holds the ELF and program headers
//     and both build IDs (.note.go.buildid, .note.gnu.build-id). The
//     executable's first page must equal the core's copy byte for byte;
//     the build IDs read from both name the difference.
//  2. Without that page, the core's NT_FILE note still lists where each
//     segment of the executable was mapped: every PT_LOAD of the
//     executable must appear there at the same address and file offset.
//     Two different builds almost never share a segment layout.
//
// A core with neither (a hand-made or stripped core) cannot be checked;
// Run then proceeds, bounded by the read limits, with a warning.

// exeIdentity is what identifies an executable build.
type exeIdentity struct {
	goBuildID, gnuBuildID string
}

func (id exeIdentity) String() string {
	switch {
	case id.goBuildID != "" && id.gnuBuildID != "":
		return fmt.Sprintf("Go build ID %s, GNU build ID %s", id.goBuildID, id.gnuBuildID)
	case id.goBuildID != "":
		return "Go build ID " + id.goBuildID
	case id.gnuBuildID != "":
		return "GNU build ID " + id.gnuBuildID
	}
	return "no build ID"
}

// mappedFile is one NT_FILE entry.
type mappedFile struct {
	start, end, off uint64 // off in bytes
	path            string
}

// coreLayout is what checkExeMatchesCore needs from the core.
type coreLayout struct {
	files []mappedFile
	entry uint64 // AT_ENTRY from NT_AUXV, 0 when absent
	loads []elf.ProgHeader
}

const (
	ntFile   = 0x46494c45 // NT_FILE, "FILE"
	atEntry  = 9
	maxFiles = 1 << 20 // NT_FILE entries; a process has at most vm.max_map_count (65530 by default) mappings
)

// checkExeMatchesCore returns nil when exe is the executable that wrote
// core, an error wrapping ErrExeMismatch naming both files when it is not,
// and a non-empty warning when the core holds no evidence either way.
func checkExeMatchesCore(corePath, exePath string) (warning string, err error) {
	exe, err := elf.Open(exePath)
	if err != nil {
		return "", fmt.Errorf("analyze: executable %s is not an ELF file: %w", exePath, err)
	}
	defer exe.Close()
	if exe.Type != elf.ET_EXEC && exe.Type != elf.ET_DYN {
		return "", fmt.Errorf("analyze: %s is an ELF %s, not an executable", exePath, exe.Type)
	}
	exeID := readExeIdentity(exe)

	cf, err := os.Open(corePath)
	if err != nil {
		return "", fmt.Errorf("analyze: %w", err)
	}
	defer cf.Close()
	lay, err := readCoreLayout(cf)
	if err != nil {
		// readCoreNotes has already said what is wrong with the core
		// itself; here only the pairing is at stake.
		return "cannot verify that the executable matches the core: " + err.Error(), nil
	}

	mismatch := func(why string) error {
		return fmt.Errorf("analyze: %w: core %s was not written by %s (%s)", ErrExeMismatch, corePath, exePath, why)
	}

	// Where was the executable mapped? AT_ENTRY lies in its text mapping;
	// failing that, the lowest mapping at file offset 0 (an executable is
	// mapped below its shared libraries).
	var exeMaps []mappedFile
	path := ""
	if lay.entry != 0 {
		for _, m := range lay.files {
			if lay.entry >= m.start && lay.entry < m.end {
				path = m.path
				break
			}
		}
	}
	if path == "" {
		for _, m := range lay.files {
			if m.off == 0 {
				path = m.path
				break
			}
		}
	}
	for _, m := range lay.files {
		if path != "" && m.path == path {
			exeMaps = append(exeMaps, m)
		}
	}

	var firstLoad *elf.Prog
	for _, p := range exe.Progs {
		if p.Type == elf.PT_LOAD && p.Off == 0 {
			firstLoad = p
			break
		}
	}
	if firstLoad == nil {
		return "", mismatch(fmt.Sprintf("%s has no loadable segment at file offset 0", exePath))
	}
	// The load bias: 0 for a position-dependent executable, the base
	// address for a PIE.
	base, haveBase := uint64(0), false
	for _, m := range exeMaps {
		if m.off == 0 {
			base, haveBase = m.start, true
			break
		}
	}
	if !haveBase && exe.Type == elf.ET_EXEC {
		base, haveBase = firstLoad.Vaddr&^(pageSize-1), true
	}
	bias := base - firstLoad.Vaddr&^(pageSize-1)

	// 1. The first page.
	if haveBase {
		n := min(firstLoad.Filesz, pageSize)
		corePage := readCoreRange(cf, lay.loads, base, n)
		if corePage != nil {
			exePage := make([]byte, n)
			f, err := os.Open(exePath)
			if err != nil {
				return "", fmt.Errorf("analyze: %w", err)
			}
			_, err = io.ReadFull(f, exePage)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("analyze: read %s: %w", exePath, err)
			}
			if bytes.Equal(exePage, corePage) {
				return "", nil
			}
			coreID := identityInPage(exe, corePage)
			if coreID != (exeIdentity{}) || exeID != (exeIdentity{}) {
				return "", mismatch(fmt.Sprintf("the core's executable has %s, %s has %s", coreID, exePath, exeID))
			}
			return "", mismatch("the ELF headers mapped in the core differ from the file's")
		}
	}

	// 2. The segment layout.
	if len(exeMaps) == 0 {
		return "cannot verify that the executable matches the core: the core lists no mapped files (no NT_FILE note)", nil
	}
	for _, p := range exe.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		start := (p.Vaddr + bias) &^ (pageSize - 1)
		off := p.Off &^ (pageSize - 1)
		found := false
		for _, m := range exeMaps {
			if m.start == start && m.off == off {
				found = true
				break
			}
		}
		if !found {
			return "", mismatch(fmt.Sprintf("%s has a segment at %#x (file offset %#x) that the process (%s, %s) did not map there",
				exePath, start, off, path, exeID))
		}
	}
	return "", nil
}

// readExeIdentity reads the build IDs of an executable.
func readExeIdentity(f *elf.File) exeIdentity {
	var id exeIdentity
	for _, s := range f.Sections {
		if s.Type != elf.SHT_NOTE || s.Size > 1<<16 {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		id.merge(parseBuildIDNotes(data))
	}
	return id
}

func (id *exeIdentity) merge(o exeIdentity) {
	if id.goBuildID == "" {
		id.goBuildID = o.goBuildID
	}
	if id.gnuBuildID == "" {
		id.gnuBuildID = o.gnuBuildID
	}
}

// identityInPage reads the build IDs from a core's copy of an executable's
// first page: through the page's own program headers (PT_NOTE), and at the
// offsets where exe keeps its note sections, since a Go binary's PT_NOTE
// covers only one of its notes.
func identityInPage(exe *elf.File, page []byte) exeIdentity {
	var id exeIdentity
	if len(page) >= 64 && string(page[:4]) == elf.ELFMAG && elf.Class(page[elf.EI_CLASS]) == elf.ELFCLASS64 {
		le := binary.LittleEndian
		phoff, phentsize, phnum := le.Uint64(page[0x20:]), uint64(le.Uint16(page[0x36:])), uint64(le.Uint16(page[0x38:]))
		for i := uint64(0); i < phnum && phentsize >= 56; i++ {
			h := phoff + i*phentsize
			if h+56 > uint64(len(page)) || h < phoff {
				break
			}
			if elf.ProgType(le.Uint32(page[h:])) != elf.PT_NOTE {
				continue
			}
			off, size := le.Uint64(page[h+8:]), le.Uint64(page[h+32:])
			// Read on past the segment's end: the Go linker's PT_NOTE
			// covers .note.go.buildid only, and .note.gnu.build-id follows
			// it. Whatever follows the notes fails to parse as one.
			if off < uint64(len(page)) && size <= uint64(len(page))-off {
				id.merge(parseBuildIDNotes(page[off:]))
			}
		}
	}
	for _, s := range exe.Sections {
		if s.Type == elf.SHT_NOTE && s.Offset < uint64(len(page)) && s.Size <= uint64(len(page))-s.Offset {
			id.merge(parseBuildIDNotes(page[s.Offset : s.Offset+s.Size]))
		}
	}
	return id
}

// parseBuildIDNotes finds the Go and GNU build-ID notes in a note area.
func parseBuildIDNotes(data []byte) exeIdentity {
	var id exeIdentity
	for len(data) >= 12 {
		namesz := uint64(binary.LittleEndian.Uint32(data[0:]))
		descsz := uint64(binary.LittleEndian.Uint32(data[4:]))
		typ := binary.LittleEndian.Uint32(data[8:])
		off := 12 + align4(namesz)
		if off > uint64(len(data)) || descsz > uint64(len(data))-off {
			break
		}
		name := string(bytes.TrimRight(data[12:12+namesz], "\x00"))
		desc := data[off : off+descsz]
		switch {
		case name == "Go" && typ == 4: // NT_GO_BUILDID
			id.goBuildID = printable(desc)
		case name == "GNU" && typ == 3: // NT_GNU_BUILD_ID
			id.gnuBuildID = hex.EncodeToString(desc)
		}
		data = data[min(off+align4(descsz), uint64(len(data))):]
	}
	return id
}

// printable keeps a build ID read from a core fit for one line.
func printable(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return hex.EncodeToString(b)
		}
	}
	return string(b)
}

// readCoreLayout reads the PT_LOAD headers and the NT_FILE and NT_AUXV
// notes of a core. Every size comes from the file and is checked against
// the file's size before anything is allocated.
func readCoreLayout(f *os.File) (*coreLayout, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, err
	}
	size := uint64(st.Size())
	lay := &coreLayout{}
	for _, p := range ef.Progs {
		switch p.Type {
		case elf.PT_LOAD:
			if p.Filesz > 0 && p.Off <= size && p.Filesz <= size-p.Off {
				lay.loads = append(lay.loads, p.ProgHeader)
			}
		case elf.PT_NOTE:
			if p.Filesz > maxNoteSegment || p.Off > size || p.Filesz > size-p.Off {
				return nil, errors.New("its note segment is larger than the file")
			}
			data := make([]byte, p.Filesz)
			if _, err := p.ReadAt(data, 0); err != nil {
				return nil, fmt.Errorf("its notes: %w", err)
			}
			lay.parseNotes(data)
		}
	}
	sort.Slice(lay.loads, func(i, j int) bool { return lay.loads[i].Vaddr < lay.loads[j].Vaddr })
	return lay, nil
}

func (lay *coreLayout) parseNotes(data []byte) {
	le := binary.LittleEndian
	for len(data) >= 12 {
		namesz := uint64(le.Uint32(data[0:]))
		descsz := uint64(le.Uint32(data[4:]))
		typ := le.Uint32(data[8:])
		off := 12 + align4(namesz)
		if off > uint64(len(data)) || descsz > uint64(len(data))-off {
			return
		}
		desc := data[off : off+descsz]
		data = data[min(off+align4(descsz), uint64(len(data))):]
		switch typ {
		case ntFile:
			if lay.files == nil {
				lay.files = parseNTFile(desc)
			}
		case 6: // NT_AUXV
			for i := 0; i+16 <= len(desc); i += 16 {
				switch le.Uint64(desc[i:]) {
				case atEntry:
					lay.entry = le.Uint64(desc[i+8:])
				}
			}
		}
	}
}

// parseNTFile decodes NT_FILE: count, page size, count x (start, end,
// page offset), then count NUL-terminated paths. A count that does not fit
// in the note is corrupt and yields nothing.
func parseNTFile(desc []byte) []mappedFile {
	le := binary.LittleEndian
	if len(desc) < 16 {
		return nil
	}
	count, psize := le.Uint64(desc[0:]), le.Uint64(desc[8:])
	if count > maxFiles || count*24 > uint64(len(desc))-16 || psize == 0 || psize > 1<<30 {
		return nil
	}
	names := desc[16+count*24:]
	out := make([]mappedFile, 0, count)
	for i := range count {
		e := desc[16+i*24:]
		nul := bytes.IndexByte(names, 0)
		if nul < 0 {
			return nil
		}
		out = append(out, mappedFile{start: le.Uint64(e[0:]), end: le.Uint64(e[8:]), off: le.Uint64(e[16:]) * psize, path: string(names[:nul])})
		names = names[nul+1:]
	}
	return out
}

// readCoreRange returns the n bytes at addr when a PT_LOAD of the core
// holds them all, else nil.
func readCoreRange(f *os.File, loads []elf.ProgHeader, addr, n uint64) []byte {
	for _, p := range loads {
		if addr >= p.Vaddr && addr-p.Vaddr < p.Filesz && n <= p.Filesz-(addr-p.Vaddr) {
			buf := make([]byte, n)
			if _, err := f.ReadAt(buf, int64(p.Off+addr-p.Vaddr)); err != nil {
				return nil
			}
			return buf
		}
	}
	return nil
}
