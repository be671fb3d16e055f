package capture

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Ptrace: stopping every thread, reading registers, and resuming. It is its
// own phase because it is the only part that pauses the target, and every
// request must come from the OS thread that seized the tracee (captureNative
// locks it); memory reads do not need ptrace at all (memread).

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
