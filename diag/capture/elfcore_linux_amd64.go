package capture

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/wardgate/wardgate/diag/bundle"
)

// Note types the kernel writes into a core (include/uapi/linux/elf.h).
const (
	ntPrstatus = 1
	ntFpregset = 2
	ntPrpsinfo = 3
	ntAuxv     = 6
	ntFile     = 0x46494c45 // "FILE"
)

// Sizes of the kernel's structs on x86_64.
const (
	prstatusSize = 336 // struct elf_prstatus
	prpsinfoSize = 136 // struct elf_prpsinfo
	regsSize     = 27 * 8
)

// writeCore writes snap as an ELF core file at path (mode 0600). Memory
// the snapshot does not hold, and pages that are all zero, are left as
// holes: the file's apparent size covers every mapping but only data
// takes disk space.
func writeCore(path string, snap *snapshot) error {
	notes := coreNotes(snap)
	phnum := 1 + len(snap.segments)
	if phnum >= 0xffff {
		return fmt.Errorf("%d mappings: more than an ELF core without section headers can describe", len(snap.segments))
	}
	const ehsize, phentsize = 64, 56
	notesOff := uint64(ehsize + phnum*phentsize)
	dataOff := alignUp(notesOff+uint64(len(notes)), snap.pageSize)

	progs := make([]elf.Prog64, 0, phnum)
	progs = append(progs, elf.Prog64{
		Type:   uint32(elf.PT_NOTE),
		Off:    notesOff,
		Filesz: uint64(len(notes)),
		Align:  4,
	})
	offsets := make([]uint64, len(snap.segments))
	off := dataOff
	for i, seg := range snap.segments {
		offsets[i] = off
		var flags elf.ProgFlag
		if seg.m.readable() {
			flags |= elf.PF_R
		}
		if seg.m.writable() {
			flags |= elf.PF_W
		}
		if seg.m.executable() {
			flags |= elf.PF_X
		}
		progs = append(progs, elf.Prog64{
			Type:   uint32(elf.PT_LOAD),
			Flags:  uint32(flags),
			Off:    off,
			Vaddr:  seg.m.start,
			Filesz: seg.filesz,
			Memsz:  seg.m.size(),
			Align:  snap.pageSize,
		})
		off += seg.filesz
	}
	total := off

	hdr := elf.Header64{
		Type:      uint16(elf.ET_CORE),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Phoff:     ehsize,
		Ehsize:    ehsize,
		Phentsize: phentsize,
		Phnum:     uint16(phnum),
		Shentsize: 64,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	hdr.Ident[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, bundle.FileMode)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	if err := binary.Write(w, binary.LittleEndian, &hdr); err != nil {
		return err
	}
	if err := binary.Write(w, binary.LittleEndian, progs); err != nil {
		return err
	}
	if _, err := w.Write(notes); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}

	zero := make([]byte, snap.pageSize)
	for i, seg := range snap.segments {
		for _, sp := range seg.spans {
			base := int64(offsets[i] + (sp.addr - seg.m.start))
			if err := writeNonZeroPages(f, base, sp.buf, zero); err != nil {
				return err
			}
		}
	}
	// Extend to the full size; the tail stays a hole.
	if err := f.Truncate(int64(total)); err != nil {
		return err
	}
	return f.Close()
}

// writeNonZeroPages writes buf at off, skipping whole zero pages so they
// stay holes in the file.
func writeNonZeroPages(f *os.File, off int64, buf, zero []byte) error {
	ps := len(zero)
	runStart := -1
	flush := func(end int) error {
		if runStart < 0 {
			return nil
		}
		_, err := f.WriteAt(buf[runStart:end], off+int64(runStart))
		runStart = -1
		return err
	}
	for p := 0; p < len(buf); p += ps {
		end := min(p+ps, len(buf))
		if bytes.Equal(buf[p:end], zero[:end-p]) {
			if err := flush(p); err != nil {
				return err
			}
			continue
		}
		if runStart < 0 {
			runStart = p
		}
	}
	return flush(len(buf))
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) / a * a }

// coreNotes builds the PT_NOTE contents in the kernel's order: the first
// thread's NT_PRSTATUS, then the process notes (NT_PRPSINFO, NT_AUXV,
// NT_FILE), then that thread's NT_FPREGSET, then each other thread's
// NT_PRSTATUS and NT_FPREGSET.
func coreNotes(snap *snapshot) []byte {
	var b bytes.Buffer
	for i, t := range snap.threads {
		appendNote(&b, "CORE", ntPrstatus, prstatus(snap, t))
		if i == 0 {
			appendNote(&b, "CORE", ntPrpsinfo, prpsinfo(snap))
			appendNote(&b, "CORE", ntAuxv, snap.auxv)
			appendNote(&b, "CORE", ntFile, ntFileDesc(snap))
		}
		if t.fpValid {
			appendNote(&b, "CORE", ntFpregset, t.fpregs[:])
		}
	}
	return b.Bytes()
}

