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

// nativeOptions configures captureNative.
type nativeOptions struct {
	pid     int
	preCopy bool
	// noTracking, if set, is the reason write tracking is treated as
	// unavailable (tests of the fallback).
	noTracking string
	inStop     func(tids []int) error // see Options.inStop
}

// Pre-copy tuning: live rounds cost the process no stop, only the
// capture's time and a write fault per page it writes meanwhile.
const (
	maxPreCopyRounds = 5    // live copy passes, the first full one included
	smallDirtyPages  = 2048 // 8 MiB: little enough to leave to the final stop
)

// captureNative copies pid's memory, stopping its threads as little as it
// can, and writes the core. See the package doc.
func captureNative(ctx context.Context, o nativeOptions, corePath string, m *Meta) (*NativeStats, error) {
	pid := o.pid
	if pid == os.Getpid() {
		return nil, errors.New("capture: the native capturer cannot capture its own process; use --method gcore")
	}
	snap := &snapshot{pid: pid, pageSize: uint64(os.Getpagesize())}
	var err error
	if snap.auxv, err = os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid)); err != nil {
		return nil, procErr(pid, err)
	}
	if snap.stat, err = readProcStat(pid); err != nil {
		return nil, procErr(pid, err)
	}
	snap.cmdline = m.Cmdline

	// Size and pre-fault the copy buffer before copying anything, so
	// neither the live rounds nor the pause take page faults in our own
	// memory.
	estimate, err := estimateCopy(pid, snap.pageSize)
	if err != nil {
		return nil, procErr(pid, err)
	}
	ar, err := newArena(estimate + estimate/8 + 8<<20)
	if err != nil {
		return nil, fmt.Errorf("capture: copy buffer: %w", err)
	}
	defer ar.free()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	pm, err := openPagemap(pid, snap.pageSize)
	if err != nil {
		return nil, procErr(pid, err)
	}
	defer pm.Close()

	// Every ptrace request must come from the thread that seized the
	// tracee, and the stops happen at several points below.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	c := &copier{pid: pid, pageSize: snap.pageSize, ar: ar, pm: pm, stats: &NativeStats{}, noTracking: o.noTracking, inStop: o.inStop}
	defer func() {
		if c.tr != nil {
			c.tr.Close()
		}
	}()
	if o.preCopy {
		if err := c.tryPreCopy(ctx); err != nil {
			return nil, err
		}
	}
	err = c.finalStop(ctx, snap, m)
	if c.pause > 0 {
		m.PauseMS = float64(c.pause.Microseconds()) / 1000
	}
	c.stats.LongestPauseMS = float64(c.longest.Microseconds()) / 1000
	if err != nil {
		return nil, err
	}
	if snap.skipped > 0 {
		m.Warnings = append(m.Warnings, fmt.Sprintf("%d pages could not be read and are zero in the core", snap.skipped))
	}
	if err := writeCore(corePath, snap); err != nil {
		os.Remove(corePath)
		return nil, fmt.Errorf("capture: writing core: %w", err)
	}
	m.Method = MethodNative
	m.Threads = len(snap.threads)
	m.MemoryBytesCopied = snap.copied
	return c.stats, nil
}

// estimateCopy returns roughly how many bytes the copy will take, from the
// current maps and pagemap.
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

// copier builds the image of the process's memory, possibly over several
// rounds. Its store holds, per mapping, the pages copied so far; a page in
// the store is valid as long as its soft-dirty bit stays clear, because
// every copy into the store starts after the soft-dirty bits were last
// cleared (see tryPreCopy).
type copier struct {
	pid      int
	pageSize uint64
	ar       *arena
	pm       *pagemap
	store    []segment
	// bad holds pages whose live copy failed (unmapped or unreadable at
	// that moment): whatever their soft-dirty bit says, they are copied
	// again.
	bad     map[uint64]bool
	stats   *NativeStats
	inStop  func(tids []int) error // see Options.inStop
	pause   time.Duration          // total time the threads were stopped
	longest time.Duration          // longest single stop
	// tr tracks writes while pre-copying; nil when pre-copy is off or
	// unavailable.
	tr *tracker
	// noTracking makes openTracker fail with this reason (tests of the
	// fallback).
	noTracking string
}

