// Package analyze turns a Go core dump (from a GOTRACEBACK=crash death, from
// gcore or from `wardgate diag capture`) into a post-mortem report: why the
// process stopped, which goroutines were doing what (grouped by identical
// stack, the way panicparse groups a traceback), the crashing goroutine with
// source lines and locals, the wardgate job queue's state read from memory,
// and links from pprof trace_id labels to the trace UI.
//
// Delve does the heavy lifting (core file formats, DWARF, goroutine
// discovery, stack unwinding, variable evaluation, pprof labels) and is used
// as a library rather than by driving the dlv command over its JSON-RPC API:
// a service with 100k goroutines needs one RPC and one stack unwind per
// goroutine that way (plain dlv already spends ~2.6 s just grouping 100k
// goroutines by location), while in-process we read runtime.allgs and each
// runtime.g with one copy from the memory-mapped core (field offsets from
// the binary's DWARF, see gread.go), read each parked goroutine's
// frame-pointer chain the same way (two words per frame), group by the
// chain of return addresses and let delve unwind and symbolize just one
// representative per group. pprof label maps are read directly too, once
// per distinct map. Grouping stays exact: equal return-address chains give
// equal function+file:line sequences, and groups are merged again on that
// symbolic key. Goroutines whose chain cannot be walked (running on a
// thread, in a syscall, or with a broken chain) are unwound by delve.
// A core with 100k goroutines takes about 0.5 s of CPU this way, against
// about 4 s through delve's per-goroutine API.
//
// User-written analysis steps stay in delve's own Starlark dialect:
// Options.Scripts run through the real dlv binary (scripts/postmortem/*.star
// are the shipped examples) and their output is appended to the report.
package analyze

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/wardgate/wardgate/diag/findings"
)

// Options says what to analyze and how.
type Options struct {
	// Core is the core file; Exe the binary that produced it (the very same
	// build: a bundle's exe copy).
	Core, Exe string
	// CrashOutput is an optional file holding the fatal-error text the
	// runtime printed (debug.SetCrashOutput or the captured stderr).
	CrashOutput string
	// Scripts are extra delve Starlark scripts, run through the dlv binary.
	Scripts []string
	// DlvPath is the dlv binary for Scripts; empty means "dlv" on PATH, then
	// $GOPATH/bin/dlv.
	DlvPath string
	// TraceURLTemplate turns a trace_id label into a link; "{trace_id}" is
	// replaced. Empty means no links (the IDs are still listed).
	TraceURLTemplate string
	// MaxGroups caps the goroutine groups in the report (0: 50). The groups
	// left out are counted.
	MaxGroups int
	// App are the application's import-path prefixes (--app); empty means
	// the executable's main module. Findings name application frames.
	App []string
}

// Report is the post-mortem result. WriteMarkdown and WriteJSON render it.
type Report struct {
	Core        string    `json:"core"`
	Exe         string    `json:"exe"`
	GeneratedAt time.Time `json:"generated_at"`
	// AnalysisSeconds is how long Run took, core loading included.
	AnalysisSeconds float64 `json:"analysis_seconds"`

	// Findings are the ranked verdicts, most suspicious first (package
	// findings); Idle counts the goroutines folded as waiting by design.
	Findings []findings.Finding `json:"findings"`
	Idle     *findings.Idle     `json:"idle,omitempty"`
	// App are the import-path prefixes taken for application code.
	App []string `json:"app"`

	Build Build `json:"build"`
	Stop  Stop  `json:"stop"`

	Goroutines int          `json:"goroutines"`
	States     []StateCount `json:"states"`
	// Groups are goroutines with identical stacks, most diagnostic first:
	// those the findings name, in their order, then groups running
	// application code by size, then the idle ones.
	Groups        []Group `json:"groups"`
	GroupsOmitted int     `json:"groups_omitted,omitempty"`

	// Crashing is the goroutine that was running on the signalled thread
	// (or that panicked), nil when the process stopped on an idle thread.
	Crashing *Goroutine `json:"crashing,omitempty"`

	JobQueue JobQueue    `json:"job_queue"`
	Traces   []TraceLink `json:"traces,omitempty"`
	Scripts  []Script    `json:"scripts,omitempty"`
	// Warnings are parts of the analysis that could not be done.
	Warnings []string `json:"warnings,omitempty"`
}

// Build is what the executable says about itself (debug/buildinfo).
type Build struct {
	GoVersion   string `json:"go_version"`
	Path        string `json:"path,omitempty"`
	MainModule  string `json:"main_module,omitempty"`
	MainVersion string `json:"main_version,omitempty"`
	VCS         string `json:"vcs,omitempty"`
	VCSRevision string `json:"vcs_revision,omitempty"`
	VCSTime     string `json:"vcs_time,omitempty"`
	VCSModified bool   `json:"vcs_modified,omitempty"`
}

// Stop says why the process stopped.
type Stop struct {
	PID int `json:"pid,omitempty"`
	// Signal is the signal that made the kernel write the core (the first
	// NT_PRSTATUS note: the thread that took it); 0 for a core written by
	// gcore or a live capture.
	Signal     int    `json:"signal"`
	SignalName string `json:"signal_name,omitempty"`
	ThreadID   int    `json:"thread_id,omitempty"`
	// Fatal is the runtime's own words: "fatal error: ...", "panic: ..."
	// or "SIGQUIT: quit"; FatalSource says where it was read.
	Fatal       string `json:"fatal,omitempty"`
	FatalSource string `json:"fatal_source,omitempty"`
	// Goroutine is the goroutine the crash output names (the panicking one).
	Goroutine int64 `json:"goroutine,omitempty"`
	// Summary is one line for humans.
	Summary string `json:"summary"`
}

