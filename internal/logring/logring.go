// Package logring is a buffered log writer whose buffer survives the
// process: a bounded ring of the last bytes logged, in a MAP_SHARED mapping
// of a file.
//
// Why: a gateway that writes its access log one write(2) per line spends a
// large share of its CPU in those system calls. Buffering fixes that, but a
// plain in-memory buffer loses its last lines exactly when they matter
// most: when the process dies of a fatal runtime error (`concurrent map
// writes`, a SIGQUIT or SIGABRT with GOTRACEBACK=crash), where no defer and
// no flush runs. The pages of a MAP_SHARED file mapping belong to the page
// cache, not to the process: every byte copied into the ring is in the
// file the moment the copy is done, whatever happens to the process next
// (only a kernel crash or power loss loses it). After the process died,
// [ReadTail] reads the file; `wardgate up`'s supervisor copies that tail
// into the post-mortem.
//
// Lines are copied into the ring as they are logged and written to the
// output by one goroutine every flush interval, when the unwritten part
// would no longer fit, and on Close. The ring keeps the last Size bytes
// logged whether written out or not, so the tail read after a crash ends
// with the last line logged and includes the lines logged just before it.
//
// Hand-written: no library buffers into a caller-given mapping; the code is
// a ring buffer, one mmap call and a header of four integers.
package logring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// File layout: a 32-byte header, then the ring.
//
//	magic   [8]byte "WGLRING1"
//	size    uint64  bytes in the ring
//	written uint64  bytes that went into the ring (it holds the last min(written, size))
//	flushed uint64  bytes ever written to the output
//
// Integers are little-endian. written is stored after the bytes it covers
// are in the ring, flushed after they were written out.
const (
	magic      = "WGLRING1"
	headerSize = 32
)

// EnvPath is the environment variable naming the ring file of a process
// run by `wardgate up`: the supervisor sets it for each child (in the
// child's run directory) and reads the file after the child died.
const EnvPath = "WARDGATE_LOG_RING"

// Defaults for [Options].
const (
	DefaultSize     = 256 << 10
	DefaultInterval = 200 * time.Millisecond
)

// Options configures a [Writer].
type Options struct {
	// Path of the ring file, created or truncated. "" keeps the ring in
	// process memory: still buffered, but a crash loses what was not
	// written out yet (at most one interval's lines).
	Path string
	// Size of the ring in bytes (default DefaultSize). A line longer than
	// the ring is written through.
	Size int
	// Interval between flushes (default DefaultInterval).
	Interval time.Duration
}

// Writer buffers writes to out in the ring. It is safe for concurrent use.
type Writer struct {
	out  io.Writer
	file *os.File // nil without a Path
	mem  []byte   // the mapping (header + ring), or a heap slice
	ring []byte

	// flushMu serializes flushes; mu guards the positions. A flush writes
	// out without holding mu: writers only fill bytes at or after written
	// and never overwrite bytes before flushed+size, so the range being
	// written out is not touched meanwhile.
	flushMu sync.Mutex
	mu      sync.Mutex
	written uint64
	flushed uint64
	err     error // first output error, returned by the next Write or Close
	closed  bool

	stop chan struct{}
	done chan struct{}
}

// New returns a Writer that buffers writes to out and flushes them on an
// interval until Close.
func New(out io.Writer, opts Options) (*Writer, error) {
	if opts.Size <= 0 {
		opts.Size = DefaultSize
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	w := &Writer{out: out, stop: make(chan struct{}), done: make(chan struct{})}
	total := headerSize + opts.Size
	if opts.Path == "" {
		w.mem = make([]byte, total)
	} else {
		f, err := os.OpenFile(opts.Path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("logring: %w", err)
		}
		if err := f.Truncate(int64(total)); err != nil {
			f.Close()
			return nil, fmt.Errorf("logring: size %s: %w", opts.Path, err)
		}
		mem, err := unix.Mmap(int(f.Fd()), 0, total, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("logring: mmap %s: %w", opts.Path, err)
		}
		w.file, w.mem = f, mem
	}
	copy(w.mem, magic)
	binary.LittleEndian.PutUint64(w.mem[8:], uint64(opts.Size))
	w.ring = w.mem[headerSize:]
	go w.loop(opts.Interval)
	return w, nil
}

func (w *Writer) loop(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			_ = w.Flush()
		}
	}
}

// Write copies p into the ring; it writes to the output only when the
// unwritten bytes and p would not fit (then it flushes first), or when p is
// longer than the ring.
func (w *Writer) Write(p []byte) (int, error) {
	size := uint64(len(w.ring))
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return 0, errors.New("logring: write after Close")
		}
		if err := w.err; err != nil {
			w.mu.Unlock()
			return 0, err
		}
		if w.written-w.flushed+uint64(len(p)) <= size {
			w.put(p)
			w.mu.Unlock()
			return len(p), nil
		}
		long := uint64(len(p)) > size
		w.mu.Unlock()
		if err := w.Flush(); err != nil {
			return 0, err
		}
		if long {
			return w.writeThrough(p)
		}
	}
}