// pageScan is the state of the address space at one moment: every mapping
// to put in the core, with the pagemap entries of the pages it wants.
type pageScan struct {
	maps []mapScan
	ents []uint64
}

type mapScan struct {
	m    mapping
	pol  dumpPolicy
	runs []pageRun
}

// scan reads maps and the pagemap entries of the pages the core wants:
// populated pages of anonymous memory, every page of small mappings
// dumped whole, the first page of mapped files.
//
// Every entry's pageDirty bit is set, except for the pages in clean
// (sorted, non-overlapping regions known unwritten since their last copy).
func (c *copier) scan(maps []mapping, clean []region) (*pageScan, error) {
	var err error
	sc := &pageScan{maps: make([]mapScan, 0, len(maps))}
	for _, mp := range maps {
		pol := policy(mp)
		if pol == dumpOmit {
			continue
		}
		ms := mapScan{m: mp, pol: pol}
		add := func(r pageRun) { ms.runs = append(ms.runs, r) }
		switch pol {
		case dumpAll:
			sc.ents, err = c.pm.collect(mp.start, mp.end, true, sc.ents, add)
		case dumpHeader:
			sc.ents, err = c.pm.collect(mp.start, mp.start+c.pageSize, true, sc.ents, add)
		case dumpPopulated:
			sc.ents, err = c.pm.collect(mp.start, mp.end, false, sc.ents, add)
		}
		if err != nil {
			return nil, procErr(c.pid, err)
		}
		sc.maps = append(sc.maps, ms)
	}
	markDirty(sc, clean, c.pageSize)
	return sc, nil
}

// region is a range of pages [start, end).
type region struct{ start, end uint64 }

// markDirty sets pageDirty on the entries of sc outside clean and clears
// it inside.
func markDirty(sc *pageScan, clean []region, ps uint64) {
	d := 0
	for _, ms := range sc.maps {
		for _, r := range ms.runs {
			for i := r.lo; i < r.hi; i++ {
				addr := r.addr + uint64(i-r.lo)*ps
				for d < len(clean) && clean[d].end <= addr {
					d++
				}
				if d < len(clean) && clean[d].start <= addr {
					sc.ents[i] &^= pageDirty
				} else {
					sc.ents[i] |= pageDirty
				}
			}
		}
	}
}

// plan compares sc with the store. It returns the spans to copy (pages
// the store lacks, pages written since they were copied) and their page
// count. Unless dry, it also replaces the store with the pages sc wants,
// sharing the buffers of pages already held and allocating the new ones,
// so pages no longer mapped or populated drop out.
func (c *copier) plan(sc *pageScan, dry bool) (copies []span, pages int64) {
	ps := c.pageSize
	var old []span
	for _, seg := range c.store {
		old = append(old, seg.spans...)
	}
	cur := 0
	var store []segment
	for _, ms := range sc.maps {
		seg := segment{m: ms.m}
		switch ms.pol {
		case dumpAll, dumpPopulated:
			seg.filesz = ms.m.size()
		case dumpHeader:
			seg.filesz = ps
		}
		for _, r := range ms.runs {
			ents := sc.ents[r.lo:r.hi]
			for i := 0; i < len(ents); {
				addr := r.addr + uint64(i)*ps
				for cur < len(old) && old[cur].addr+uint64(len(old[cur].buf)) <= addr {
					cur++
				}
				left := uint64(len(ents) - i)
				if cur < len(old) && old[cur].addr <= addr {
					// Held already: keep it unless written since.
					o := old[cur]
					off := addr - o.addr
					n := min(left, (uint64(len(o.buf))-off)/ps)
					if !dry {
						seg.spans = appendSpan(seg.spans, addr, o.buf[off:off+n*ps])
					}
					for j := range n {
						a := addr + j*ps
						if ents[i+int(j)]&pageDirty != 0 || (len(c.bad) > 0 && c.bad[a]) {
							pages++
							if !dry {
								copies = appendSpan(copies, a, o.buf[off+j*ps:off+(j+1)*ps])
							}
						}
					}
					i += int(n)
					continue
				}
				// New to the store, up to the next page it holds.
				n := left
				if cur < len(old) {
					n = min(n, (old[cur].addr-addr)/ps)
				}
				pages += int64(n)
				if !dry {
					b := c.ar.alloc(n * ps)
					seg.spans = appendSpan(seg.spans, addr, b)
					copies = appendSpan(copies, addr, b)
				}
				i += int(n)
			}
		}
		store = append(store, seg)
	}
	if !dry {
		c.store = store
		c.bad = nil
	}
	return copies, pages
}

