package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unicode"
)

// mapping is one line of /proc/PID/maps.
type mapping struct {
	start, end uint64
	perms      string // e.g. "rw-p"
	offset     uint64 // file offset in bytes
	inode      uint64
	path       string // "" for anonymous memory; "[heap]", "[stack]", a file path...
}

func (m mapping) size() uint64     { return m.end - m.start }
func (m mapping) readable() bool   { return len(m.perms) > 0 && m.perms[0] == 'r' }
func (m mapping) writable() bool   { return len(m.perms) > 1 && m.perms[1] == 'w' }
func (m mapping) executable() bool { return len(m.perms) > 2 && m.perms[2] == 'x' }
func (m mapping) shared() bool     { return len(m.perms) > 3 && m.perms[3] == 's' }

// fileBacked reports whether the mapping is backed by a file, i.e. its
// unpopulated pages hold file contents rather than zeros.
func (m mapping) fileBacked() bool {
	if m.inode == 0 || !strings.HasPrefix(m.path, "/") {
		return false
	}
	// Shared anonymous memory shows up as a deleted /dev/zero, SysV shm
	// or memfd file; its untouched pages are zero like any anonymous page.
	for _, anon := range []string{"/dev/zero", "/SYSV", "/memfd:"} {
		if strings.HasPrefix(m.path, anon) {
			return false
		}
	}
	return true
}

// parseMaps reads /proc/PID/maps.
func parseMaps(pid int) ([]mapping, error) {
	lines, err := readLines(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	maps := make([]mapping, 0, len(lines))
	for _, line := range lines {
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, err
		}
		maps = append(maps, m)
	}
	return maps, nil
}

// parseMapsLine parses "start-end perms offset dev inode   path".
func parseMapsLine(line string) (mapping, error) {
	var m mapping
	fields := strings.Fields(line)
	if len(fields) < 5 {
		return m, fmt.Errorf("maps: malformed line %q", line)
	}
	lo, hi, ok := strings.Cut(fields[0], "-")
	if !ok {
		return m, fmt.Errorf("maps: malformed range in %q", line)
	}
	var err1, err2, err3, err4 error
	m.start, err1 = strconv.ParseUint(lo, 16, 64)
	m.end, err2 = strconv.ParseUint(hi, 16, 64)
	m.perms = fields[1]
	m.offset, err3 = strconv.ParseUint(fields[2], 16, 64)
	m.inode, err4 = strconv.ParseUint(fields[4], 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return m, fmt.Errorf("maps: line %q: %s", line, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	if m.start > m.end {
		return m, fmt.Errorf("maps: line %q: range ends before it starts", line)
	}
	if !validPerms(m.perms) {
		return m, fmt.Errorf("maps: line %q: permissions %q are not [r-][w-][x-][ps]", line, m.perms)
	}
	if maj, min, ok := strings.Cut(fields[3], ":"); !ok || !isHex(maj) || !isHex(min) {
		return m, fmt.Errorf("maps: line %q: device %q is not MAJOR:MINOR", line, fields[3])
	}
	// The path is everything after the inode, the sixth column; it may
	// contain spaces. Skip five fields rather than search for the inode's
	// text, which also occurs in the addresses ("0" in "7f0...").
	// Spaces are those of strings.Fields, which found the five.
	rest := line
	for range 5 {
		rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
		if i := strings.IndexFunc(rest, unicode.IsSpace); i >= 0 {
			rest = rest[i:]
		} else {
			rest = ""
		}
	}
	m.path = strings.TrimSpace(rest)
	return m, nil
}

func validPerms(p string) bool {
	return len(p) == 4 && (p[0] == 'r' || p[0] == '-') && (p[1] == 'w' || p[1] == '-') &&
		(p[2] == 'x' || p[2] == '-') && (p[3] == 'p' || p[3] == 's')
}

func isHex(s string) bool {
	_, err := strconv.ParseUint(s, 16, 64)
	return err == nil
}

// Bits of a /proc/PID/pagemap entry (Documentation/admin-guide/mm/pagemap.rst).
const (
	pagemapPresent = 1 << 63
	pagemapSwapped = 1 << 62
	// pageDirty marks, in a pageScan's copy of the entries, a page to
	// copy again. It reuses bit 55, the kernel's soft-dirty bit, which the
	// capturer does not use (kernels are often built without
	// CONFIG_MEM_SOFT_DIRTY) and always overwrites.
	pageDirty = 1 << 55
)

// pagemap reads /proc/PID/pagemap: one 64-bit entry per virtual page.
type pagemap struct {
	f        *os.File
	pageSize uint64
	buf      []byte
}

func openPagemap(pid int, pageSize uint64) (*pagemap, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, err
	}
	return &pagemap{f: f, pageSize: pageSize, buf: make([]byte, 8*65536)}, nil
}

func (p *pagemap) Close() error { return p.f.Close() }

// populated calls fn for each maximal run [addr, addr+n) of pages in
// [start, end) that are present in RAM or swapped out, i.e. that hold data.
func (p *pagemap) populated(start, end uint64, fn func(addr, n uint64)) error {
	runStart, runLen := uint64(0), uint64(0)
	flush := func() {
		if runLen > 0 {
			fn(runStart, runLen)
		}
		runLen = 0
	}
	for page := start; page < end; {
		count := (end - page) / p.pageSize
		if max := uint64(len(p.buf) / 8); count > max {
			count = max
		}
		b := p.buf[:count*8]
		n, err := p.f.ReadAt(b, int64(page/p.pageSize*8))
		if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return fmt.Errorf("pagemap at %#x: %w", page, err)
		}
		for i := 0; i+8 <= n; i += 8 {
			e := binary.LittleEndian.Uint64(b[i:])
			addr := page + uint64(i/8)*p.pageSize
			if e&(pagemapPresent|pagemapSwapped) != 0 {
				if runLen == 0 {
					runStart = addr
				}
				runLen += p.pageSize
			} else {
				flush()
			}
		}
		page += uint64(n/8) * p.pageSize
	}
	flush()
	return nil
}

