// Package bundle defines the on-disk layout of a wardgate bundle: the
// directory `wardgate diag capture` writes, the post-mortem directory the
// `up` supervisor writes for a crashed child, and what `wardgate diag
// analyze` reads from either. Every file name and every metadata record of
// that directory is declared here, so writers and readers cannot drift
// apart. It lives apart from the capturer so readers (analyze, watch, the
// supervisor) do not pull in ptrace code.
//
// A bundle is a directory (mode 0700) holding files with mode 0600:
//
//	core             ELF core of the process, readable by `dlv core exe core`
//	exe              copy of /proc/PID/exe at capture time (mode 0700 in a post-mortem)
//	bundle.json      Meta (a capture) or Postmortem (a crash the supervisor saw)
//	maps             copy of /proc/PID/maps (a capture)
//	status           copy of /proc/PID/status (a capture)
//	environ          the environment, one VAR=value per line, secrets redacted (a capture)
//	crash.txt        the runtime's fatal output (GOTRACEBACK), when the process wrote one
//	core.exit        the kernel's core at exit, when a watchdog capture already took core
//	supervisor.json  Postmortem, when a watchdog capture already wrote bundle.json
//	report.md        the analysis report (written by `up` after a crash)
//	report.json      the same report as JSON
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// File names inside a bundle directory.
const (
	CoreFile    = "core"
	ExeFile     = "exe"
	MetaFile    = "bundle.json"
	MapsFile    = "maps"
	StatusFile  = "status"
	EnvironFile = "environ"

	// CrashOutputFile holds the runtime's fatal output of the process
	// (GOTRACEBACK=crash), as the supervisor moved it in.
	CrashOutputFile = "crash.txt"
	// CoreExitFile is the kernel's core of a process the watchdog had
	// already captured live into CoreFile.
	CoreExitFile = "core.exit"
	// SupervisorMetaFile holds the supervisor's Postmortem when a watchdog
	// capture already wrote MetaFile.
	SupervisorMetaFile = "supervisor.json"
	// ReportFile and ReportJSONFile are the analysis report of the core,
	// as Markdown and as JSON.
	ReportFile     = "report.md"
	ReportJSONFile = "report.json"
	// LogTailFile holds the last lines the process logged, read from its
	// log ring (internal/logring) after it died: they include the lines it
	// had buffered but not yet written to its stderr (stderr.log lacks
	// those).
	LogTailFile = "log-tail.txt"
)

// Modes of the bundle directory and of the files in it: a core holds every
// secret the process had in memory, so only the owner may read it.
const (
	DirMode  os.FileMode = 0o700
	FileMode os.FileMode = 0o600
)

// Meta is bundle.json: what was captured, how, and what it cost.
type Meta struct {
	PID     int      `json:"pid"`
	Cmdline []string `json:"cmdline"`
	// Exe is the path of the executable as the kernel saw it
	// (readlink /proc/PID/exe), possibly ending in " (deleted)".
	Exe string `json:"exe"`
	// GoVersion and BuildInfo come from the executable (debug/buildinfo);
	// both are empty for a non-Go program.
	GoVersion string `json:"go_version,omitempty"`
	BuildInfo string `json:"build_info,omitempty"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`

	// Method is how the core was written: "native" or "gcore".
	Method string `json:"method"`
	// FallbackReason says why "auto" did not use the native capturer.
	FallbackReason string `json:"fallback_reason,omitempty"`
	// PauseMS is the total time the process's threads were stopped, in
	// milliseconds. For native it sums every stop (with pre-copy: a short
	// setup stop and the final stop; see the precopy_* fields the capturer
	// adds); for gcore it is the duration of the gcore command (gdb holds
	// the process for nearly all of it).
	PauseMS float64 `json:"pause_ms"`
	// Threads is the number of threads in the core.
	Threads int `json:"threads"`
	// CoreBytesOnDisk is st_blocks*512 of the core: what it really costs.
	CoreBytesOnDisk int64 `json:"core_bytes_on_disk"`
	// CoreBytesApparent is the core's st_size (holes included).
	CoreBytesApparent int64 `json:"core_bytes_apparent"`
	// MemoryBytesCopied is how much process memory the native capturer
	// put in the core (copied live or during the stop).
	MemoryBytesCopied int64 `json:"memory_bytes_copied,omitempty"`
	// Time is when the process was stopped (UTC).
	Time time.Time `json:"time"`
	// DurationMS is the wall time of the whole capture, writing included.
	DurationMS float64 `json:"duration_ms"`
	// Warnings lists things that went wrong without spoiling the bundle
	// (an unreadable page, a file that could not be copied).
	Warnings []string `json:"warnings,omitempty"`
}

// Bundle is a capture bundle on disk.
type Bundle struct {
	Dir  string // the bundle directory
	Core string // path of the core file
	Exe  string // path of the copied executable
	Meta Meta
}

// WriteMeta writes m as dir/bundle.json with mode 0600.
func WriteMeta(dir string, m *Meta) error {
	return writeJSON(filepath.Join(dir, MetaFile), m)
}

// writeJSON writes v, indented, as the file path with mode 0600.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("bundle: encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(b, '\n'), FileMode); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	return nil
}

// Read opens the bundle in dir: it checks that the core and exe are there
// and decodes bundle.json.
func Read(dir string) (*Bundle, error) {
	b := &Bundle{
		Dir:  dir,
		Core: filepath.Join(dir, CoreFile),
		Exe:  filepath.Join(dir, ExeFile),
	}
	raw, err := os.ReadFile(filepath.Join(dir, MetaFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("bundle: %s is not a capture bundle (no %s): %w", dir, MetaFile, err)
		}
		return nil, fmt.Errorf("bundle: %w", err)
	}
	if err := json.Unmarshal(raw, &b.Meta); err != nil {
		return nil, fmt.Errorf("bundle: %s: %w", filepath.Join(dir, MetaFile), err)
	}
	for _, p := range []string{b.Core, b.Exe} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
	}
	return b, nil
}