// appendSpan appends [addr, addr+len(b)) backed by b to list, extending
// the last span instead when both the addresses and the buffers are
// contiguous (b directly follows it in the same allocation).
func appendSpan(list []span, addr uint64, b []byte) []span {
	if n := len(list); n > 0 && len(b) > 0 {
		l := &list[n-1]
		ln := len(l.buf)
		if l.addr+uint64(ln) == addr && cap(l.buf)-ln >= len(b) && &l.buf[:ln+1][ln] == &b[0] {
			l.buf = l.buf[:ln+len(b)]
			return list
		}
	}
	return append(list, span{addr: addr, buf: b})
}

// copyLive copies spans while the process runs and remembers the pages it
// could not read, so the next round copies them again.
func (c *copier) copyLive(ctx context.Context, copies []span) error {
	_, skipped, err := readMemoryParallel(ctx, c.pid, copies, c.pageSize)
	if err != nil {
		return err
	}
	for _, a := range skipped {
		if c.bad == nil {
			c.bad = map[uint64]bool{}
		}
		c.bad[a] = true
	}
	return nil
}

// tryPreCopy copies memory while the process runs (iterative pre-copy, as
// CRIU and VM live migration do), leaving only what is written meanwhile
// for the final stop. Writes are tracked with a write-protecting
// userfaultfd (see tracker): every scan for written pages re-protects
// them in the same step, so:
//
//   - round 1 write-protects every page, then copies every wanted page;
//   - each later round collects (and re-protects) the pages written since
//     the previous scan, then copies them and any page new to the store;
//   - the final stop copies the pages written since the last scan, those
//     new to the store, and everything in mappings not tracked.
//
// Every copy of a page starts after the scan that last protected it, so a
// page not written by the final stop still holds what was copied. Rounds
// go on while the written set shrinks and is worth copying live. If write
// tracking is not available, or pre-copy fails for a reason the
// stop-and-copy path would not hit, the store is dropped and the reason
// recorded; only errors that would fail the final stop as well are
// returned.
func (c *copier) tryPreCopy(ctx context.Context) error {
	fatal := func(err error) bool {
		return ctx.Err() != nil || errors.Is(err, ErrNoProcess) || errors.Is(err, ErrPermission) || errors.Is(err, ErrTraced)
	}
	tr, err := openTracker(ctx, c)
	if err != nil {
		if fatal(err) {
			return err
		}
		c.stats.PreCopyUnavailableReason = err.Error()
		return nil
	}
	c.tr = tr
	err = c.preCopy(ctx)
	if err == nil {
		return nil
	}
	if fatal(err) {
		return err
	}
	c.stats.PreCopyUnavailableReason = "pre-copy failed, copied everything while stopped: " + err.Error()
	c.store, c.bad, c.tr = nil, nil, nil
	c.stats.PagesCopiedLive, c.stats.PreCopyRounds = 0, 0
	tr.Close()
	return nil
}

