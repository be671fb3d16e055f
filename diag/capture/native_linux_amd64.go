package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// threadRegs is what the core keeps of one stopped thread.
type threadRegs struct {
	tid     int
	regs    unix.PtraceRegs
	fpregs  [512]byte // user_fpregs_struct (fxsave layout)
	fpValid bool
	// sig is a signal the thread was about to receive when it stopped;
	// it is handed back on detach so the process does not lose it.
	sig syscall.Signal
}

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

// span is a range of process memory copied into buf.
type span struct {
	addr uint64
	buf  []byte
}

// segment is one PT_LOAD of the core.
type segment struct {
	m      mapping
	filesz uint64
	spans  []span
}

// snapshot is everything the core is written from.
type snapshot struct {
	pid      int
	pageSize uint64
	threads  []threadRegs
	segments []segment
	auxv     []byte
	stat     procStat
	cmdline  []string
	copied   int64
	skipped  int // pages that could not be read
}

// captureNative stops pid's threads, copies its populated memory, resumes
// it and writes the core. See the package doc.
func captureNative(ctx context.Context, pid int, corePath string, m *Meta) error {
	if pid == os.Getpid() {
		return errors.New("capture: the native capturer cannot capture its own process; use --method gcore")
	}
	snap := &snapshot{pid: pid, pageSize: uint64(os.Getpagesize())}
	var err error
	if snap.auxv, err = os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid)); err != nil {
		return procErr(pid, err)
	}
	if snap.stat, err = readProcStat(pid); err != nil {
		return procErr(pid, err)
	}
	snap.cmdline = m.Cmdline

	// Size and pre-fault the copy buffer before stopping anything, so the
	// pause is not spent taking page faults in our own memory.
	estimate, err := estimateCopy(pid, snap.pageSize)
	if err != nil {
		return procErr(pid, err)
	}
	ar, err := newArena(estimate + estimate/8 + 8<<20)
	if err != nil {
		return fmt.Errorf("capture: copy buffer: %w", err)
	}
	defer ar.free()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("capture: %w", err)
	}

	m.Time = time.Now().UTC()
	pause, err := stopCopyResume(ctx, snap, ar)
	if pause > 0 {
		m.PauseMS = float64(pause.Microseconds()) / 1000
	}
	if err != nil {
		return err
	}
	if snap.skipped > 0 {
		m.Warnings = append(m.Warnings, fmt.Sprintf("%d pages could not be read and are zero in the core", snap.skipped))
	}
	if err := writeCore(corePath, snap); err != nil {
		os.Remove(corePath)
		return fmt.Errorf("capture: writing core: %w", err)
	}
	m.Method = MethodNative
	m.Threads = len(snap.threads)
	m.MemoryBytesCopied = snap.copied
	return nil
}

// estimateCopy returns roughly how many bytes the copy will take, from the
// current maps and pagemap. The real copy recomputes it while stopped.
func estimateCopy(pid int, pageSize uint64) (uint64, error) {
	maps, err := parseMaps(pid)
	if err != nil {
		return 0, err
	}
	pm, err := openPagemap(pid, pageSize)
	if err != nil {
		return 0, err
	}
	defer pm.Close()
	var total uint64
	for _, mp := range maps {
		switch policy(mp) {
		case dumpAll:
			total += mp.size()
		case dumpHeader:
			total += pageSize
		case dumpPopulated:
			if err := pm.populated(mp.start, mp.end, func(_, n uint64) { total += n }); err != nil {
				return 0, err
			}
		}
	}
	return total, nil
}

