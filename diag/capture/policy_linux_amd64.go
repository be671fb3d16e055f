package capture

// Dump policy: what of each mapping goes into the core. It is its own phase
// because it is decided from /proc/PID/maps alone, before any memory is
// touched, and both the copy-size estimate (which sizes the arena) and every
// copy round ask it the same question; one function keeps them in agreement
// with each other and with the kernel's coredump_filter.

// dumpPolicy says how much of a mapping goes into the core.
type dumpPolicy int

const (
	dumpNone      dumpPolicy = iota // PT_LOAD with p_filesz 0: unreadable, or file contents delve/gdb read from the file
	dumpHeader                      // first page only: the ELF header of a mapped file, for build ids
	dumpPopulated                   // pages present or swapped per pagemap; the rest are zero
	dumpAll                         // every page (small mappings whose holes are not zero)
	dumpOmit                        // no PT_LOAD at all: kernel-provided pages nobody can read
)

// policy decides, like the kernel's default coredump_filter (0x33), what
// to keep of m: anonymous memory (heap, stacks, Go arenas) is kept page by
// page; read-only file mappings (the program text) are left to the exe
// copy in the bundle, which delve reads through NT_FILE; private writable
// file mappings (.data) are kept whole, since their untouched pages hold
// file contents, not zeros.
func policy(m mapping) dumpPolicy {
	switch m.path {
	case "[vvar]", "[vvar_vclock]", "[vsyscall]":
		return dumpOmit
	case "[vdso]":
		return dumpAll
	}
	switch {
	case !m.readable():
		return dumpNone
	case !m.fileBacked():
		return dumpPopulated
	case m.shared():
		return dumpNone
	case m.writable():
		return dumpAll
	case m.offset == 0:
		return dumpHeader
	}
	return dumpNone
}
