package capture

import (
	"time"
)

// The copier's store: the image of the process's memory that the live
// rounds (precopy) and the final stop fill. It is its own phase because both
// ask it the same thing, "which pages are missing or written since they
// were copied?" (scan, then plan), whether the process runs or is stopped.

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