// stopCopyResume is the pause: attach to and stop every thread, read
// registers, maps and pagemap, copy populated memory, detach. All ptrace
// requests must come from the tracer thread, so the goroutine is locked to
// its OS thread throughout. It returns how long the process was stopped.
func stopCopyResume(ctx context.Context, snap *snapshot, ar *arena) (pause time.Duration, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	pid := snap.pid
	attached := map[int]*threadRegs{}
	var order []int
	var stopStart time.Time
	defer func() {
		// Resume everything, whatever happened; the pause ends here.
		var detachErr error
		for _, tid := range order {
			t := attached[tid]
			if t == nil {
				continue
			}
			if e := ptraceDetach(tid, t.sig); e != nil && !errors.Is(e, unix.ESRCH) {
				detachErr = errors.Join(detachErr, fmt.Errorf("detach thread %d: %w", tid, e))
			}
		}
		if !stopStart.IsZero() {
			pause = time.Since(stopStart)
		}
		if detachErr != nil && err == nil {
			err = fmt.Errorf("capture: %w", detachErr)
		}
	}()

	// Go starts threads at any time, so attach until a pass over
	// /proc/PID/task finds none we have not stopped; once every thread
	// is stopped none can create another.
	for pass := 0; ; pass++ {
		tids, err := listTasks(pid)
		if err != nil {
			return 0, procErr(pid, err)
		}
		var fresh []int
		for _, tid := range tids {
			if _, ok := attached[tid]; !ok {
				fresh = append(fresh, tid)
			}
		}
		if len(fresh) == 0 {
			break
		}
		if pass > 1000 {
			return 0, fmt.Errorf("capture: pid %d keeps creating threads; could not stop them all", pid)
		}
		for _, tid := range fresh {
			if stopStart.IsZero() {
				stopStart = time.Now()
			}
			if err := unix.PtraceSeize(tid); err != nil {
				if errors.Is(err, unix.ESRCH) && tid != pid {
					continue // the thread exited meanwhile
				}
				return 0, ptraceErr(pid, tid, err)
			}
			attached[tid] = nil // attached, not yet stopped
			order = append(order, tid)
			if err := unix.PtraceInterrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				return 0, ptraceErr(pid, tid, err)
			}
		}
		for _, tid := range fresh {
			if _, ok := attached[tid]; !ok {
				continue
			}
			t, alive, err := waitStopped(ctx, tid)
			if err != nil {
				return 0, fmt.Errorf("capture: pid %d thread %d: %w", pid, tid, err)
			}
			if !alive {
				if tid == pid {
					return 0, fmt.Errorf("capture: pid %d exited while being captured: %w", pid, ErrNoProcess)
				}
				delete(attached, tid)
				continue
			}
			attached[tid] = t
		}
	}

	// Registers.
	tids := make([]int, 0, len(attached))
	for tid := range attached {
		tids = append(tids, tid)
	}
	slices.Sort(tids)
	// The thread running main (tid == pid) goes first: delve and gdb make
	// the first NT_PRSTATUS the current thread.
	slices.SortStableFunc(tids, func(a, b int) int {
		switch {
		case a == pid && b != pid:
			return -1
		case b == pid && a != pid:
			return 1
		}
		return 0
	})
	for _, tid := range tids {
		t := attached[tid]
		if err := unix.PtraceGetRegs(tid, &t.regs); err != nil {
			return 0, fmt.Errorf("capture: registers of thread %d: %w", tid, err)
		}
		t.fpValid = ptraceGetFPRegs(tid, &t.fpregs) == nil
		snap.threads = append(snap.threads, *t)
	}

	// Memory, as it is now that nothing runs.
	maps, err := parseMaps(pid)
	if err != nil {
		return 0, procErr(pid, err)
	}
	pm, err := openPagemap(pid, snap.pageSize)
	if err != nil {
		return 0, procErr(pid, err)
	}
	defer pm.Close()
	var reads []span
	for _, mp := range maps {
		pol := policy(mp)
		if pol == dumpOmit {
			continue
		}
		seg := segment{m: mp}
		addRun := func(addr, n uint64) {
			seg.spans = append(seg.spans, span{addr: addr, buf: ar.alloc(n)})
		}
		switch pol {
		case dumpAll:
			seg.filesz = mp.size()
			addRun(mp.start, mp.size())
		case dumpHeader:
			seg.filesz = snap.pageSize
			addRun(mp.start, snap.pageSize)
		case dumpPopulated:
			seg.filesz = mp.size()
			if err := pm.populated(mp.start, mp.end, addRun); err != nil {
				return 0, procErr(pid, err)
			}
		}
		reads = append(reads, seg.spans...)
		snap.segments = append(snap.segments, seg)
	}
	copied, skipped, err := readMemoryParallel(ctx, pid, reads, snap.pageSize)
	snap.copied, snap.skipped = copied, skipped
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// readMemoryParallel splits large copies across CPUs: process_vm_readv
// needs no ptrace relationship, so any thread may run it, and the copy is
// bound by page-table walks and memcpy, which scale with cores.
func readMemoryParallel(ctx context.Context, pid int, spans []span, pageSize uint64) (copied int64, skipped int, err error) {
	var total uint64
	for _, s := range spans {
		total += uint64(len(s.buf))
	}
	workers := min(runtime.GOMAXPROCS(0), 4)
	if workers < 2 || total < 64<<20 {
		return readMemory(ctx, pid, spans, pageSize)
	}
	type result struct {
		copied  int64
		skipped int
		err     error
	}
	results := make(chan result, workers)
	share, start, acc, started := total/uint64(workers), 0, uint64(0), 0
	for i := range spans {
		acc += uint64(len(spans[i].buf))
		if acc >= share || i == len(spans)-1 {
			part := spans[start : i+1]
			go func() {
				c, s, e := readMemory(ctx, pid, part, pageSize)
				results <- result{c, s, e}
			}()
			started++
			start, acc = i+1, 0
		}
	}
	for range started {
		r := <-results
		copied += r.copied
		skipped += r.skipped
		err = errors.Join(err, r.err)
	}
	return copied, skipped, err
}