// appendNote appends an ELF note: namesz, descsz, type, then name and
// desc each padded to 4 bytes.
func appendNote(b *bytes.Buffer, name string, typ uint32, desc []byte) {
	var h [12]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(name)+1))
	binary.LittleEndian.PutUint32(h[4:], uint32(len(desc)))
	binary.LittleEndian.PutUint32(h[8:], typ)
	b.Write(h[:])
	b.WriteString(name)
	b.WriteByte(0)
	pad4(b)
	b.Write(desc)
	pad4(b)
}

func pad4(b *bytes.Buffer) {
	for b.Len()%4 != 0 {
		b.WriteByte(0)
	}
}

// prstatus encodes struct elf_prstatus for one thread (x86_64 layout):
// elf_siginfo{signo, code, errno}, cursig u16 (+2 pad), sigpend u64,
// sighold u64, pid/ppid/pgrp/sid i32, four timevals, user_regs_struct,
// fpvalid i32 (+4 pad).
func prstatus(snap *snapshot, t threadRegs) []byte {
	d := make([]byte, prstatusSize)
	le := binary.LittleEndian
	le.PutUint32(d[0:], uint32(t.sig))
	le.PutUint16(d[12:], uint16(t.sig))
	le.PutUint32(d[32:], uint32(t.tid))
	le.PutUint32(d[36:], uint32(snap.stat.ppid))
	le.PutUint32(d[40:], uint32(snap.stat.pgrp))
	le.PutUint32(d[44:], uint32(snap.stat.sid))
	// user_regs_struct is the same 27 words, in the same order, as
	// unix.PtraceRegs.
	r := t.regs
	regs := []uint64{r.R15, r.R14, r.R13, r.R12, r.Rbp, r.Rbx, r.R11, r.R10, r.R9, r.R8,
		r.Rax, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.Orig_rax, r.Rip, r.Cs, r.Eflags, r.Rsp, r.Ss,
		r.Fs_base, r.Gs_base, r.Ds, r.Es, r.Fs, r.Gs}
	for i, v := range regs {
		le.PutUint64(d[112+8*i:], v)
	}
	if t.fpValid {
		le.PutUint32(d[112+regsSize:], 1)
	}
	return d
}

// prpsinfo encodes struct elf_prpsinfo (x86_64 layout).
func prpsinfo(snap *snapshot) []byte {
	d := make([]byte, prpsinfoSize)
	le := binary.LittleEndian
	st := snap.stat
	const states = "RSDTZW"
	if i := strings.IndexByte(states, st.state); i >= 0 {
		d[0] = byte(i)
	}
	d[1] = st.state
	if st.state == 'Z' {
		d[2] = 1
	}
	d[3] = byte(st.nice)
	le.PutUint64(d[8:], st.flags)
	le.PutUint32(d[16:], st.uid)
	le.PutUint32(d[20:], st.gid)
	le.PutUint32(d[24:], uint32(snap.pid))
	le.PutUint32(d[28:], uint32(st.ppid))
	le.PutUint32(d[32:], uint32(st.pgrp))
	le.PutUint32(d[36:], uint32(st.sid))
	copy(d[40:40+15], st.comm)
	copy(d[56:56+79], strings.Join(snap.cmdline, " "))
	return d
}

// ntFileDesc encodes NT_FILE: count, page size, (start, end, offset in
// pages) per file-backed mapping, then the NUL-terminated file names.
// delve maps these ranges to the executable, so read-only text and data
// need not be in the core.
func ntFileDesc(snap *snapshot) []byte {
	var files []mapping
	for _, seg := range snap.segments {
		if seg.m.fileBacked() {
			files = append(files, seg.m)
		}
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	var w [8]byte
	put := func(v uint64) { le.PutUint64(w[:], v); b.Write(w[:]) }
	put(uint64(len(files)))
	put(snap.pageSize)
	for _, m := range files {
		put(m.start)
		put(m.end)
		put(m.offset / snap.pageSize)
	}
	for _, m := range files {
		b.WriteString(strings.TrimSuffix(m.path, " (deleted)"))
		b.WriteByte(0)
	}
	return b.Bytes()
}
