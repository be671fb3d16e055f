package analyze

import (
	"debug/elf"
	"fmt"
	"os"
	"sort"
	"syscall"

	"github.com/go-delve/delve/pkg/proc"
)

const pageSize = 4096

const maxCachedPages = 64

// coreMemory reads target memory for the hot loops (goroutine structs,
// frame-pointer chains, label maps): straight from the core file mapped
// into our address space when the address is in one of its PT_LOAD
// segments, else through delve (file-backed mappings a core leaves out
// are read from the executable) with a small page cache.
//
// Why not delve's reader alone: it issues one pread per call through a few
// layers of interfaces; 100k goroutines mean several hundred thousand small
// reads. A mapped core turns each into a bounds check and a copy, and the
// kernel's page cache does the rest.
type coreMemory struct {
	data  []byte    // the mapped core file, nil when mapping failed
	segs  []segment // sorted by vaddr
	mem   proc.MemoryReader
	pages map[uint64][]byte // nil value: page not readable
	size  uint64            // the core file's size, 0 when unknown
}

type segment struct {
	vaddr, size, off uint64
}

func newCoreMemory(corePath string, mem proc.MemoryReader) *coreMemory {
	c := &coreMemory{mem: mem, pages: map[uint64][]byte{}}
	f, err := os.Open(corePath)
	if err != nil {
		return c
	}
	defer f.Close()
	ef, err := elf.NewFile(f)
	if err != nil {
		return c
	}
	st, err := f.Stat()
	if err != nil || st.Size() == 0 || st.Size() != int64(int(st.Size())) {
		return c
	}
	c.size = uint64(st.Size())
	for _, p := range ef.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 || p.Off+p.Filesz > uint64(st.Size()) {
			continue
		}
		c.segs = append(c.segs, segment{vaddr: p.Vaddr, size: p.Filesz, off: p.Off})
	}
	sort.Slice(c.segs, func(i, j int) bool { return c.segs[i].vaddr < c.segs[j].vaddr })
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		c.segs = nil
		return c
	}
	c.data = data
	return c
}

// fits reports whether n bytes could be read from the core at all: a
// length read from the core that exceeds the whole file is corrupt (or the
// executable is not the core's), and must not size an allocation.
func (c *coreMemory) fits(n uint64) bool {
	return c.size == 0 || n <= c.size
}

// close unmaps the core.
func (c *coreMemory) close() {
	if c.data != nil {
		syscall.Munmap(c.data)
		c.data = nil
	}
}

func (c *coreMemory) read(buf []byte, addr uint64) error {
	if c.data != nil {
		i := sort.Search(len(c.segs), func(i int) bool { return c.segs[i].vaddr+c.segs[i].size > addr })
		if i < len(c.segs) {
			s := c.segs[i]
			if addr >= s.vaddr && addr+uint64(len(buf)) <= s.vaddr+s.size {
				copy(buf, c.data[s.off+addr-s.vaddr:])
				return nil
			}
		}
	}
	return c.readPaged(buf, addr)
}

func (c *coreMemory) readPaged(buf []byte, addr uint64) error {
	for len(buf) > 0 {
		base := addr &^ (pageSize - 1)
		page, ok := c.pages[base]
		if !ok {
			if len(c.pages) >= maxCachedPages {
				clear(c.pages)
			}
			p := make([]byte, pageSize)
			if n, err := c.mem.ReadMemory(p, base); err == nil && n == pageSize {
				page = p
			}
			c.pages[base] = page
		}
		if page == nil {
			return fmt.Errorf("address %#x not in the core", addr)
		}
		n := copy(buf, page[addr-base:])
		buf, addr = buf[n:], addr+uint64(n)
	}
	return nil
}
