package analyze

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/wardgate/wardgate/diag/findings"
)

// WriteMarkdown renders the report for humans (the default output of
// `wardgate diag analyze` and the report.md of an `up` post-mortem bundle):
// one writer per section, in the order a reader needs them.
func (r *Report) WriteMarkdown(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, "# Post-mortem report\n\n")
	res := findings.Result{Findings: r.Findings, Idle: r.Idle}
	if err := res.WriteText(bw, true); err != nil {
		return fmt.Errorf("analyze: write markdown: %w", err)
	}
	for _, section := range []func(io.Writer, *Report){
		writeSource, writeStop, writeCrashing, writeStates, writeGroups,
		writeJobQueue, writeTraces, writeScripts, writeWarnings,
	} {
		section(bw, r)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("analyze: write markdown: %w", err)
	}
	return nil
}

// printf is fmt.Fprintf to w, for the section writers; w is a
// bufio.Writer whose Flush reports the first error.
func printf(w io.Writer) func(format string, args ...any) {
	return func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
}

// writeSource: what was analyzed (application code, core, executable,
// build) and when.
func writeSource(w io.Writer, r *Report) {
	p := printf(w)
	p("Application code: %s\n\n", strings.Join(r.App, ", "))
	p("- core: `%s`\n- executable: `%s`\n", r.Core, r.Exe)
	p("- Go: %s", r.Build.GoVersion)
	if r.Build.MainModule != "" {
		p(", main module %s %s", r.Build.MainModule, r.Build.MainVersion)
	}
	if r.Build.VCSRevision != "" {
		mod := ""
		if r.Build.VCSModified {
			mod = " (modified)"
		}
		p(", %s %s%s %s", r.Build.VCS, r.Build.VCSRevision, mod, r.Build.VCSTime)
	}
	p("\n- generated %s in %.2fs\n\n", r.GeneratedAt.Format(time.RFC3339), r.AnalysisSeconds)
}

// writeStop: "Why it stopped".
func writeStop(w io.Writer, r *Report) {
	p := printf(w)
	p("## Why it stopped\n\n%s\n\n", r.Stop.Summary)
	if r.Stop.Fatal != "" {
		p("```\n%s\n```\n(from %s)\n\n", r.Stop.Fatal, r.Stop.FatalSource)
	}
	if r.Stop.Signal != 0 {
		p("- signal: %d %s, thread %d, pid %d\n", r.Stop.Signal, r.Stop.SignalName, r.Stop.ThreadID, r.Stop.PID)
	}
	if r.Stop.Goroutine != 0 {
		p("- goroutine: %d\n", r.Stop.Goroutine)
	}
	p("\n")
}

// writeCrashing: the crashing goroutine with its locals, when there is one.
func writeCrashing(w io.Writer, r *Report) {
	c := r.Crashing
	if c == nil {
		return
	}
	p := printf(w)
	p("## Crashing goroutine %d (%s)\n\n", c.ID, stateText(c.State, c.WaitReason))
	if len(c.Labels) > 0 {
		src := ""
		if c.LabelsFromContext {
			src = " (read from its context.Context: pprof.Do had already restored the parent's labels while the panic unwound)"
		}
		p("Labels: %s%s\n\n", labelText(c.Labels), src)
	}
	writeFrames(w, c.Frames)
	p("```\n")
	if c.LocalsFrame != "" {
		p("\nLocals of %s:\n\n", c.LocalsFrame)
		if len(c.Locals) == 0 {
			p("(none readable: optimized away or not in the core)\n")
		}
		for _, v := range c.Locals {
			p("- `%s` %s = `%s`\n", v.Name, v.Type, strings.ReplaceAll(v.Value, "`", "'"))
		}
	}
	p("\n")
}

// writeStates: the goroutine count by state.
func writeStates(w io.Writer, r *Report) {
	p := printf(w)
	p("## Goroutines: %d\n\n| state | count |\n| --- | --- |\n", r.Goroutines)
	for _, s := range r.States {
		p("| %s | %d |\n", s.State, s.Count)
	}
}