// StateCount is how many goroutines are in one state ("running",
// "runnable", "syscall", "waiting: chan receive", ...).
type StateCount struct {
	State string `json:"state"`
	Count int    `json:"count"`
}

// Frame is one stack frame.
type Frame struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int    `json:"line"`
	// Source is the line's text when the file is readable here.
	Source  string `json:"source,omitempty"`
	Inlined bool   `json:"inlined,omitempty"`
}

// Group is goroutines with an identical stack (function+file:line sequence).
type Group struct {
	Count      int    `json:"count"`
	State      string `json:"state"`
	WaitReason string `json:"wait_reason,omitempty"`
	// Culprit is the topmost application frame (else the topmost frame
	// outside the runtime and standard library): the code to look at.
	Culprit   string  `json:"culprit"`
	Frames    []Frame `json:"frames"`
	CreatedBy *Frame  `json:"created_by,omitempty"`
	// LongestWaitSeconds is a lower bound of the longest wait in the group,
	// from g.waitsince, which the runtime only stamps during a GC (with the
	// previous GC's time): nil unless two GCs ended since these goroutines
	// blocked. See coreClock.waitedAtLeast.
	LongestWaitSeconds *float64 `json:"longest_wait_seconds,omitempty"`
	// Labels are the distinct pprof label values per key (at most 20 each).
	Labels       map[string][]string `json:"labels,omitempty"`
	GoroutineIDs []int64             `json:"goroutine_ids"`
	Crashing     bool                `json:"crashing,omitempty"`
	System       bool                `json:"system,omitempty"`
	// Ref is how findings refer to the group ("group 3").
	Ref string `json:"ref"`
	// Idle says why the group waits by design, if it does.
	Idle string `json:"idle,omitempty"`
}

// Goroutine is one goroutine in detail.
type Goroutine struct {
	ID         int64             `json:"id"`
	ThreadID   int               `json:"thread_id,omitempty"`
	State      string            `json:"state"`
	WaitReason string            `json:"wait_reason,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	// LabelsFromContext: the goroutine's own labels were already reset by
	// pprof.Do's deferred restore while the panic unwound, and Labels were
	// read from the context.Context argument of one of its frames instead.
	LabelsFromContext bool    `json:"labels_from_context,omitempty"`
	Frames            []Frame `json:"frames"`
	// LocalsFrame is the frame whose locals are listed: the topmost frame
	// outside the runtime (the top frame itself is usually runtime.raise).
	LocalsFrame string     `json:"locals_frame,omitempty"`
	Locals      []Variable `json:"locals,omitempty"`
}

// Variable is a local variable or argument, rendered the way dlv prints it.
type Variable struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// JobQueue is the wardgate job queue's state read from process memory.
type JobQueue struct {
	Found       bool   `json:"found"`
	Note        string `json:"note,omitempty"`
	Depth       *int64 `json:"depth,omitempty"`
	Capacity    *int64 `json:"capacity,omitempty"`
	BusyWorkers *int64 `json:"busy_workers,omitempty"`
	Workers     *int64 `json:"workers,omitempty"`
	// Source names the variable the values were read from.
	Source string `json:"source,omitempty"`
}

// TraceLink ties a trace_id label to the goroutines carrying it.
type TraceLink struct {
	TraceID    string `json:"trace_id"`
	URL        string `json:"url,omitempty"`
	Goroutines int    `json:"goroutines"`
}

// Script is the output of one user delve script.
type Script struct {
	Path   string `json:"path"`
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
}

// Run analyzes opts.Core and returns the report. A core or executable that
// cannot be read is an error; parts of the analysis that fail are listed in
// Report.Warnings instead.
func Run(ctx context.Context, opts Options) (*Report, error) {
	start := time.Now()
	if opts.Core == "" || opts.Exe == "" {
		return nil, errors.New("analyze: both a core file and its executable are needed")
	}
	for _, p := range []string{opts.Core, opts.Exe} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("analyze: %w", err)
		}
	}
	if opts.MaxGroups <= 0 {
		opts.MaxGroups = 50
	}
	r := &Report{Core: opts.Core, Exe: opts.Exe, GeneratedAt: start.UTC()}

	b, err := readBuild(opts.Exe)
	if err != nil {
		return nil, err
	}
	r.Build = b

	notes, err := readCoreNotes(opts.Core)
	if err != nil {
		return nil, err
	}
	r.Stop.PID, r.Stop.Signal, r.Stop.ThreadID = notes.pid, notes.signal, notes.threadID
	r.Stop.SignalName = signalName(notes.signal)
	if warn, err := checkExeMatchesCore(opts.Core, opts.Exe); err != nil {
		return nil, err
	} else if warn != "" {
		r.Warnings = append(r.Warnings, warn)
	}
	if opts.CrashOutput != "" {
		text, err := os.ReadFile(opts.CrashOutput)
		if err != nil {
			return nil, fmt.Errorf("analyze: crash output: %w", err)
		}
		r.Stop.Fatal, r.Stop.Goroutine = parseCrashOutput(string(text))
		if r.Stop.Fatal != "" {
			r.Stop.FatalSource = "crash output " + opts.CrashOutput
		}
	}

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := runInterruptible(ctx, func() error { return analyzeCore(ctx, opts, r) }); err != nil {
		return nil, err
	}
	r.Stop.Summary = stopSummary(r.Stop)

	for _, s := range opts.Scripts {
		out, err := runScript(ctx, opts, s)
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("analyze: interrupted: %w", cerr)
		}
		sc := Script{Path: s, Output: out}
		if err != nil {
			sc.Error = err.Error()
		}
		r.Scripts = append(r.Scripts, sc)
	}
	r.AnalysisSeconds = time.Since(start).Seconds()
	return r, nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("analyze: write json: %w", err)
	}
	return nil
}
