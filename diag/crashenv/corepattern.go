package crashenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ProcSys is where the kernel's settings are read from.
const ProcSys = "/proc/sys"

// CorePattern is the kernel's core_pattern and core_uses_pid, which decide
// where a crashing process's core lands.
type CorePattern struct {
	Pattern string
	UsesPID bool
}

// ReadCorePattern reads kernel/core_pattern and kernel/core_uses_pid under
// procSys (ProcSys on a real machine).
func ReadCorePattern(procSys string) (CorePattern, error) {
	b, err := os.ReadFile(filepath.Join(procSys, "kernel/core_pattern"))
	if err != nil {
		return CorePattern{}, fmt.Errorf("core_pattern: %w", err)
	}
	cp := CorePattern{Pattern: strings.TrimSpace(string(b))}
	if u, err := os.ReadFile(filepath.Join(procSys, "kernel/core_uses_pid")); err == nil {
		cp.UsesPID = strings.TrimSpace(string(u)) == "1"
	}
	return cp, nil
}

// Piped reports whether cores go to a helper program (systemd-coredump,
// apport) instead of a file the supervisor can pick up.
func (cp CorePattern) Piped() bool { return strings.HasPrefix(cp.Pattern, "|") }

// Glob turns the pattern into a filepath.Glob pattern for the core of pid,
// relative patterns being resolved against the process's working dir. The
// specifiers whose value is known are filled in, the others (time, tid,
// hostname, ...) match anything. See core(5). It is "" for a piped or
// empty pattern.
func (cp CorePattern) Glob(dir string, pid int, comm string) string {
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

// FindCore returns the core file a process pid (command name comm, working
// dir dir) started at since left, or "" when there is none. It checks the
// names core_pattern yields plus "core" and "core.PID" in dir, and ignores
// files older than the process (a stale core of an earlier run must not be
// blamed on this one).
func (cp CorePattern) FindCore(dir string, pid int, comm string, since time.Time) string {
	candidates := []string{
		filepath.Join(dir, "core."+strconv.Itoa(pid)),
		filepath.Join(dir, "core"),
	}
	if g := cp.Glob(dir, pid, comm); g != "" {
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
