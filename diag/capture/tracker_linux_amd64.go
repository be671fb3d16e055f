package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Write tracking for pre-copy.
//
// The kernel offers two ways for one process to learn which pages another
// wrote: soft-dirty bits (/proc/PID/clear_refs, pagemap bit 55), which
// need CONFIG_MEM_SOFT_DIRTY, often left out (it is on the machines this
// was built on: writing clear_refs succeeds and no page is ever reported
// dirty), and cannot be read and reset in one step without stopping the
// process; and, since Linux 6.7, an asynchronous write-protecting
// userfaultfd with the PAGEMAP_SCAN ioctl on /proc/PID/pagemap, which
// reports the pages written since the last scan and write-protects them
// again atomically, page by page, while the process runs
// (Documentation/admin-guide/mm/pagemap.rst, userfaultfd.rst). The second
// is used. A userfaultfd belongs to the memory of the process that
// creates it, so the tracker makes the target call userfaultfd(2) once,
// during a short stop (the way gdb's `call` or CRIU's parasite run code in
// a tracee), takes the descriptor with pidfd_getfd(2), closes the
// target's copy, and from then on works from this process. Async mode
// means a write to a protected page is resolved by the kernel at once
// (one minor fault), never waiting for us. Closing our descriptor
// unregisters everything and drops the protection.

// Linux UAPI values (include/uapi/linux/userfaultfd.h, fs.h).
const (
	uffdAPI                = 0xAA
	uffdioAPI              = 0xC018AA3F // _IOWR(0xAA, 0x3F, struct uffdio_api)
	uffdioRegister         = 0xC020AA00 // _IOWR(0xAA, 0x00, struct uffdio_register)
	uffdRegisterModeWP     = 1 << 1
	uffdFeatureWPUnpopulat = 1 << 13
	uffdFeatureWPAsync     = 1 << 15

	pagemapScan       = 0xC0606610 // _IOWR('f', 16, struct pm_scan_arg)
	pmScanWPMatching  = 1 << 0
	pageIsWPAllowed   = 1 << 0
	pageIsWritten     = 1 << 1
	pmScanArgSize     = 96
	pmScanVecRegions  = 4096
	syscallInsnAMD64  = "\x0f\x05"
	injectStepTimeout = 10 * time.Second
)

type pmScanArg struct {
	size, flags, start, end, walkEnd, vec, vecLen, maxPages uint64
	categoryInverted, categoryMask, categoryAnyofMask       uint64
	returnMask                                              uint64
}

type pageRegionC struct{ start, end, categories uint64 }

// tracker holds a write-protecting userfaultfd of the target.
type tracker struct {
	uffd       int
	pagemap    uintptr // fd of the copier's /proc/PID/pagemap
	registered map[region]bool
	vec        []pageRegionC
}

// openTracker sets up write tracking of c's process; it stops the process
// briefly (counted in c's pauses). The error says why tracking is not
// available.
func openTracker(ctx context.Context, c *copier) (*tracker, error) {
	if c.noTracking != "" {
		return nil, errors.New(c.noTracking)
	}
	pidfd, err := unix.PidfdOpen(c.pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("capture: pid %d: %w", c.pid, ErrNoProcess)
		}
		return nil, fmt.Errorf("write tracking: pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)

	st, err := stopAll(ctx, c.pid)
	if err != nil {
		return nil, err
	}
	uffd, err := func() (int, error) {
		tfd, err := st.injectSyscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC|unix.O_NONBLOCK)
		if err != nil {
			return -1, err
		}
		if e := int64(tfd); e < 0 {
			return -1, fmt.Errorf("userfaultfd(2) in the process failed: %w", unix.Errno(-e))
		}
		fd, gerr := unix.PidfdGetfd(pidfd, int(tfd), 0)
		// Leave the process's descriptor table as it was, whatever happened.
		ret, cerr := st.injectSyscall(unix.SYS_CLOSE, tfd)
		if cerr == nil && int64(ret) < 0 {
			cerr = unix.Errno(-int64(ret))
		}
		if gerr != nil {
			return -1, fmt.Errorf("pidfd_getfd: %w", gerr)
		}
		if cerr != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("closing the process's copy of the userfaultfd: %w", cerr)
		}
		return fd, nil
	}()
	d, rerr := st.resume()
	c.addPause(d)
	if err = errors.Join(err, rerr); err != nil {
		if uffd >= 0 {
			unix.Close(uffd)
		}
		return nil, fmt.Errorf("write tracking: %w", err)
	}
	tr := &tracker{uffd: uffd, pagemap: c.pm.f.Fd(), registered: map[region]bool{}, vec: make([]pageRegionC, pmScanVecRegions)}
	api := [3]uint64{uffdAPI, uffdFeatureWPAsync | uffdFeatureWPUnpopulat, 0}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(uffd), uffdioAPI, uintptr(unsafe.Pointer(&api))); e != 0 {
		tr.Close()
		return nil, fmt.Errorf("write tracking: this kernel lacks asynchronous userfaultfd write-protection (Linux 6.7+): UFFDIO_API: %w", e)
	}
	return tr, nil
}

