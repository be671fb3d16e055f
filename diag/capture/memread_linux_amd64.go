package capture

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Memory read: copying spans out of the target with process_vm_readv. It is
// its own phase because it needs no ptrace relationship (it runs from any
// thread, so it is split across CPUs) and serves the live rounds and the
// final stop alike; unreadable pages are skipped and reported, not fatal.

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