func (c *copier) preCopy(ctx context.Context) error {
	last := int64(-1)
	for c.stats.PreCopyRounds < maxPreCopyRounds {
		sc, err := c.trackedScan()
		if err != nil {
			return err
		}
		copies, n := c.plan(sc, false)
		if err := c.copyLive(ctx, copies); err != nil {
			return err
		}
		c.stats.PreCopyRounds++
		c.stats.PagesCopiedLive += n
		if last >= 0 && (n <= smallDirtyPages || n*10 >= last*9) {
			break // small enough for the stop, or not shrinking
		}
		last = n
	}
	return nil
}

// trackedScan registers new mappings for tracking, collects (and
// re-protects) the pages written since the last call, then reads maps
// and pagemap, and marks in the entries the pages to copy again: those
// written and those in mappings not tracked.
func (c *copier) trackedScan() (*pageScan, error) {
	maps, err := parseMaps(c.pid)
	if err != nil {
		return nil, procErr(c.pid, err)
	}
	if c.tr == nil {
		return c.scan(maps, nil) // nothing known clean
	}
	c.tr.register(maps)
	clean, err := c.tr.clean(maps)
	if err != nil {
		return nil, err
	}
	// Mappings may have changed since maps was read: read them again
	// after the written pages were collected. A page mapped in between
	// is new to the store, or outside the ranges clean covers.
	if maps, err = parseMaps(c.pid); err != nil {
		return nil, procErr(c.pid, err)
	}
	return c.scan(maps, clean)
}

func (c *copier) addPause(d time.Duration) {
	c.pause += d
	c.longest = max(c.longest, d)
	c.stats.Stops++
}

// finalStop stops every thread, reads their registers, copies what the
// store lacks or what was written since it was copied, and resumes.
func (c *copier) finalStop(ctx context.Context, snap *snapshot, m *Meta) (err error) {
	m.Time = time.Now().UTC()
	st, err := stopAll(ctx, c.pid)
	if err != nil {
		return err
	}
	defer func() {
		d, rerr := st.resume()
		c.addPause(d)
		if err == nil {
			err = rerr
		}
	}()
	if c.inStop != nil {
		if err := c.inStop(slices.Clone(st.order)); err != nil {
			return err
		}
	}
	if snap.threads, err = st.registers(); err != nil {
		return err
	}
	sc, err := c.trackedScan()
	if err != nil {
		return err
	}
	copies, n := c.plan(sc, false)
	_, skipped, err := readMemoryParallel(ctx, c.pid, copies, c.pageSize)
	if err != nil {
		return err
	}
	c.stats.PagesCopiedPaused = n
	snap.skipped = len(skipped)
	snap.segments = c.store
	for _, seg := range c.store {
		for _, sp := range seg.spans {
			snap.copied += int64(len(sp.buf))
		}
	}
	return nil
}

// stopped is a process whose threads are all in ptrace-stop.
type stopped struct {
	pid      int
	attached map[int]*threadRegs // nil value: seized, not yet stopped
	order    []int
	start    time.Time
}