// Close ends tracking: the kernel unregisters every range and removes the
// write protection.
func (t *tracker) Close() error { return unix.Close(t.uffd) }

// tracked reports whether pages of m are tracked (registered for
// write-protection): anonymous memory and private writable file data.
func tracked(m mapping) bool {
	p := policy(m)
	return m.writable() && (p == dumpPopulated || p == dumpAll)
}

// register asks for write tracking of the mappings not yet registered.
// A mapping the kernel refuses stays untracked: its pages always count as
// written (see clean).
func (t *tracker) register(maps []mapping) {
	for _, m := range maps {
		r := region{m.start, m.end}
		if !tracked(m) || t.registered[r] {
			continue
		}
		reg := [4]uint64{m.start, m.size(), uffdRegisterModeWP, 0}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(t.uffd), uffdioRegister, uintptr(unsafe.Pointer(&reg))); e == 0 {
			t.registered[r] = true
		}
	}
}

// clean returns, sorted, the pages of maps known not written since the
// previous call, and write-protects the written ones again so the next
// call sees later writes. Pages in mappings not tracked (registration
// refused, or created since) are never clean.
func (t *tracker) clean(maps []mapping) ([]region, error) {
	var out []region
	for _, m := range maps {
		if !tracked(m) {
			continue
		}
		// Written pages, write-protected again in the same step. The
		// kernel silently skips mappings not registered, so ...
		written, err := t.scan(m, pmScanWPMatching, 0, pageIsWritten, pageIsWritten)
		if err != nil {
			return nil, err
		}
		// ... ask for those separately: pages NOT write-protect-allowed.
		untracked, err := t.scan(m, 0, pageIsWPAllowed, pageIsWPAllowed, pageIsWPAllowed)
		if err != nil {
			return nil, err
		}
		out = appendClean(out, region{m.start, m.end}, mergeRegions(written, untracked))
	}
	return out, nil
}

// scan runs PAGEMAP_SCAN over m and returns the matching regions, sorted.
func (t *tracker) scan(m mapping, flags, inverted, mask, ret uint64) ([]region, error) {
	var out []region
	for start := m.start; start < m.end; {
		arg := pmScanArg{
			size: pmScanArgSize, flags: flags, start: start, end: m.end,
			vec: uint64(uintptr(unsafe.Pointer(&t.vec[0]))), vecLen: uint64(len(t.vec)),
			categoryInverted: inverted, categoryMask: mask, returnMask: ret,
		}
		n, _, e := unix.Syscall(unix.SYS_IOCTL, t.pagemap, pagemapScan, uintptr(unsafe.Pointer(&arg)))
		if e != 0 {
			if e == unix.ENOENT || e == unix.ESRCH {
				return nil, fmt.Errorf("capture: %w", ErrNoProcess)
			}
			return nil, fmt.Errorf("write tracking: PAGEMAP_SCAN %#x-%#x: %w", start, m.end, e)
		}
		for _, r := range t.vec[:n] {
			out = append(out, region{r.start, r.end})
		}
		if arg.walkEnd <= start || arg.walkEnd >= m.end {
			break
		}
		start = arg.walkEnd
	}
	return out, nil
}

// mergeRegions merges two sorted region lists into one sorted list of
// non-overlapping regions.
func mergeRegions(a, b []region) []region {
	all := make([]region, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var r region
		if j >= len(b) || (i < len(a) && a[i].start <= b[j].start) {
			r, i = a[i], i+1
		} else {
			r, j = b[j], j+1
		}
		if n := len(all); n > 0 && r.start <= all[n-1].end {
			all[n-1].end = max(all[n-1].end, r.end)
			continue
		}
		all = append(all, r)
	}
	return all
}

// appendClean appends to out the parts of span not covered by dirty
// (sorted, non-overlapping).
func appendClean(out []region, span region, dirty []region) []region {
	at := span.start
	for _, d := range dirty {
		if d.end <= at {
			continue
		}
		if d.start >= span.end {
			break
		}
		if d.start > at {
			out = append(out, region{at, d.start})
		}
		at = max(at, d.end)
	}
	if at < span.end {
		out = append(out, region{at, span.end})
	}
	return out
}

