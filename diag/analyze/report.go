package analyze

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/wardgate/wardgate/diag/findings"
)

// The report: what Run returns and both writers render. WriteJSON encodes
// it as it is (the JSON sections are these types' fields); WriteMarkdown
// (markdown.go) has one writer per section.

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

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("analyze: write json: %w", err)
	}
	return nil
}