// writeGroups: the goroutines grouped by stack, in the report's order.
func writeGroups(w io.Writer, r *Report) {
	p := printf(w)
	p("\n## Goroutines grouped by stack (%d groups shown", len(r.Groups))
	if r.GroupsOmitted > 0 {
		p(", %d more omitted", r.GroupsOmitted)
	}
	p(")\n\n")
	for i, g := range r.Groups {
		mark := ""
		if g.Crashing {
			mark = " — CRASHING"
		}
		if g.Idle != "" {
			mark += " (idle: " + g.Idle + ")"
		}
		ref := g.Ref
		if ref == "" {
			ref = fmt.Sprintf("group %d", i+1)
		}
		p("### %s%s: %d × %s in %s%s\n\n", strings.ToUpper(ref[:1]), ref[1:], g.Count, stateText(g.State, g.WaitReason), g.Culprit, mark)
		if g.LongestWaitSeconds != nil {
			p("- longest wait: ≥ %s\n", (time.Duration(*g.LongestWaitSeconds * float64(time.Second))).Round(time.Second))
		} else if g.State == "waiting" {
			p("- longest wait: unknown (the runtime stamps waits only during GCs; fewer than two ended since these goroutines blocked)\n")
		}
		if len(g.Labels) > 0 {
			keys := make([]string, 0, len(g.Labels))
			for k := range g.Labels {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p("- label %s: %s\n", k, strings.Join(g.Labels[k], ", "))
			}
		}
		ids := make([]string, len(g.GoroutineIDs))
		for j, id := range g.GoroutineIDs {
			ids[j] = fmt.Sprint(id)
		}
		more := ""
		if g.Count > len(ids) {
			more = ", ..."
		}
		p("- goroutines: %s%s\n\n", strings.Join(ids, ", "), more)
		writeFrames(w, g.Frames)
		if g.CreatedBy != nil {
			p("created by %s\n    %s:%d\n", g.CreatedBy.Function, g.CreatedBy.File, g.CreatedBy.Line)
		}
		p("```\n\n")
	}
}

// writeJobQueue: the job queue's state read from memory.
func writeJobQueue(w io.Writer, r *Report) {
	p := printf(w)
	p("## Job queue\n\n")
	jq := r.JobQueue
	if !jq.Found {
		p("%s\n\n", jq.Note)
		return
	}
	p("| depth | capacity | busy workers | workers |\n| --- | --- | --- | --- |\n| %s | %s | %s | %s |\n\n",
		num(jq.Depth), num(jq.Capacity), num(jq.BusyWorkers), num(jq.Workers))
	if jq.Source != "" {
		p("Read from %s.\n\n", jq.Source)
	}
	if jq.Note != "" {
		p("%s\n\n", jq.Note)
	}
}

// writeTraces: trace IDs with their goroutine counts and links.
func writeTraces(w io.Writer, r *Report) {
	p := printf(w)
	p("## Traces\n\n")
	if len(r.Traces) == 0 {
		p("No goroutine carries a trace_id label.\n\n")
	}
	for _, t := range r.Traces {
		if t.URL != "" {
			p("- [%s](%s): %d goroutines\n", t.TraceID, t.URL, t.Goroutines)
		} else {
			p("- %s: %d goroutines\n", t.TraceID, t.Goroutines)
		}
	}
	if len(r.Traces) > 0 {
		p("\n")
	}
}

// writeScripts: one section per user script.
func writeScripts(w io.Writer, r *Report) {
	p := printf(w)
	for _, s := range r.Scripts {
		p("## Script %s\n\n", s.Path)
		if s.Error != "" {
			p("Error: %s\n\n", s.Error)
		}
		p("```\n%s\n```\n\n", strings.TrimRight(s.Output, "\n"))
	}
}

// writeWarnings: the parts of the analysis that could not be done.
func writeWarnings(w io.Writer, r *Report) {
	if len(r.Warnings) == 0 {
		return
	}
	p := printf(w)
	p("## Warnings\n\n")
	for _, w := range r.Warnings {
		p("- %s\n", w)
	}
}

func writeFrames(w io.Writer, frames []Frame) {
	fmt.Fprint(w, "```\n")
	for _, f := range frames {
		inl := ""
		if f.Inlined {
			inl = " (inlined)"
		}
		fmt.Fprintf(w, "%s%s\n    %s:%d\n", f.Function, inl, f.File, f.Line)
		if f.Source != "" {
			fmt.Fprintf(w, "        > %s\n", f.Source)
		}
	}
}

func stateText(state, reason string) string {
	if reason != "" {
		return state + " (" + reason + ")"
	}
	return state
}

func labelText(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, " ")
}

func num(p *int64) string {
	if p == nil {
		return "?"
	}
	return fmt.Sprint(*p)
}