// writeThrough writes a p longer than the ring straight out, after what
// is pending (so in order), keeping its tail in the ring as written out.
// It holds mu throughout: other writers wait (a rare path).
func (w *Writer) writeThrough(p []byte) (int, error) {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	if err := w.flushLocked(); err != nil {
		return 0, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.written != w.flushed { // someone logged since: out first
		if err := w.writeOut(w.flushed, w.written); err != nil {
			w.err = err
			return 0, err
		}
	}
	n, err := w.out.Write(p)
	w.put(p[len(p)-len(w.ring):])
	w.flushed = w.written
	w.storeFlushed()
	if err != nil {
		w.err = fmt.Errorf("logring: %w", err)
		return n, w.err
	}
	return n, nil
}

// put copies p (which fits) into the ring at written. Called with mu held.
func (w *Writer) put(p []byte) {
	size := uint64(len(w.ring))
	off := w.written % size
	n := copy(w.ring[off:], p)
	copy(w.ring, p[n:])
	w.written += uint64(len(p))
	binary.LittleEndian.PutUint64(w.mem[16:], w.written)
}

func (w *Writer) storeFlushed() { binary.LittleEndian.PutUint64(w.mem[24:], w.flushed) }

// Flush writes out what was logged since the last flush.
func (w *Writer) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	return w.flushLocked()
}

// flushLocked is Flush with flushMu held. It writes out without holding mu.
func (w *Writer) flushLocked() error {
	w.mu.Lock()
	from, to, err := w.flushed, w.written, w.err
	w.mu.Unlock()
	if err != nil || from == to {
		return err
	}
	err = w.writeOut(from, to)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.err = err
		return err
	}
	w.flushed = to
	w.storeFlushed()
	return nil
}

// writeOut writes the ring's bytes [from, to) (positions since the start)
// to the output: one write, two when the range wraps.
func (w *Writer) writeOut(from, to uint64) error {
	size := uint64(len(w.ring))
	a, b := from%size, to%size
	var err error
	if b <= a { // wraps, or fills the ring exactly
		if _, err = w.out.Write(w.ring[a:]); err == nil && b > 0 {
			_, err = w.out.Write(w.ring[:b])
		}
	} else {
		_, err = w.out.Write(w.ring[a:b])
	}
	if err != nil {
		return fmt.Errorf("logring: %w", err)
	}
	return nil
}

// Close stops the flusher, flushes and unmaps the ring. The ring file is
// kept (it is what a reader finds after a crash; the next New truncates
// it). Writes after Close fail.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	err := w.flushLocked()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.file != nil {
		err = errors.Join(err, unix.Munmap(w.mem), w.file.Close())
		w.mem, w.ring = nil, nil
	}
	return err
}

// Tail is what [ReadTail] found in a ring file.
type Tail struct {
	// Lines are the last whole lines logged, oldest first (a line cut by
	// the ring's start is dropped), ending with the last byte logged.
	Lines []byte
	// Unflushed counts the bytes at the end of Lines that the process had
	// not written to its output when it stopped (a writer flushes before
	// the ring would overwrite them, so they are all in Lines): they are in
	// the ring file only. A flush in progress at the crash may have reached
	// the output too.
	Unflushed int64
}

// ReadTail reads the ring file at path, normally after the process that
// wrote it has exited.
func ReadTail(path string) (Tail, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Tail{}, err
	}
	if len(b) < headerSize || string(b[:8]) != magic {
		return Tail{}, fmt.Errorf("logring: %s is not a log ring", path)
	}
	size := binary.LittleEndian.Uint64(b[8:])
	written := binary.LittleEndian.Uint64(b[16:])
	flushed := binary.LittleEndian.Uint64(b[24:])
	if size == 0 || uint64(len(b)-headerSize) < size || flushed > written {
		return Tail{}, fmt.Errorf("logring: %s: bad header (size %d, written %d, flushed %d, file %d bytes)", path, size, written, flushed, len(b))
	}
	ring := b[headerSize : headerSize+int(size)]
	var lines []byte
	if written <= size {
		lines = append(lines, ring[:written]...)
	} else {
		off := written % size
		lines = append(append(lines, ring[off:]...), ring[:off]...)
		// The oldest line is cut by the ring's start: drop it.
		if i := bytes.IndexByte(lines, '\n'); i >= 0 {
			lines = lines[i+1:]
		}
	}
	return Tail{Lines: lines, Unflushed: int64(written - flushed)}, nil
}
