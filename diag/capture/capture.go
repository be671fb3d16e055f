// Package capture writes a core dump of a live process, plus what is needed
// to read it later, into a bundle directory (see package bundle), and lets
// the process carry on.
//
// Two methods:
//
//   - "gcore" runs GDB's gcore. It works for anything gdb can attach to,
//     but holds the process stopped while it writes every readable mapping
//     to disk; for a Go process that includes the whole reserved heap, so
//     even a small service gives a core of over a gigabyte and a pause of
//     about a second.
//   - "native" is wardgate's own capturer. It copies only the pages that
//     are populated (present or swapped, per /proc/PID/pagemap) with
//     process_vm_readv into its own memory, and writes an ELF core in
//     which unpopulated pages are file-system holes, so the core's size
//     on disk is close to RSS. With pre-copy (the default) it copies
//     memory while the process runs, tracking writes with an asynchronous
//     write-protecting userfaultfd and PAGEMAP_SCAN (Linux 6.7+; see
//     tracker_linux_amd64.go for why not soft-dirty bits), then stops the
//     threads with ptrace only to read registers and copy the pages
//     written since, and resumes them: the pause scales with the write
//     rate, not with RSS. Tracking needs one stop of about a millisecond
//     to create the userfaultfd inside the process. Without tracking
//     (older kernel, Options.PreCopy "off") the threads stay stopped for
//     the whole copy. Either way the core shows memory at one instant.
//
// The native ELF core writer is hand-written: no Go library writes Linux
// core files (delve's pkg/proc/dump.go writes its own non-standard format
// and is internal to delve). Its layout follows the kernel's
// fs/binfmt_elf.c elf_core_dump and what delve's pkg/proc/core reads:
// NT_PRSTATUS per thread (the main thread first), NT_PRPSINFO, NT_AUXV,
// NT_FILE and NT_FPREGSET, then one PT_LOAD per mapping.
package capture

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/internal/redact"
)

// Methods accepted in Options.Method.
const (
	MethodAuto   = "auto"
	MethodNative = "native"
	MethodGcore  = "gcore"
)

// Meta is bundle.json; see package bundle.
type Meta = bundle.Meta

// Bundle is a written capture bundle; see package bundle.
type Bundle = bundle.Bundle

// Options says what to capture and where.
type Options struct {
	// PID is the process to capture.
	PID int
	// OutDir is the bundle directory to create. It must not exist yet
	// (an empty existing directory is accepted). "" means
	// ./wardgate-capture-<pid>-<UTC time>.
	OutDir string
	// Method is auto, native or gcore; "" means auto. auto tries native
	// and falls back to gcore, logging why and recording it in
	// Meta.FallbackReason; it does not fall back when the process is gone
	// or ptrace is refused, since gcore would fail the same way.
	Method string
	// Logger receives progress and the fallback reason; nil discards.
	Logger *slog.Logger
	// GcorePath is the gcore command; "" means "gcore" from PATH.
	GcorePath string
	// PreCopy says whether the native capturer copies memory while the
	// process runs before its final stop: "" or "on" (the default), or
	// "off" to stop the process for the whole copy. See the package doc.
	PreCopy string

	// noTracking, if set, makes write tracking unavailable for this
	// reason (tests of the fallback).
	noTracking string
	// inStop, if set, runs on the tracing thread while every thread of the
	// process is stopped for the final copy, with their thread IDs (tests:
	// put a thread into a state worth capturing). Its error fails the
	// capture.
	inStop func(tids []int) error
}

// Values of Options.PreCopy.
const (
	PreCopyOn  = "on"
	PreCopyOff = "off"
)

// NativeStats is what the native capturer adds to bundle.json: how the
// memory was copied and what each part cost the process.
type NativeStats struct {
	// PreCopyRounds is how many passes copied memory while the process
	// ran (0 with pre-copy off or unavailable).
	PreCopyRounds int `json:"precopy_rounds"`
	// PagesCopiedLive is how many pages were copied while the process ran.
	PagesCopiedLive int64 `json:"pages_copied_live"`
	// PagesCopiedPaused is how many pages were copied during the final
	// stop: those written since the last live pass, plus new ones.
	PagesCopiedPaused int64 `json:"pages_copied_paused"`
	// Stops is how many times the threads were stopped: one per live
	// round after the first (to read and reset the dirty bits at one
	// instant), plus the final stop. pause_ms is their total.
	Stops int `json:"stops"`
	// LongestPauseMS is the longest single stop.
	LongestPauseMS float64 `json:"longest_pause_ms"`
	// PreCopyUnavailableReason says why pre-copy was asked for but not
	// used (no soft-dirty tracking in the kernel, clear_refs not
	// writable, or a failure mid-way); the copy then happened entirely
	// while stopped.
	PreCopyUnavailableReason string `json:"precopy_unavailable_reason,omitempty"`
}

