package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// How the core of a post-mortem came to be (Postmortem.Method).
const (
	// MethodCrash: the kernel dumped the core of a fatal signal
	// (GOTRACEBACK=crash ends in SIGABRT).
	MethodCrash = "crash"
	// MethodWatchdog: the process hung in its crash path; the supervisor's
	// watchdog captured it live, then killed it.
	MethodWatchdog = "watchdog"
)

// Postmortem is the metadata the `up` supervisor writes for a child that
// died leaving a core or crash output: which service, how it ended, what
// the core costs and what built the executable.
type Postmortem struct {
	Service         string            `json:"service"`
	PID             int               `json:"pid"`
	Cmdline         []string          `json:"cmdline"`
	Method          string            `json:"method"` // MethodCrash or MethodWatchdog
	Time            time.Time         `json:"time"`
	StartedAt       time.Time         `json:"started_at"`
	Exit            string            `json:"exit"`
	Signal          string            `json:"signal,omitempty"`
	CoreDumped      bool              `json:"core_dumped"`
	CoreSize        int64             `json:"core_size,omitempty"`
	CoreBytesOnDisk int64             `json:"core_bytes_on_disk,omitempty"`
	GoVersion       string            `json:"go_version,omitempty"`
	ModulePath      string            `json:"module_path,omitempty"`
	ModuleVersion   string            `json:"module_version,omitempty"`
	BuildSettings   map[string]string `json:"build_settings,omitempty"`
	Restarts        int               `json:"restarts"`
	// CrashReason is the first line of the crash output, e.g. "panic: boom".
	CrashReason string `json:"crash_reason,omitempty"`
}

// WritePostmortem writes p into dir as bundle.json, or as supervisor.json
// when bundle.json is already there (a watchdog capture wrote its Meta,
// which keeps its pause and method details). It returns the file written.
func WritePostmortem(dir string, p *Postmortem) (string, error) {
	path := filepath.Join(dir, MetaFile)
	if _, err := os.Stat(path); err == nil {
		path = filepath.Join(dir, SupervisorMetaFile)
	}
	return path, writeJSON(path, p)
}

// Files are the paths of what analyze reads from a bundle directory.
type Files struct {
	Core string
	Exe  string
	// CrashOutput is "" when the bundle has no crash.txt.
	CrashOutput string
}

// Locate returns the core, exe and crash output of the bundle in dir. When
// the bundle has no copy of the executable, the path recorded in
// bundle.json's exe (where the process ran from) is used instead. It fails
// when dir is not a directory or the core or executable is missing.
func Locate(dir string) (Files, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return Files{}, fmt.Errorf("bundle: %w", err)
	}
	if !st.IsDir() {
		return Files{}, fmt.Errorf("bundle: %s is not a directory", dir)
	}
	f := Files{Core: filepath.Join(dir, CoreFile), Exe: filepath.Join(dir, ExeFile)}
	if !exists(f.Exe) {
		raw, err := os.ReadFile(filepath.Join(dir, MetaFile))
		switch {
		case err == nil:
			var m struct {
				Exe string `json:"exe"`
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				return Files{}, fmt.Errorf("bundle: %s: %w", filepath.Join(dir, MetaFile), err)
			}
			if m.Exe != "" {
				f.Exe = inDir(dir, m.Exe)
			}
		case !errors.Is(err, os.ErrNotExist):
			return Files{}, fmt.Errorf("bundle: %w", err)
		}
	}
	if p := filepath.Join(dir, CrashOutputFile); exists(p) {
		f.CrashOutput = p
	}
	for _, p := range []string{f.Core, f.Exe} {
		if _, err := os.Stat(p); err != nil {
			return Files{}, fmt.Errorf("bundle %s: %w", dir, err)
		}
	}
	return f, nil
}

func inDir(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
