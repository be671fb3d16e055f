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
//
// The files follow the analysis's phases, the way delve keeps target,
// thread, goroutine and frame apart (analyzeCore runs them in order): open,
// discover, group and detail, each in the file of that name; jobqueue.go
// reads the queue's fields that package jobqueue lists in CoreFields, next
// to the struct they belong to; report.go and markdown.go render the result,
// one writer per Markdown section.
package analyze

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
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

// analyzeCore runs the phases that need delve, each in its own file: open
// the core (open.go), discover its goroutines (discover.go, gread.go),
// find the signalled goroutine (detail.go), group every goroutine by stack
// (group.go), detail the crashing one (detail.go), read the job queue
// (jobqueue.go), rank the groups with package findings (findings.go) and
// list the traces. It fills every section of r but the build, the stop's
// notes and the scripts, which Run reads without delve.
func analyzeCore(ctx context.Context, opts Options, r *Report) error {
	a, err := open(opts, r)
	if err != nil {
		return err
	}
	defer a.close()

	gs, err := a.discover(ctx, r)
	if err != nil {
		return err
	}
	labels := newLabelReader(a)

	crashG := a.signalled(r)
	crashID := int64(0)
	if crashG != nil {
		crashID = crashG.ID
	}
	if r.Stop.Goroutine == 0 {
		r.Stop.Goroutine = crashID
	}

	gr, err := a.group(ctx, gs, labels, crashID, r)
	if err != nil {
		return err
	}

	if crashG == nil && r.Stop.Goroutine != 0 {
		crashG = a.goroutineByID(gs, r.Stop.Goroutine)
	}
	if crashG != nil {
		r.Crashing = a.detail(crashG, &r.Warnings)
	}

	all := gr.ordered(r)
	r.JobQueue = a.jobQueue(gs)
	a.rank(r, all, opts)
	r.Traces = traceLinks(gr.traces, opts.TraceURLTemplate)
	return nil
}
