package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/wardgate/wardgate/diag/bundle"
)

// captureGcore runs `gcore -o core PID` and renames the core.PID it writes
// to core. The pause is approximated by the command's wall time: gdb
// attaches (stopping every thread) within milliseconds of starting and
// detaches just before exiting, so the difference is gdb's start-up and
// symbol loading, which happen while the process is already stopped too.
func captureGcore(ctx context.Context, opts Options, corePath string, m *Meta) error {
	gcore := opts.GcorePath
	if gcore == "" {
		gcore = "gcore"
	}
	bin, err := exec.LookPath(gcore)
	if err != nil {
		return fmt.Errorf("capture: %w", ErrGcoreMissing)
	}
	prefix := corePath + ".gcore"
	cmd := exec.CommandContext(ctx, bin, "-o", prefix, strconv.Itoa(opts.PID))
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	m.Time = time.Now().UTC()
	start := time.Now()
	runErr := cmd.Run()
	m.PauseMS = msSince(start)
	written := prefix + "." + strconv.Itoa(opts.PID)
	if runErr != nil {
		os.Remove(written)
		if ctx.Err() != nil {
			return fmt.Errorf("capture: gcore: %w", ctx.Err())
		}
		return fmt.Errorf("capture: gcore: %w", gcoreError(opts.PID, runErr, out.String()))
	}
	if _, err := os.Stat(written); err != nil {
		return fmt.Errorf("capture: gcore exited 0 but wrote no core: %w", gcoreError(opts.PID, err, out.String()))
	}
	if err := os.Chmod(written, bundle.FileMode); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if err := os.Rename(written, corePath); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	m.Method = MethodGcore
	m.Threads = countThreads(opts.PID)
	return nil
}

// gcoreError turns gdb's output into one of our sentinel errors when it
// says why.
func gcoreError(pid int, err error, output string) error {
	lower := strings.ToLower(output)
	tail := strings.TrimSpace(output)
	if len(tail) > 600 {
		tail = "..." + tail[len(tail)-600:]
	}
	switch {
	case strings.Contains(lower, "no such process"):
		return fmt.Errorf("pid %d: %w (gdb: %s)", pid, ErrNoProcess, tail)
	case strings.Contains(lower, "operation not permitted"), strings.Contains(lower, "ptrace: permission"):
		return fmt.Errorf("pid %d: %w (gdb: %s)", pid, ErrPermission, tail)
	}
	return errors.Join(err, fmt.Errorf("gdb output: %s", tail))
}

// countThreads is the number of entries in /proc/PID/task, or 0.
func countThreads(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	return len(entries)
}
