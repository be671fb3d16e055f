// Package findings turns what a diag command collected (goroutines grouped
// by stack, a crash, a CPU profile, two heap profiles, the job queue's
// numbers) into a ranked list of findings: what is wrong, in which
// application function, at which file:line, for how many goroutines and for
// how long. Every human-readable diag output opens with this list, and every
// JSON output carries it as "findings", so an SRE (or a script) reads the
// verdict first and the evidence after, the way WinDbg's !analyze -v or a JVM
// thread dump's "Found one Java-level deadlock" do.
//
// The detectors are heuristics over facts the runtime records (goroutine
// state, wait reason, wait time, stack, creator, pprof labels); each says in
// its evidence lines what it saw, so a wrong guess is visible as one. They
// are written by hand because no Go library ranks goroutines by suspicion:
// panicparse (used to read text dumps) groups and highlights, it does not
// judge.
package findings

import (
	"sort"
)

// Kind names the class of problem a finding reports.
type Kind string

// The kinds, as in SPEC.md.
const (
	KindCrash        Kind = "crash"
	KindDeadlock     Kind = "deadlock"
	KindStuckLock    Kind = "stuck-lock"
	KindLeak         Kind = "leak"
	KindHungIO       Kind = "hung-io"
	KindStuckQueue   Kind = "stuck-queue"
	KindCPU          Kind = "cpu"
	KindMemoryGrowth Kind = "memory-growth"
)

// Severity orders findings: critical before high before medium before low.
type Severity string

// The severities.
const (
	Critical Severity = "critical"
	High     Severity = "high"
	Medium   Severity = "medium"
	Low      Severity = "low"
)

func (s Severity) rank() int {
	switch s {
	case Critical:
		return 4
	case High:
		return 3
	case Medium:
		return 2
	case Low:
		return 1
	}
	return 0
}

// Finding is one suspected problem.
type Finding struct {
	Kind     Kind     `json:"kind"`
	Severity Severity `json:"severity"`
	// Headline is the one line a human reads first.
	Headline string `json:"headline"`
	// Function, File and Line are the first application frame: the code to
	// look at.
	Function string `json:"function,omitempty"`
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	// Goroutines is how many goroutines the finding covers; GoroutineIDs
	// lists some of them.
	Goroutines   int      `json:"goroutines,omitempty"`
	GoroutineIDs []int64  `json:"goroutine_ids,omitempty"`
	TraceIDs     []string `json:"trace_ids,omitempty"`
	// TraceURLs are links for TraceIDs when a template was given.
	TraceURLs []string `json:"trace_urls,omitempty"`
	// WaitSeconds is a lower bound of the longest wait, when known.
	WaitSeconds float64 `json:"wait_seconds,omitempty"`
	// Numbers are the figures behind the finding (counts, bytes, rates,
	// shares), by name.
	Numbers map[string]float64 `json:"numbers,omitempty"`
	// Evidence is a few lines: decisive frames, locks, creators.
	Evidence []string `json:"evidence,omitempty"`
	// Ref points at the detailed section further down ("group 3").
	Ref string `json:"ref,omitempty"`

	score float64
}

// Idle summarizes goroutines that wait by design (accept loops, idle
// workers, signal handlers, exporters, the runtime's own).
type Idle struct {
	Goroutines int `json:"goroutines"`
	Groups     int `json:"groups"`
	// Where names a few of them ("net/http.(*Server).Serve ×1").
	Where []string `json:"where,omitempty"`
}

// Result is the ranked findings of one diagnosis.
type Result struct {
	Findings []Finding `json:"findings"`
	Idle     *Idle     `json:"idle,omitempty"`
	// Notes say what the diagnosis could not look at ("no CPU profile").
	Notes []string `json:"notes,omitempty"`
}

// add appends f unless a finding of the same kind already names the same
// function (two views of one problem, e.g. a core and a live sample).
func (r *Result) add(f Finding) {
	for i := range r.Findings {
		o := &r.Findings[i]
		if o.Kind == f.Kind && o.Function == f.Function && o.Line == f.Line && f.Function != "" {
			if f.score > o.score {
				*o = f
			}
			return
		}
	}
	r.Findings = append(r.Findings, f)
}

// sortFindings ranks by severity, then by score (magnitude within a
// severity: wait time, count, share), most suspicious first.
func (r *Result) sortFindings() {
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if a.Severity.rank() != b.Severity.rank() {
			return a.Severity.rank() > b.Severity.rank()
		}
		return a.score > b.score
	})
}

// Merge adds other's findings to r and ranks the union.
func (r *Result) Merge(other Result) {
	for _, f := range other.Findings {
		r.add(f)
	}
	if other.Idle != nil {
		if r.Idle == nil {
			r.Idle = &Idle{}
		}
		r.Idle.Goroutines += other.Idle.Goroutines
		r.Idle.Groups += other.Idle.Groups
		r.Idle.Where = appendCapped(r.Idle.Where, other.Idle.Where, 6)
	}
	r.Notes = append(r.Notes, other.Notes...)
	r.sortFindings()
}

func appendCapped(dst, src []string, n int) []string {
	for _, s := range src {
		if len(dst) >= n {
			break
		}
		dst = append(dst, s)
	}
	return dst
}
