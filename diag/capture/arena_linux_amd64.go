package capture

import (
	"os"

	"golang.org/x/sys/unix"
)

// Arena: the copy buffer. It is its own phase because it is sized and
// pre-faulted before anything is copied (from estimateCopy), so neither the
// live rounds nor the pause take page faults or GC work in this process.

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