// waitStopped waits for tid to reach a ptrace stop after PTRACE_INTERRUPT.
// alive is false if the thread exited instead. A thread caught in
// signal-delivery-stop is stopped as well; its signal is kept for detach.
func waitStopped(ctx context.Context, tid int) (t *threadRegs, alive bool, err error) {
	t = &threadRegs{tid: tid}
	// Poll rather than block, so a thread stuck in uninterruptible sleep
	// (D state) cannot hang the capture: give up after a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return nil, false, nil
		case err != nil:
			return nil, false, fmt.Errorf("wait: %w", err)
		}
		if wpid == tid {
			switch {
			case ws.Exited(), ws.Signaled():
				return nil, false, nil
			case ws.Stopped():
				sig := ws.StopSignal()
				if sig != unix.SIGTRAP || ws.TrapCause() != unix.PTRACE_EVENT_STOP {
					// Signal-delivery-stop: re-inject it on detach.
					if sig != unix.SIGTRAP {
						t.sig = sig
					}
				}
				return t, true, nil
			}
			continue
		}
		if time.Now().After(deadline) {
			return nil, false, errors.New("did not stop within 10s (uninterruptible sleep?)")
		}
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		time.Sleep(20 * time.Microsecond)
	}
}

func ptraceErr(pid, tid int, err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		if tracer := tracerPID(pid); tracer > 0 {
			return fmt.Errorf("capture: pid %d: %w by pid %d (a debugger or strace?); detach it first", pid, ErrTraced, tracer)
		}
		return fmt.Errorf("capture: pid %d: ptrace thread %d: %w: %w", pid, tid, ErrPermission, err)
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("capture: pid %d: %w", pid, ErrNoProcess)
	}
	return fmt.Errorf("capture: pid %d: ptrace thread %d: %w", pid, tid, err)
}

