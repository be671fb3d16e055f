package supervisor

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestLineWriterForwardFilter(t *testing.T) {
	var file, term bytes.Buffer
	w := &lineWriter{
		file:    &file,
		forward: &lockedWriter{w: &term, filter: func(l []byte) bool { return !bytes.Contains(l, []byte("noisy")) }},
		prefix:  []byte("svc | "),
	}
	in := "keep one\nnoisy line\nkeep two\npartial"
	if _, err := w.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if file.String() != in {
		t.Errorf("log file got %q, want every byte %q", file.String(), in)
	}
	if got, want := term.String(), "svc | keep one\nsvc | keep two\n"; got != want {
		t.Errorf("forwarded %q, want %q", got, want)
	}
	if strings.Contains(term.String(), "partial") {
		t.Error("an unterminated line was forwarded early")
	}
}

// TestLineWriterMutesCrashOutput: from the first line of a Go crash on,
// nothing more of that process's stderr reaches the terminal, whatever
// kind of crash it is; the log file keeps every byte.
func TestLineWriterMutesCrashOutput(t *testing.T) {
	dump := "\ngoroutine 1 gp=0xc000002380 m=0 mp=0x7c7e40 [running]:\nmain.main()\n\t/src/main.go:5 +0x1d\n" +
		"\ngoroutine 2 gp=0xc000002e00 m=nil [force gc (idle)]:\nruntime.gopark(...)\n"
	for _, first := range []string{
		"panic: boom",
		"fatal error: all goroutines are asleep - deadlock!",
		"fatal error: concurrent map writes",
		"fatal: morestack on g0",
		"SIGQUIT: quit",
		"SIGSEGV: segmentation violation",
		"unexpected fault address 0x0",
		"runtime: out of memory: cannot allocate 8192-byte block (1 in use)",
	} {
		var file, term bytes.Buffer
		w := &lineWriter{file: &file, forward: &lockedWriter{w: &term}, prefix: []byte("svc | "), muteCrash: true}
		before := `{"level":"INFO","msg":"listening"}` + "\n"
		in := before + first + "\n" + dump + "PC=0x46f8a1 m=0 sigcode=0\n"
		// In small writes, as a pipe delivers it.
		for i := 0; i < len(in); i += 7 {
			if _, err := w.Write([]byte(in[i:min(i+7, len(in))])); err != nil {
				t.Fatal(err)
			}
		}
		if file.String() != in {
			t.Errorf("%s: log file lost bytes", first)
		}
		if got, want := term.String(), "svc | "+before; got != want {
			t.Errorf("%s: forwarded %q, want only %q", first, got, want)
		}
		if w.crashLine != first {
			t.Errorf("crashLine %q, want %q", w.crashLine, first)
		}
	}
	// Lines that only look alike are forwarded.
	var term bytes.Buffer
	w := &lineWriter{file: io.Discard, forward: &lockedWriter{w: &term}, prefix: nil, muteCrash: true}
	in := "{\"msg\":\"panic: recovered in handler\"}\nlistening public=127.0.0.1:1\nthe panic: word mid-line\n"
	if _, err := w.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	if term.String() != in || w.crashLine != "" {
		t.Errorf("ordinary lines: forwarded %q (crashLine %q), want all of %q", term.String(), w.crashLine, in)
	}
}
