package capture

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"time"
)

// The native capturer's flow: captureNative sizes the copy buffer, copies
// while the process runs if asked (precopy), stops it once (finalStop), and
// writes the core (elfcore). Each phase has its own file, as delve keeps
// target, thread and frame apart: policy (what of each mapping the core
// keeps), copier (the store the live rounds and the stop both fill), precopy
// and tracker (copying while running), ptrace (the stop), memread (the
// copy itself) and arena (the buffer it copies into).

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