// ptraceDetach resumes tid, delivering sig if it is not 0.
func ptraceDetach(tid int, sig syscall.Signal) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(tid), 0, uintptr(sig), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ptraceGetFPRegs reads the x87/SSE state (user_fpregs_struct).
func ptraceGetFPRegs(tid int, out *[512]byte) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETFPREGS, uintptr(tid), 0, uintptr(unsafe.Pointer(&out[0])), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// readMemory fills every span from the process with process_vm_readv,
// up to 1024 spans per call. A page that cannot be read (unmapped under
// us, or a hardware-poisoned page) is left zero and counted in skipped.
func readMemory(ctx context.Context, pid int, spans []span, pageSize uint64) (copied int64, skipped int, err error) {
	const maxIov = 1024
	local := make([]unix.Iovec, 0, maxIov)
	remote := make([]unix.RemoteIovec, 0, maxIov)
	i, off := 0, uint64(0) // next byte to read: spans[i].buf[off]
	for i < len(spans) {
		if err := ctx.Err(); err != nil {
			return copied, skipped, fmt.Errorf("capture: %w", err)
		}
		local, remote = local[:0], remote[:0]
		for j := i; j < len(spans) && len(local) < maxIov; j++ {
			o := uint64(0)
			if j == i {
				o = off
			}
			b := spans[j].buf[o:]
			if len(b) == 0 {
				continue
			}
			local = append(local, unix.Iovec{Base: &b[0], Len: uint64(len(b))})
			remote = append(remote, unix.RemoteIovec{Base: uintptr(spans[j].addr + o), Len: len(b)})
		}
		if len(local) == 0 {
			break
		}
		n, rerr := unix.ProcessVMReadv(pid, local, remote, 0)
		if rerr != nil && !errors.Is(rerr, unix.EFAULT) {
			if errors.Is(rerr, unix.ESRCH) {
				return copied, skipped, fmt.Errorf("capture: pid %d: %w", pid, ErrNoProcess)
			}
			if errors.Is(rerr, unix.EPERM) {
				return copied, skipped, fmt.Errorf("capture: pid %d: process_vm_readv: %w: %w", pid, ErrPermission, rerr)
			}
			return copied, skipped, fmt.Errorf("capture: pid %d: process_vm_readv: %w", pid, rerr)
		}
		if n < 0 {
			n = 0
		}
		copied += int64(n)
		// Advance past what was read.
		rest := uint64(n)
		for rest > 0 && i < len(spans) {
			avail := uint64(len(spans[i].buf)) - off
			if rest < avail {
				off += rest
				rest = 0
				break
			}
			rest -= avail
			i, off = i+1, 0
		}
		if i < len(spans) && (rerr != nil || uint64(n) < totalLen(remote)) {
			// Stopped short: the page at the cursor is unreadable. Skip it.
			next := (off/pageSize + 1) * pageSize
			skipped++
			if next >= uint64(len(spans[i].buf)) {
				i, off = i+1, 0
			} else {
				off = next
			}
		}
	}
	return copied, skipped, nil
}

func totalLen(iov []unix.RemoteIovec) uint64 {
	var t uint64
	for _, v := range iov {
		t += uint64(v.Len)
	}
	return t
}

// arena hands out slices of large pre-faulted anonymous mappings, outside
// the Go heap, so copying gigabytes neither triggers GC nor faults pages
// in while the target is stopped.
type arena struct {
	chunks [][]byte
	cur    []byte
}

func newArena(size uint64) (*arena, error) {
	a := &arena{}
	if err := a.grow(size, true); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *arena) grow(size uint64, prefault bool) error {
	const huge = 2 << 20
	size = (size + huge - 1) / huge * huge
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return err
	}
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // fewer faults and TLB misses; optional
	if prefault {
		if unix.Madvise(b, unix.MADV_POPULATE_WRITE) != nil { // Linux 5.14+
			for i := 0; i < len(b); i += os.Getpagesize() {
				b[i] = 0
			}
		}
	}
	a.chunks = append(a.chunks, b)
	a.cur = b
	return nil
}

// alloc returns n bytes. If the pre-faulted space is exhausted (the process
// grew between the estimate and the stop) it maps more, without pre-faulting.
func (a *arena) alloc(n uint64) []byte {
	if uint64(len(a.cur)) < n {
		if err := a.grow(max(n, 64<<20), false); err != nil {
			// Out of address space: fall back to the Go heap.
			return make([]byte, n)
		}
	}
	b := a.cur[:n:n]
	a.cur = a.cur[n:]
	return b
}

func (a *arena) free() {
	for _, c := range a.chunks {
		unix.Munmap(c)
	}
	a.chunks, a.cur = nil, nil
}
