package analyze

import (
	"fmt"

	"github.com/go-delve/delve/pkg/proc"
)

const pageSize = 4096

const maxCachedPages = 64

// pageCache reads target memory a page at a time and keeps the last few
// pages: a goroutine's frame-pointer chain lives in one or two pages of its
// stack, and delve's core reader issues one pread per call.
type pageCache struct {
	mem   proc.MemoryReader
	pages map[uint64][]byte // nil value: page not readable
}

func newPageCache(mem proc.MemoryReader) *pageCache {
	return &pageCache{mem: mem, pages: map[uint64][]byte{}}
}

func (c *pageCache) read(buf []byte, addr uint64) error {
	for len(buf) > 0 {
		base := addr &^ (pageSize - 1)
		page, ok := c.pages[base]
		if !ok {
			if len(c.pages) >= maxCachedPages {
				clear(c.pages) // stacks are not revisited: keep the cache small
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