// stopAll seizes and stops every thread of pid. On error, the threads
// already stopped are resumed. The caller must be locked to its OS thread
// until resume.
func stopAll(ctx context.Context, pid int) (_ *stopped, err error) {
	s := &stopped{pid: pid, attached: map[int]*threadRegs{}}
	defer func() {
		if err != nil {
			s.resume()
		}
	}()
	// Go starts threads at any time, so attach until a pass over
	// /proc/PID/task finds none we have not stopped; once every thread
	// is stopped none can create another.
	for pass := 0; ; pass++ {
		tids, err := listTasks(pid)
		if err != nil {
			return nil, procErr(pid, err)
		}
		var fresh []int
		for _, tid := range tids {
			if _, ok := s.attached[tid]; !ok {
				fresh = append(fresh, tid)
			}
		}
		if len(fresh) == 0 {
			return s, nil
		}
		if pass > 1000 {
			return nil, fmt.Errorf("capture: pid %d keeps creating threads; could not stop them all", pid)
		}
		for _, tid := range fresh {
			if s.start.IsZero() {
				s.start = time.Now()
			}
			if err := unix.PtraceSeize(tid); err != nil {
				if errors.Is(err, unix.ESRCH) && tid != pid {
					continue // the thread exited meanwhile
				}
				return nil, ptraceErr(pid, tid, err)
			}
			s.attached[tid] = nil
			s.order = append(s.order, tid)
			if err := unix.PtraceInterrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				return nil, ptraceErr(pid, tid, err)
			}
		}
		for _, tid := range fresh {
			if _, ok := s.attached[tid]; !ok {
				continue
			}
			t, alive, err := waitStopped(ctx, tid)
			if err != nil {
				return nil, fmt.Errorf("capture: pid %d thread %d: %w", pid, tid, err)
			}
			if !alive {
				if tid == pid {
					return nil, fmt.Errorf("capture: pid %d exited while being captured: %w", pid, ErrNoProcess)
				}
				delete(s.attached, tid)
				continue
			}
			s.attached[tid] = t
		}
	}
}

// resume detaches from every thread, handing back any signal it was about
// to receive, and returns how long the process was stopped.
func (s *stopped) resume() (time.Duration, error) {
	var detachErr error
	for _, tid := range s.order {
		if _, ok := s.attached[tid]; !ok {
			continue
		}
		var sig syscall.Signal
		if t := s.attached[tid]; t != nil {
			sig = t.sig
		}
		if e := ptraceDetach(tid, sig); e != nil && !errors.Is(e, unix.ESRCH) {
			detachErr = errors.Join(detachErr, fmt.Errorf("detach thread %d: %w", tid, e))
		}
	}
	s.order = nil
	var d time.Duration
	if !s.start.IsZero() {
		d = time.Since(s.start)
	}
	if detachErr != nil {
		return d, fmt.Errorf("capture: %w", detachErr)
	}
	return d, nil
}

// registers reads every stopped thread's registers, the thread running
// main (tid == pid) first: delve and gdb make the first NT_PRSTATUS the
// current thread.
func (s *stopped) registers() ([]threadRegs, error) {
	tids := make([]int, 0, len(s.attached))
	for tid, t := range s.attached {
		if t != nil {
			tids = append(tids, tid)
		}
	}
	slices.Sort(tids)
	slices.SortStableFunc(tids, func(a, b int) int {
		switch {
		case a == s.pid && b != s.pid:
			return -1
		case b == s.pid && a != s.pid:
			return 1
		}
		return 0
	})
	threads := make([]threadRegs, 0, len(tids))
	for _, tid := range tids {
		t := s.attached[tid]
		if err := unix.PtraceGetRegs(tid, &t.regs); err != nil {
			return nil, fmt.Errorf("capture: registers of thread %d: %w", tid, err)
		}
		t.fpValid = ptraceGetFPRegs(tid, &t.fpregs) == nil
		threads = append(threads, *t)
	}
	return threads, nil
}

// readMemoryParallel splits large copies across CPUs: process_vm_readv
// needs no ptrace relationship, so any thread may run it, and the copy is
// bound by page-table walks and memcpy, which scale with cores.
func readMemoryParallel(ctx context.Context, pid int, spans []span, pageSize uint64) (copied int64, skipped []uint64, err error) {
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
		skipped []uint64
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
		skipped = append(skipped, r.skipped...)
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
// us, or a hardware-poisoned page) is left zero and its address is
// returned in skipped.
func readMemory(ctx context.Context, pid int, spans []span, pageSize uint64) (copied int64, skipped []uint64, err error) {
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
			skipped = append(skipped, (spans[i].addr+off)/pageSize*pageSize)
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