// injectSyscall makes one stopped thread of the process run the system
// call nr(args...) and returns its raw result (a negative errno on
// failure), leaving the thread's registers as they were. It points the
// thread at a syscall instruction already in the process (one the thread
// was stopped after, or in the vDSO), single-steps it and restores the
// registers; orig_rax = -1 keeps the kernel from restarting the system
// call the thread was interrupted in until its own registers are back.
func (s *stopped) injectSyscall(nr uintptr, args ...uintptr) (uintptr, error) {
	tid, insn, err := s.syscallSite()
	if err != nil {
		return 0, err
	}
	t := s.attached[tid]
	var saved unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &saved); err != nil {
		return 0, fmt.Errorf("registers of thread %d: %w", tid, err)
	}
	r := saved
	r.Rax, r.Orig_rax, r.Rip = uint64(nr), ^uint64(0), insn
	regs := []*uint64{&r.Rdi, &r.Rsi, &r.Rdx, &r.R10, &r.R8, &r.R9}
	for i, a := range args {
		*regs[i] = uint64(a)
	}
	if err := unix.PtraceSetRegs(tid, &r); err != nil {
		return 0, fmt.Errorf("set registers of thread %d: %w", tid, err)
	}
	defer unix.PtraceSetRegs(tid, &saved)
	for {
		if err := unix.PtraceSingleStep(tid); err != nil {
			return 0, fmt.Errorf("single-step thread %d: %w", tid, err)
		}
		sig, err := waitTrap(tid)
		if err != nil {
			return 0, fmt.Errorf("thread %d: %w", tid, err)
		}
		if err := unix.PtraceGetRegs(tid, &r); err != nil {
			return 0, fmt.Errorf("registers of thread %d: %w", tid, err)
		}
		if r.Rip != insn || sig == unix.SIGTRAP {
			return uintptr(r.Rax), nil
		}
		// A signal arrived before the instruction ran: keep it for
		// detach and step again.
		t.sig = sig
	}
}

// waitTrap waits for a stopped-and-resumed thread to stop again.
func waitTrap(tid int) (unix.Signal, error) {
	deadline := time.Now().Add(injectStepTimeout)
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait: %w", err)
		}
		if wpid == tid {
			if !ws.Stopped() {
				return 0, fmt.Errorf("exited during a system call made for the capture: %w", ErrNoProcess)
			}
			return ws.StopSignal(), nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("did not stop after one instruction within 10s")
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// syscallSite finds a thread to borrow (one with no pending signal) and
// the address of a syscall instruction: the one before the thread's
// instruction pointer if it was stopped in a system call, else one in
// the vDSO.
func (s *stopped) syscallSite() (tid int, insn uint64, err error) {
	tid = -1
	var rip []uint64
	for id, t := range s.attached {
		if t == nil || t.sig != 0 {
			continue
		}
		var r unix.PtraceRegs
		if unix.PtraceGetRegs(id, &r) != nil {
			continue
		}
		if tid < 0 || id == s.pid {
			tid = id
		}
		if int64(r.Orig_rax) >= 0 && r.Rip >= 2 {
			rip = append(rip, r.Rip-2)
		}
	}
	if tid < 0 {
		return 0, 0, errors.New("no thread free to run a system call")
	}
	var two [2]byte
	for _, a := range rip {
		if readRemote(s.pid, a, two[:]) == nil && string(two[:]) == syscallInsnAMD64 {
			return tid, a, nil
		}
	}
	maps, err := parseMaps(s.pid)
	if err != nil {
		return 0, 0, procErr(s.pid, err)
	}
	for _, m := range maps {
		if m.path != "[vdso]" {
			continue
		}
		code := make([]byte, m.size())
		if err := readRemote(s.pid, m.start, code); err != nil {
			return 0, 0, fmt.Errorf("reading the vDSO: %w", err)
		}
		if i := bytes.Index(code, []byte(syscallInsnAMD64)); i >= 0 {
			return tid, m.start + uint64(i), nil
		}
	}
	return 0, 0, errors.New("no syscall instruction found in the process")
}

// readRemote reads len(b) bytes at addr of pid.
func readRemote(pid int, addr uint64, b []byte) error {
	n, err := unix.ProcessVMReadv(pid, []unix.Iovec{{Base: &b[0], Len: uint64(len(b))}}, []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}, 0)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("short read at %#x", addr)
	}
	return nil
}