// pageRun is a run of consecutive pages starting at addr whose pagemap
// entries are ents[lo:hi] of the pageScan holding it.
type pageRun struct {
	addr   uint64
	lo, hi int
}

// collect appends to ents the pagemap entries of the pages in [start, end)
// that are populated (present or swapped), or of every page if all is
// set, and calls run for each maximal run of such pages with its indexes
// in ents.
func (p *pagemap) collect(start, end uint64, all bool, ents []uint64, run func(pageRun)) ([]uint64, error) {
	cur := pageRun{lo: -1}
	flush := func() {
		if cur.lo >= 0 {
			cur.hi = len(ents)
			run(cur)
		}
		cur.lo = -1
	}
	for page := start; page < end; {
		count := min((end-page)/p.pageSize, uint64(len(p.buf)/8))
		b := p.buf[:count*8]
		n, err := p.f.ReadAt(b, int64(page/p.pageSize*8))
		if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return ents, fmt.Errorf("pagemap at %#x: %w", page, err)
		}
		for i := 0; i+8 <= n; i += 8 {
			e := binary.LittleEndian.Uint64(b[i:])
			if all || e&(pagemapPresent|pagemapSwapped) != 0 {
				if cur.lo < 0 {
					cur = pageRun{addr: page + uint64(i/8)*p.pageSize, lo: len(ents)}
				}
				ents = append(ents, e)
			} else {
				flush()
			}
		}
		page += uint64(n/8) * p.pageSize
	}
	flush()
	return ents, nil
}

// procStat holds the fields of /proc/PID/stat the core notes need.
type procStat struct {
	comm                 string
	state                byte
	ppid, pgrp, sid      int32
	nice                 int8
	flags                uint64
	uid, gid             uint32
	utimeTicks, stimeTck uint64
}

func readProcStat(pid int) (procStat, error) {
	var s procStat
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// comm is in parentheses and may contain spaces and parentheses.
	text := string(raw)
	open, closing := strings.IndexByte(text, '('), strings.LastIndexByte(text, ')')
	if open < 0 || closing < open {
		return s, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	s.comm = text[open+1 : closing]
	f := strings.Fields(text[closing+1:])
	// f[0] is field 3 (state) of proc(5).
	if len(f) < 17 {
		return s, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	s.state = f[0][0]
	num := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	s.ppid, s.pgrp, s.sid = int32(num(1)), int32(num(2)), int32(num(3))
	s.flags = uint64(num(6))
	s.utimeTicks, s.stimeTck = uint64(num(11)), uint64(num(12))
	s.nice = int8(num(16))
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d", pid), &st); err == nil {
		s.uid, s.gid = st.Uid, st.Gid
	}
	return s, nil
}

// listTasks returns the thread ids of pid.
func listTasks(pid int) ([]int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// tracerPID is the TracerPid of /proc/PID/status: the pid of the process
// ptracing it, or 0.
func tracerPID(pid int) int {
	lines, err := readLines(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(rest))
			return n
		}
	}
	return 0
}
