package supervisor

import (
	"bytes"
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
