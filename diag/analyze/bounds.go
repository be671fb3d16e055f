package analyze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/go-delve/delve/pkg/proc"

	"github.com/wardgate/wardgate/internal/redact"
)

// maxGoroutines bounds the goroutine count read from a core. Every
// goroutine has at least a 2 KiB stack plus its runtime.g, so four million
// of them is a process of tens of gigabytes; a larger count read from
// runtime.allgs is a corrupt core or the wrong executable, and would size
// allocations of gigabytes.
const maxGoroutines = 1 << 22

// delvePage is how many allgs entries delve parses between two checks of
// the limits and of cancellation.
const delvePage = 4096

// maxUnreadableGoroutines: delve's listing keeps an entry for every allgs
// slot it cannot parse. Past this many the allgs it found are not
// goroutines at all.
const maxUnreadableGoroutines = 4096

// delveGoroutinesBounded is proc.GoroutinesInfo(t, 0, 0) in pages: that
// call trusts runtime.allglen and appends one entry (with an error) for
// every unparsable slot, so a corrupt allglen made it allocate without
// bound. Here the listing stops at maxGoroutines entries or
// maxUnreadableGoroutines unparsable ones.
func (a *analysis) delveGoroutinesBounded(ctx context.Context) ([]*proc.G, error) {
	var out []*proc.G
	unreadable := 0
	for start := 0; start >= 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		gs, next, err := proc.GoroutinesInfo(a.t, start, delvePage)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			if g.Unreadable != nil {
				if unreadable++; unreadable > maxUnreadableGoroutines {
					return nil, fmt.Errorf("more than %d unreadable goroutines (last: %w): the core is corrupt or the executable is not the one that wrote it", maxUnreadableGoroutines, g.Unreadable)
				}
			}
		}
		out = append(out, gs...)
		if len(out) > maxGoroutines {
			return nil, fmt.Errorf("more than %d goroutines: the core is corrupt or the executable is not the one that wrote it", maxGoroutines)
		}
		if next <= start && next >= 0 {
			return nil, errors.New("goroutine listing does not advance")
		}
		start = next
	}
	return out, nil
}

// runInterruptible runs fn and returns its error, or ctx's error as soon
// as ctx is done. Delve's core loading and evaluation do not take a
// context, so a long step could otherwise hold off SIGINT/SIGTERM until it
// finishes; here the caller gets control back at once and fn's goroutine
// is abandoned (the command exits right after).
func runInterruptible(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("analyze: interrupted: %w", context.Cause(ctx))
	}
}

// redactLocal keeps secrets held in the crashing frame's locals out of the
// report (which is pasted into tickets): a secret-named variable
// (apiToken, password, ...) loses its value, any other has secrets found
// by form replaced (see internal/redact).
func redactLocal(name, value string) string {
	if redact.SecretName(name) {
		return redact.Placeholder
	}
	return redact.Text(value)
}

// maxSourceFile bounds a source file read for the report's source lines.
// The paths come from the executable's DWARF, which a hostile or wrong
// binary can point anywhere: /dev/zero would never end, a FIFO would
// block, a huge log file would be read whole.
const maxSourceFile = 16 << 20

// maxSourceLine bounds one source line quoted in the report.
const maxSourceLine = 512

// readSourceFile reads a regular file of at most maxSourceFile bytes.
func readSourceFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxSourceFile {
		return nil, fmt.Errorf("%s: not a source file (%v, %d bytes)", path, st.Mode().Type(), st.Size())
	}
	return io.ReadAll(io.LimitReader(f, maxSourceFile))
}

func clipLine(s string) string {
	if len(s) <= maxSourceLine {
		return s
	}
	return s[:maxSourceLine] + "..."
}
