package findings

import (
	"bufio"
	"io"
	"os"
	"regexp"
	"strings"
)

// Source returns the lines of a source file, or nil when it cannot be read
// here. Findings use it to say which locks a waiting goroutine took earlier
// in its function: Go mutexes record no owner, so the source is the only
// witness of who holds what.
type Source func(file string) []string

// maxSourceFile bounds what LocalSource reads of one file: paths come from
// the target's debug info, which a hostile binary controls.
const maxSourceFile = 16 << 20

// LocalSource reads source files from this machine (regular files only,
// at most 16 MiB each), caching them. It is the one part of findings that
// touches the file system.
func LocalSource() Source {
	cache := map[string][]string{}
	return func(file string) []string {
		if lines, ok := cache[file]; ok {
			return lines
		}
		var lines []string
		if fi, err := os.Stat(file); err == nil && fi.Mode().IsRegular() && fi.Size() <= maxSourceFile {
			if f, err := os.Open(file); err == nil {
				sc := bufio.NewScanner(io.LimitReader(f, maxSourceFile))
				sc.Buffer(make([]byte, 64<<10), 1<<20)
				for sc.Scan() {
					lines = append(lines, sc.Text())
				}
				f.Close()
			}
		}
		cache[file] = lines
		return lines
	}
}

var (
	lockCall   = regexp.MustCompile(`([\w.\[\]()*&]+)\.(R?Lock)\(\)`)
	unlockCall = regexp.MustCompile(`([\w.\[\]()*&]+)\.(R?Unlock)\(\)`)
)

// heldLocks reads, in the function around file:line, the locks taken
// before line and not released before it (a deferred Unlock does not
// release), and the lock the line itself takes. Best effort: it reads
// text, not types.
func heldLocks(src Source, fr Frame) (held []string, heldAt []int, waits string) {
	if src == nil || fr.File == "" || fr.Line <= 0 {
		return nil, nil, ""
	}
	lines := src(fr.File)
	if fr.Line > len(lines) {
		return nil, nil, ""
	}
	if m := lockCall.FindStringSubmatch(lines[fr.Line-1]); m != nil {
		waits = m[1]
	}
	start := fr.Line - 2
	for ; start >= 0; start-- {
		if strings.HasPrefix(lines[start], "func ") {
			break
		}
	}
	if start < 0 {
		return nil, nil, waits
	}
	taken := map[string]int{}
	var order []string
	for i := start + 1; i < fr.Line-1; i++ {
		l := lines[i]
		for _, m := range lockCall.FindAllStringSubmatch(l, -1) {
			if _, ok := taken[m[1]]; !ok {
				order = append(order, m[1])
			}
			taken[m[1]] = i + 1
		}
		if strings.Contains(strings.TrimSpace(l), "defer ") {
			continue
		}
		for _, m := range unlockCall.FindAllStringSubmatch(l, -1) {
			delete(taken, m[1])
		}
	}
	for _, x := range order {
		if at, ok := taken[x]; ok {
			held, heldAt = append(held, x), append(heldAt, at)
		}
	}
	return held, heldAt, waits
}
