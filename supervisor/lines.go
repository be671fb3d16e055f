package supervisor

import (
	"bytes"
	"io"
	"regexp"
	"sync"
)

// maxLine bounds how much of an unterminated line is buffered before it is
// forwarded anyway, so a child printing without newlines cannot grow memory.
const maxLine = 64 << 10

// lineWriter receives one output stream of a child. Every byte goes to the
// log file as it comes; complete lines are also forwarded (prefixed with the
// service name) and offered to onLine, which the readiness check uses.
//
// A crash must not flood the terminal: the runtime's fatal output (every
// goroutine's stack, hundreds of lines) goes to stderr. With muteCrash set
// (stderr), forwarding stops at the line that starts it (crashLine) for
// the rest of this process; the file keeps every line, the crash output
// file has it too, and the post-mortem's one log line says what happened.
type lineWriter struct {
	file      io.Writer
	forward   *lockedWriter // may be nil
	prefix    []byte
	onLine    func(line string)
	partial   []byte
	muteCrash bool
	// crashLine is the first line of the crash output once seen ("" until
	// then). Written by the goroutine copying the child's output; read
	// after the process was waited for, which waits for that goroutine.
	crashLine string
}

// crashStart matches the first line of the Go runtime's fatal output
// (what GOTRACEBACK=crash prints before the goroutine dump): "panic: ...",
// "fatal error: ...", "fatal: morestack on g0", "SIGQUIT: quit", "SIGSEGV: segmentation violation",
// "unexpected fault address ...", "runtime: ..." (printed just before some
// fatal errors). Structured log lines start with '{' and never match.
var crashStart = regexp.MustCompile(`^(panic: |fatal error: |fatal: |SIG[A-Z]+: |unexpected fault address |runtime: )`)

func (w *lineWriter) Write(p []byte) (int, error) {
	if _, err := w.file.Write(p); err != nil {
		return 0, err
	}
	data := p
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			w.partial = append(w.partial, data...)
			if len(w.partial) >= maxLine {
				w.emit(w.partial)
				w.partial = w.partial[:0]
			}
			break
		}
		line := data[:i]
		if len(w.partial) > 0 {
			line = append(w.partial, line...)
			w.partial = w.partial[:0]
		}
		w.emit(line)
		data = data[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) emit(line []byte) {
	if w.onLine != nil {
		w.onLine(string(line))
	}
	if w.muteCrash && w.crashLine == "" && crashStart.Match(line) {
		w.crashLine = string(bytes.TrimSpace(line))
		if w.crashLine == "" {
			w.crashLine = "crash"
		}
	}
	if w.forward != nil && w.crashLine == "" {
		w.forward.writeLine(w.prefix, line)
	}
}

// lockedWriter serialises whole lines from all children onto one writer so
// lines from different services never interleave mid-line.
type lockedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	filter func(line []byte) bool // nil: every line
}

func (l *lockedWriter) writeLine(prefix, line []byte) {
	if l.filter != nil && !l.filter(line) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	buf := make([]byte, 0, len(prefix)+len(line)+1)
	buf = append(append(append(buf, prefix...), line...), '\n')
	_, _ = l.w.Write(buf) // forwarding is best effort; the per-child log file has everything
}
