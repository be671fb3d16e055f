package capture

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wardgate/wardgate/diag/analyze"
)

// TestAnalyzeThreadEnteringSignalHandler: a capture can stop a thread
// while the kernel delivers a signal to it (the runtime's preemption
// SIGURG arrives every 10ms to a goroutine that runs long), at the first
// instruction of runtime.sigtramp. delve alone shows that goroutine as
// sigtramp over garbage; the report must show the function it interrupted.
// The test makes the state on purpose: with every thread stopped, it sends
// SIGURG to the thread running busyLoop and single-steps it into the
// handler (PTRACE_SINGLESTEP with a signal stops at the handler's first
// instruction), then lets the capture read it.
func TestAnalyzeThreadEnteringSignalHandler(t *testing.T) {
	tg := startTargetArgs(t, "-goroutines", "5", "-heap-mb", "1", "-busy", "1")
	lo, hi := symbolRange(t, targetBin, "main.busyLoop")
	sigtramp, _ := symbolRange(t, targetBin, "runtime.sigtramp.abi0") // an assembly function
	errNotBusy := errors.New("no thread in main.busyLoop at this stop")

	var b *Bundle
	for attempt := 0; b == nil; attempt++ {
		opts := Options{PID: tg.pid, OutDir: filepath.Join(t.TempDir(), "b"), Method: MethodNative}
		opts.inStop = func(tids []int) error {
			for _, tid := range tids {
				var regs unix.PtraceRegs
				if unix.PtraceGetRegs(tid, &regs) != nil || regs.Rip < lo || regs.Rip >= hi {
					continue
				}
				if err := enterSignalHandler(tg.pid, tid, unix.SIGURG); err != nil {
					return err
				}
				if err := unix.PtraceGetRegs(tid, &regs); err != nil {
					return err
				}
				if regs.Rip != sigtramp {
					return fmt.Errorf("thread %d stepped into the handler is at %#x, want runtime.sigtramp %#x", tid, regs.Rip, sigtramp)
				}
				return nil
			}
			return errNotBusy
		}
		got, err := Capture(context.Background(), opts)
		switch {
		case err == nil:
			b = got
		case errors.Is(err, errNotBusy) && attempt < 100:
			tg.ping(t) // the busy goroutine was between threads; stop again
		default:
			t.Fatal(err)
		}
	}
	tg.ping(t) // the thread ran its handler after the capture: the process lives on

	rep, err := analyze.Run(context.Background(), analyze.Options{Core: b.Core, Exe: b.Exe})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rep.Groups {
		if len(g.Frames) < 2 || g.Frames[0].Function != "runtime.sigtramp" {
			continue
		}
		if g.Frames[1].Function != "main.busyLoop" || g.Culprit != "main.busyLoop" {
			t.Fatalf("goroutine in the signal handler: frames %+v, culprit %q; want main.busyLoop under runtime.sigtramp", g.Frames, g.Culprit)
		}
		last := g.Frames[len(g.Frames)-1].Function
		if last != "runtime.goexit" {
			t.Errorf("recovered stack ends in %s, want runtime.goexit (the whole chain)", last)
		}
		return
	}
	t.Fatalf("no goroutine group starts at runtime.sigtramp; groups: %+v", rep.Groups)
}

// enterSignalHandler delivers sig to the stopped thread tid of pid and
// leaves it stopped at the first instruction of the signal handler.
func enterSignalHandler(pid, tid int, sig unix.Signal) error {
	if err := unix.Tgkill(pid, tid, sig); err != nil {
		return fmt.Errorf("tgkill: %w", err)
	}
	// A signal can only be injected from its signal-delivery-stop: let the
	// thread run into it (other signals may come first; they are dropped,
	// the runtime tolerates a lost SIGURG).
	for i := 0; ; i++ {
		if i == 100 {
			return fmt.Errorf("thread %d: no delivery stop for %v", tid, sig)
		}
		if err := unix.PtraceCont(tid, 0); err != nil {
			return fmt.Errorf("cont: %w", err)
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(tid, &ws, unix.WALL, nil); err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		if ws.Stopped() && ws.StopSignal() == sig {
			break
		}
	}
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SINGLESTEP, uintptr(tid), 0, uintptr(sig), 0, 0); e != 0 {
		return fmt.Errorf("singlestep: %w", e)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(tid, &ws, unix.WALL, nil); err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return fmt.Errorf("thread %d after the step: status %#x, want a SIGTRAP stop", tid, uint32(ws))
	}
	return nil
}

// symbolRange is [start, end) of the function named name in the ELF file.
func symbolRange(t *testing.T, exe, name string) (uint64, uint64) {
	t.Helper()
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value, s.Value + s.Size
		}
	}
	t.Fatalf("%s has no symbol %s", exe, name)
	return 0, 0
}