// Errors callers may want to tell apart.
var (
	// ErrNoProcess means there is no process with that pid.
	ErrNoProcess = errors.New("no such process")
	// ErrPermission means the kernel refused to let us trace the process.
	ErrPermission = errors.New("not permitted to trace the process (run as the same user with kernel.yama.ptrace_scope=0, or as root / with CAP_SYS_PTRACE)")
	// ErrTraced means another tracer (a debugger, strace) holds the process.
	ErrTraced = errors.New("process is already being traced")
	// ErrGcoreMissing means the gcore method was needed but gdb is not installed.
	ErrGcoreMissing = errors.New("gcore not found in PATH: install gdb (apt-get install gdb) or use --method native")
)

// Capture writes a bundle of the live process opts.PID and returns it. The
// process keeps running. On error the partly written bundle directory is
// removed, unless it existed before.
func Capture(ctx context.Context, opts Options) (*Bundle, error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	method := opts.Method
	if method == "" {
		method = MethodAuto
	}
	switch method {
	case MethodAuto, MethodNative, MethodGcore:
	default:
		return nil, fmt.Errorf("capture: unknown method %q (want auto, native or gcore)", method)
	}
	nat := nativeOptions{pid: opts.PID, noTracking: opts.noTracking, inStop: opts.inStop}
	switch opts.PreCopy {
	case "", PreCopyOn:
		nat.preCopy = true
	case PreCopyOff:
	default:
		return nil, fmt.Errorf("capture: unknown pre-copy setting %q (want on or off)", opts.PreCopy)
	}
	if opts.PID <= 0 {
		return nil, fmt.Errorf("capture: pid %d: %w", opts.PID, ErrNoProcess)
	}
	if err := checkProcess(opts.PID); err != nil {
		return nil, err
	}
	dir := opts.OutDir
	if dir == "" {
		dir = fmt.Sprintf("wardgate-capture-%d-%s", opts.PID, start.UTC().Format("20060102T150405Z"))
	}
	created, err := makeBundleDir(dir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok && created {
			os.RemoveAll(dir)
		}
	}()

	b := &Bundle{
		Dir:  dir,
		Core: filepath.Join(dir, bundle.CoreFile),
		Exe:  filepath.Join(dir, bundle.ExeFile),
	}
	m := &b.Meta
	m.PID = opts.PID
	m.GOOS, m.GOARCH = runtime.GOOS, runtime.GOARCH
	if err := collectProcessFiles(opts.PID, dir, m); err != nil {
		return nil, err
	}

	var stats *NativeStats
	switch method {
	case MethodGcore:
		err = captureGcore(ctx, opts, b.Core, m)
	case MethodNative:
		stats, err = captureNative(ctx, nat, b.Core, m)
	case MethodAuto:
		stats, err = captureNative(ctx, nat, b.Core, m)
		// A gone process or a refused ptrace would fail gcore the same way.
		if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNoProcess) && !errors.Is(err, ErrPermission) && !errors.Is(err, ErrTraced) {
			reason := err.Error()
			log.Warn("native capture failed, falling back to gcore", "pid", opts.PID, "reason", reason)
			os.Remove(b.Core)
			m.FallbackReason = reason
			err = captureGcore(ctx, opts, b.Core, m)
		}
	}
	if err != nil {
		return nil, err
	}

	var st syscall.Stat_t
	if err := syscall.Stat(b.Core, &st); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	m.CoreBytesApparent = st.Size
	m.CoreBytesOnDisk = st.Blocks * 512
	m.DurationMS = msSince(start)
	if stats != nil && stats.PreCopyUnavailableReason != "" {
		m.Warnings = append(m.Warnings, "no pre-copy: "+stats.PreCopyUnavailableReason)
		log.Warn("native capture without pre-copy", "pid", opts.PID, "reason", stats.PreCopyUnavailableReason)
	}
	if err := writeMeta(dir, m, stats); err != nil {
		return nil, err
	}
	log.Info("capture written", "dir", dir, "method", m.Method, "pause_ms", m.PauseMS, "core_bytes_on_disk", m.CoreBytesOnDisk)
	ok = true
	return b, nil
}

