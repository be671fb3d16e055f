package logring

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkLine is the cost of one access-log-sized line (300 bytes) to a
// pipe whose other end a goroutine drains, as wardgate up reads a child's
// stderr: written directly (one write(2) per line, the gateway before
// logring) or through a Writer with its ring in a MAP_SHARED file.
func BenchmarkLine(b *testing.B) {
	line := make([]byte, 300)
	for i := range line {
		line[i] = 'x'
	}
	line[len(line)-1] = '\n'
	pipe := func(b *testing.B) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, r); close(done) }()
		b.Cleanup(func() { w.Close(); <-done; r.Close() })
		return w
	}
	b.Run("direct", func(b *testing.B) {
		w := pipe(b)
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			if _, err := w.Write(line); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("logring", func(b *testing.B) {
		lw, err := New(pipe(b), Options{Path: filepath.Join(b.TempDir(), "ring")})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(line)))
		for b.Loop() {
			if _, err := lw.Write(line); err != nil {
				b.Fatal(err)
			}
		}
		if err := lw.Close(); err != nil {
			b.Fatal(err)
		}
	})
}
