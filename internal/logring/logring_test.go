package logring

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is an output that records each write(2)-sized call.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func line(g, i int) string { return fmt.Sprintf(`{"msg":"http request","g":%d,"i":%d}`+"\n", g, i) }

// Concurrent writers, a ring much smaller than what they log: every line
// reaches the output whole, each writer's lines in order, in far fewer
// writes than lines; the ring file's tail ends with the last line logged.
func TestWriterConcurrentWrapAndTail(t *testing.T) {
	var out syncBuffer
	path := filepath.Join(t.TempDir(), "ring")
	w, err := New(&out, Options{Path: path, Size: 4096, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const writers, perWriter = 4, 2000
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				if _, err := w.Write([]byte(line(g, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if _, err := w.Write([]byte("last\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != writers*perWriter+1 || lines[len(lines)-1] != "last" {
		t.Fatalf("%d lines out (last %q), want %d ending with last", len(lines), lines[len(lines)-1], writers*perWriter+1)
	}
	for _, l := range lines[:len(lines)-1] {
		var g, i int
		if _, err := fmt.Sscanf(l, `{"msg":"http request","g":%d,"i":%d}`, &g, &i); err != nil || i != next[g] {
			t.Fatalf("line %q: writer %d expected line %d (%v)", l, g, next[g], err)
		}
		next[g]++
	}
	if out.writes > len(lines)/10 {
		t.Errorf("%d writes for %d lines: not buffered", out.writes, len(lines))
	}
	tail, err := ReadTail(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(tail.Lines), "\nlast\n") || tail.Unflushed != 0 || len(tail.Lines) > 4096 {
		t.Errorf("tail: %d bytes ending %q, unflushed %d; want <= 4096 bytes ending with last, 0 unflushed",
			len(tail.Lines), tail.Lines[max(0, len(tail.Lines)-40):], tail.Unflushed)
	}
	if !strings.HasPrefix(string(tail.Lines), `{"msg"`) {
		t.Errorf("tail starts with a cut line: %.60q", tail.Lines)
	}
}

// The interval flushes without any further write; a line longer than the
// ring goes through in order.
func TestWriterIntervalAndLongLine(t *testing.T) {
	var out syncBuffer
	w, err := New(&out, Options{Size: 64, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("one\n"))
	deadline := time.Now().Add(30 * time.Second)
	for out.String() != "one\n" {
		if time.Now().After(deadline) {
			t.Fatalf("not flushed by the interval: %q", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	long := strings.Repeat("x", 200) + "\n"
	w.Write([]byte("two\n"))
	w.Write([]byte(long))
	w.Write([]byte("three\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "one\ntwo\n"+long+"three\n"; got != want {
		t.Errorf("out %q, want %q", got, want)
	}
	if _, err := w.Write([]byte("late\n")); err == nil {
		t.Error("write after Close succeeded")
	}
}

// crashChild is the process TestCrashLeavesTheTail runs: it logs lines
// through a Writer that never flushes on its own, then dies of a fatal
// runtime error, where no defer or flush runs.
func crashChild(path string, n int) {
	w, err := New(os.Stdout, Options{Path: path, Interval: time.Hour})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	defer w.Close() // never runs: the runtime's fatal error skips defers
	for i := 0; i < n; i++ {
		w.Write([]byte(line(0, i)))
	}
	m := map[int]int{}
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; ; i++ {
				m[i%64] = i // concurrent map writes: a fatal error, not a panic
			}
		}()
	}
	select {}
}

func TestMain(m *testing.M) {
	if path := os.Getenv("LOGRING_CRASH_CHILD"); path != "" {
		n, _ := strconv.Atoi(os.Getenv("LOGRING_CRASH_LINES"))
		crashChild(path, n)
	}
	os.Exit(m.Run())
}

// A process that dies of `concurrent map writes` has written none of its
// buffered lines to its output, and they are all in the ring file.
func TestCrashLeavesTheTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ring")
	const n = 500
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOGRING_CRASH_CHILD="+path, "LOGRING_CRASH_LINES="+strconv.Itoa(n), "GOTRACEBACK=single")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil || !strings.Contains(stderr.String(), "fatal error: concurrent map writes") {
		t.Fatalf("child: %v, stderr %.300q; want it dead of concurrent map writes", err, stderr.String())
	}
	if stdout.Len() != 0 {
		t.Fatalf("child wrote %d bytes out: the test needs lines that were never flushed", stdout.Len())
	}
	tail, err := ReadTail(path)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 0; i < n; i++ {
		want.WriteString(line(0, i))
	}
	if string(tail.Lines) != want.String() || tail.Unflushed != int64(want.Len()) {
		t.Fatalf("tail: %d bytes, unflushed %d; want the %d lines logged (%d bytes), all unflushed; ends %q",
			len(tail.Lines), tail.Unflushed, n, want.Len(), tail.Lines[max(0, len(tail.Lines)-80):])
	}
}

func TestReadTailRefusesOtherFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notaring")
	os.WriteFile(path, []byte(strings.Repeat("{}\n", 40)), 0o600)
	if _, err := ReadTail(path); err == nil {
		t.Fatal("ReadTail read a file that is not a ring")
	}
}