// writeMeta writes bundle.json: bundle.Meta with, for a native capture,
// the NativeStats fields alongside (readers of Meta ignore them).
func writeMeta(dir string, m *Meta, stats *NativeStats) error {
	if stats == nil {
		return bundle.WriteMeta(dir, m)
	}
	b, err := json.MarshalIndent(struct {
		*Meta
		*NativeStats
	}{m, stats}, "", "  ")
	if err != nil {
		return fmt.Errorf("capture: encode bundle.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.MetaFile), append(b, '\n'), bundle.FileMode); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}

// ReadNativeStats reads the native capturer's figures from the bundle.json
// in dir; all zero for a gcore bundle.
func ReadNativeStats(dir string) (NativeStats, error) {
	var st NativeStats
	raw, err := os.ReadFile(filepath.Join(dir, bundle.MetaFile))
	if err != nil {
		return st, fmt.Errorf("capture: %w", err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("capture: %s: %w", filepath.Join(dir, bundle.MetaFile), err)
	}
	return st, nil
}

func msSince(t time.Time) float64 {
	return float64(time.Since(t).Microseconds()) / 1000
}

// checkProcess gives a clear error for a pid that does not exist.
func checkProcess(pid int) error {
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("capture: pid %d: %w", pid, ErrNoProcess)
		}
		return fmt.Errorf("capture: pid %d: %w", pid, err)
	}
	return nil
}

// makeBundleDir creates dir with mode 0700. An existing empty directory is
// accepted (and tightened to 0700); anything else existing is refused so a
// capture never mixes with or overwrites another.
func makeBundleDir(dir string) (created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return false, fmt.Errorf("capture: %w", err)
	}
	err = os.Mkdir(dir, bundle.DirMode)
	if err == nil {
		// Mkdir applies the umask; be explicit.
		return true, os.Chmod(dir, bundle.DirMode)
	}
	if !errors.Is(err, os.ErrExist) {
		return false, fmt.Errorf("capture: %w", err)
	}
	entries, rerr := os.ReadDir(dir)
	if rerr != nil {
		return false, fmt.Errorf("capture: %s exists and is not a readable directory: %w", dir, rerr)
	}
	if len(entries) > 0 {
		return false, fmt.Errorf("capture: %s already exists and is not empty; choose a new --out", dir)
	}
	if err := os.Chmod(dir, bundle.DirMode); err != nil {
		return false, fmt.Errorf("capture: %w", err)
	}
	return false, nil
}

// collectProcessFiles copies the executable, maps, status and the redacted
// environment into dir, and fills the process fields of m. It runs before
// the process is stopped: none of it needs a consistent snapshot.
func collectProcessFiles(pid int, dir string, m *Meta) error {
	proc := fmt.Sprintf("/proc/%d", pid)
	if exe, err := os.Readlink(proc + "/exe"); err == nil {
		m.Exe = exe
	} else {
		return procErr(pid, err)
	}
	if raw, err := os.ReadFile(proc + "/cmdline"); err == nil {
		m.Cmdline = redact.Args(splitNUL(raw))
	} else {
		return procErr(pid, err)
	}
	exeCopy := filepath.Join(dir, bundle.ExeFile)
	if err := copyFile(proc+"/exe", exeCopy); err != nil {
		return procErr(pid, err)
	}
	if bi, err := buildinfo.ReadFile(exeCopy); err == nil {
		m.GoVersion = bi.GoVersion
		m.BuildInfo = redact.BuildInfo(bi.String())
	} else {
		m.Warnings = append(m.Warnings, "no Go build info in the executable: "+err.Error())
	}
	for _, name := range []string{bundle.MapsFile, bundle.StatusFile} {
		if err := copyFile(proc+"/"+name, filepath.Join(dir, name)); err != nil {
			return procErr(pid, err)
		}
	}
	raw, err := os.ReadFile(proc + "/environ")
	if err != nil {
		return procErr(pid, err)
	}
	if err := os.WriteFile(filepath.Join(dir, bundle.EnvironFile), RedactEnviron(raw), bundle.FileMode); err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	return nil
}

// procErr maps a failure to read /proc/PID/... to the errors callers test.
func procErr(pid int, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ESRCH):
		return fmt.Errorf("capture: pid %d: %w", pid, ErrNoProcess)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("capture: pid %d: %w: %w", pid, ErrPermission, err)
	}
	return fmt.Errorf("capture: pid %d: %w", pid, err)
}

func splitNUL(raw []byte) []string {
	raw = bytes.TrimRight(raw, "\x00")
	if len(raw) == 0 {
		return nil
	}
	return strings.Split(string(raw), "\x00")
}

// copyFile copies src to dst (created with mode 0600). It streams, so it
// also works for /proc files whose size is reported as 0.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, bundle.FileMode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// RedactEnviron turns the NUL-separated /proc/PID/environ into one
// VAR=value per line, each value passed through internal/redact (secret
// names such as *TOKEN*, *CRED*, *PASS*, *KEY*, and secret values such as
// URLs with userinfo, bearer tokens, AWS keys, high-entropy strings).
func RedactEnviron(raw []byte) []byte {
	var out bytes.Buffer
	for _, kv := range redact.Environ(splitNUL(raw)) {
		// A value with a newline would forge a line of its own.
		out.WriteString(strings.ReplaceAll(kv, "\n", `\n`))
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// readLines reads a /proc text file into lines.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}
