package analyze

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/wardgate/wardgate/diag/findings"
)

// rank runs the findings detectors over every group (all, in the report's
// default order), puts the groups the findings name first, folds the idle
// ones last, and fills r.Groups, r.Findings and r.Idle.
func (a *analysis) rank(r *Report, all []*groupAcc, opts Options) {
	r.App = a.cls.App()
	snap := &findings.Snapshot{Total: 0}
	for i, acc := range all {
		g := findings.Group{
			Ref: "#" + strconv.Itoa(i), Count: acc.count, State: acc.state, WaitReason: acc.reason,
			Frames: toFindingFrames(acc.frames), IDs: acc.ids, Crashing: acc.crashing,
		}
		if acc.createdBy != nil {
			g.CreatedBy = &findings.Frame{Function: acc.createdBy.Function, File: acc.createdBy.File, Line: acc.createdBy.Line}
		}
		if acc.hasWait {
			g.WaitSeconds = acc.longest
		}
		if len(acc.labels) > 0 {
			g.Labels = map[string][]string{}
			for k, vals := range acc.labels {
				for v := range vals {
					g.Labels[k] = append(g.Labels[k], v)
				}
				sort.Strings(g.Labels[k])
			}
		}
		snap.Groups = append(snap.Groups, g)
		snap.Total += acc.count
	}

	var res findings.Result
	if cr := a.crash(r, all); cr != nil {
		res.Merge(findings.CrashFinding(a.cls, cr, snap, opts.TraceURLTemplate))
	}
	var q *findings.Queue
	if jq := r.JobQueue; jq.Found && jq.Depth != nil && jq.Capacity != nil && jq.BusyWorkers != nil && jq.Workers != nil {
		q = &findings.Queue{Depth: *jq.Depth, Capacity: *jq.Capacity, Busy: *jq.BusyWorkers, Workers: *jq.Workers, Source: "the core (" + jq.Source + ")"}
	}
	res.Merge(findings.Goroutines(a.cls, snap, findings.GoroutineOptions{TraceURL: opts.TraceURLTemplate, Queue: q, Source: findings.LocalSource()}))
	if r.Crashing != nil {
		// The crash finding points at the crashing goroutine's section.
		for i := range res.Findings {
			if res.Findings[i].Kind == findings.KindCrash && res.Findings[i].Ref == "" {
				res.Findings[i].Ref = "the crashing goroutine"
			}
		}
	}

	// Groups named by findings first, then the crashing goroutine's, then
	// the rest as before, the idle ones last.
	order, idle := findings.Order(a.cls, snap.Groups, res.Findings, func(x, y *findings.Group) bool { return x.Crashing && !y.Crashing })
	for k, i := range order {
		if k >= opts.MaxGroups {
			r.GroupsOmitted = len(order) - opts.MaxGroups
			break
		}
		g := all[i].group(a.src, k < 5)
		g.Ref, g.Idle = findings.GroupRef(k), idle[i]
		if ci := a.cls.Culprit(snap.Groups[i].Frames); ci >= 0 {
			g.Culprit = snap.Groups[i].Frames[ci].Function
		}
		r.Groups = append(r.Groups, g)
	}
	r.Findings, r.Idle = res.Findings, res.Idle
	if r.Findings == nil {
		r.Findings = []findings.Finding{}
	}
	r.Warnings = append(r.Warnings, res.Notes...)
}

// crash is the crash to report, nil when the process did not crash (a live
// capture, or a signal an operator sent).
func (a *analysis) crash(r *Report, all []*groupAcc) *findings.Crash {
	st := r.Stop
	if st.Fatal != "" && externalSignal(st.Fatal) {
		return nil
	}
	if st.Fatal == "" && !faultSignal(st.Signal) {
		return nil
	}
	cr := &findings.Crash{Text: st.Fatal, Signal: st.SignalName, GoroutineID: st.Goroutine}
	if c := r.Crashing; c != nil {
		cr.GoroutineID = c.ID
		cr.Frames = toFindingFrames(c.Frames)
		cr.Labels = c.Labels
		cr.LocalsFrame = c.LocalsFrame
		var unreadable []string
		for _, v := range c.Locals {
			val := v.Value
			if strings.HasPrefix(val, "(unreadable") {
				unreadable = append(unreadable, v.Name)
				continue
			}
			if len(val) > 80 {
				val = val[:80] + "..."
			}
			cr.Locals = append(cr.Locals, fmt.Sprintf("%s %s = %s", v.Name, v.Type, val))
		}
		switch {
		case len(c.Locals) == 0 && c.LocalsFrame != "":
			cr.LocalsNote = "none in " + c.LocalsFrame + " (optimized away, or not in the core)"
		case len(unreadable) > 0:
			// Optimized code keeps arguments and locals in registers; a
			// frame below the one that faulted has no saved registers.
			cr.LocalsNote = fmt.Sprintf("%s of %s not readable: the optimized build kept them in registers the crash did not save (rebuild with -gcflags=all='-N -l' to keep them in memory)",
				strings.Join(unreadable, ", "), c.LocalsFrame)
		}
	} else {
		cr.LocalsNote = "no crashing goroutine found in the core"
	}
	return cr
}

// faultSignal reports whether a core was written on a signal that means
// the process crashed (rather than a capture, which has none).
func faultSignal(sig int) bool {
	switch sig {
	case 4, 5, 6, 7, 8, 11, 31: // ILL, TRAP, ABRT, BUS, FPE, SEGV, SYS
		return true
	}
	return false
}

func toFindingFrames(fs []Frame) []findings.Frame {
	out := make([]findings.Frame, len(fs))
	for i, f := range fs {
		out[i] = findings.Frame{Function: f.Function, File: f.File, Line: f.Line}
	}
	return out
}
