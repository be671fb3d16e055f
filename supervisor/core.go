package supervisor

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RaiseCoreLimit lifts this process's soft RLIMIT_CORE to its hard limit.
// Children inherit limits across fork/exec, so doing it once in the parent,
// before any child starts, is race-free (a prlimit on the child's pid after
// Start would leave a window where an early crash writes no core). It
// returns the resulting limit so the caller can warn when the hard limit
// itself forbids or truncates cores.
func RaiseCoreLimit() (syscall.Rlimit, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
		return lim, fmt.Errorf("getrlimit core: %w", err)
	}
	if lim.Cur != lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
			return lim, fmt.Errorf("setrlimit core: %w", err)
		}
	}
	return lim, nil
}

// CorePattern is the kernel's core_pattern and core_uses_pid, which decide
// where a crashing child's core lands.
type CorePattern struct {
	Pattern string
	UsesPID bool
}

// ReadCorePattern reads /proc/sys/kernel/core_pattern and core_uses_pid.
func ReadCorePattern() (CorePattern, error) {
	b, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		return CorePattern{}, fmt.Errorf("core_pattern: %w", err)
	}
	cp := CorePattern{Pattern: strings.TrimSpace(string(b))}
	if u, err := os.ReadFile("/proc/sys/kernel/core_uses_pid"); err == nil {
		cp.UsesPID = strings.TrimSpace(string(u)) == "1"
	}
	return cp, nil
}

// Piped reports whether cores go to a helper program (systemd-coredump,
// apport) instead of a file the supervisor can pick up.
func (cp CorePattern) Piped() bool { return strings.HasPrefix(cp.Pattern, "|") }

// glob turns the pattern into a filepath.Glob pattern for the core of pid,
// relative patterns being resolved against the child's working dir. The
// specifiers we know the value of are filled in, the others (time, tid,
// hostname, ...) match anything. See core(5).
func (cp CorePattern) glob(dir string, pid int, comm string) string {
	if cp.Pattern == "" || cp.Piped() {
		return ""
	}
	var b strings.Builder
	hasPID := false
	p := cp.Pattern
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c != '%' || i+1 == len(p) {
			b.WriteString(globEscape(string(c)))
			continue
		}
		i++
		switch p[i] {
		case '%':
			b.WriteByte('%')
		case 'p', 'P':
			hasPID = true
			b.WriteString(strconv.Itoa(pid))
		case 'e':
			b.WriteString(globEscape(comm))
		default:
			b.WriteByte('*')
		}
	}
	g := b.String()
	if cp.UsesPID && !hasPID {
		g += "." + strconv.Itoa(pid)
	}
	if !filepath.IsAbs(g) {
		g = filepath.Join(globEscape(dir), g)
	}
	return g
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

// findCore returns the core file a process pid started at since left, or ""
// when there is none. It checks the names core_pattern yields plus "core"
// and "core.PID" in dir, and ignores files older than the process (a stale
// core of an earlier run must not be blamed on this one).
func findCore(cp CorePattern, dir string, pid int, comm string, since time.Time) string {
	candidates := []string{
		filepath.Join(dir, "core."+strconv.Itoa(pid)),
		filepath.Join(dir, "core"),
	}
	if g := cp.glob(dir, pid, comm); g != "" {
		if m, err := filepath.Glob(g); err == nil {
			candidates = append(m, candidates...)
		}
	}
	for _, c := range candidates {
		st, err := os.Stat(c)
		if err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
			continue
		}
		// mtime has coarse granularity on some filesystems; a second of slack
		// still rules out cores from earlier runs that were collected.
		if st.ModTime().Before(since.Add(-time.Second)) {
			continue
		}
		return c
	}
	return ""
}
