package analyze

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/go-delve/delve/pkg/proc"

	"github.com/wardgate/wardgate/jobqueue"
)

// jobqueuePkg is the import path of the wardgate job queue.
const jobqueuePkg = "github.com/wardgate/wardgate/jobqueue"

// queueFields are the names of the job queue's fields the report reads,
// lower-cased, by role ("depth", "capacity", "busy", "workers"). The queue
// keeps no package-level state (one process may embed several queues), so
// the values are found from the goroutines instead: the receiver or
// arguments of a jobqueue frame (a worker or dispatcher loop) lead to the
// queue struct, whose fields are matched by these names. The list is
// jobqueue.CoreFields, declared and tested next to the struct it describes.
type queueFields map[string][]string

func newQueueFields() queueFields {
	qf := queueFields{}
	for _, f := range jobqueue.CoreFields() {
		name := f.Path[strings.LastIndexByte(f.Path, '.')+1:]
		qf[f.Role] = append(qf[f.Role], strings.ToLower(name))
	}
	return qf
}

// jobQueue finds the wardgate job queue in the goroutines' frames and reads
// its depth, capacity and busy workers.
func (a *analysis) jobQueue(gs []gInfo) JobQueue {
	fields := newQueueFields()
	var workerGs, busyGs int64
	var found *proc.Variable
	var source string
	seenPkg := false
	for i := range gs {
		// Workers are started by the job queue; other goroutines that
		// pass through it (HTTP handlers) are not unwound here.
		if !strings.HasPrefix(a.funcName(gs[i].startPC), jobqueuePkg) {
			continue
		}
		g, err := a.delveG(&gs[i])
		if err != nil {
			continue
		}
		seenPkg = true
		frames, err := proc.GoroutineStacktrace(a.t, g, stackDepth, 0)
		if err != nil {
			continue
		}
		isWorker, busy := false, false
		for i, f := range frames {
			if f.Call.Fn == nil {
				continue
			}
			name := f.Call.Fn.Name
			if strings.HasPrefix(name, jobqueuePkg) && strings.Contains(strings.ToLower(name), "worker") {
				isWorker = true
				// A worker below a frame of user or sink code is busy; one
				// parked straight in its loop's channel receive is idle.
				busy = i > 0 && frameAboveIsWork(frames[:i])
			}
			if found == nil && strings.HasPrefix(name, jobqueuePkg) {
				if v, src := a.queueVar(g, frames, i, fields); v != nil {
					found, source = v, src
				}
			}
		}
		if isWorker {
			workerGs++
			if busy {
				busyGs++
			}
		}
	}
	if !seenPkg {
		return JobQueue{Note: "not a wardgate job queue process (no goroutine started by " + jobqueuePkg + ")"}
	}
	jq := JobQueue{Found: true}
	if workerGs > 0 {
		w, b := workerGs, busyGs
		jq.Workers, jq.BusyWorkers = &w, &b
	}
	if found == nil {
		jq.Note = "job queue goroutines found, but no queue struct with depth/capacity fields in their frames"
		return jq
	}
	jq.Source = source
	vals := map[string]*int64{}
	collectQueueFields(found, fields, vals, 0)
	if vals["depth"] == nil {
		vals["depth"] = vals["chanlen"]
	}
	if vals["capacity"] == nil {
		vals["capacity"] = vals["chancap"]
	}
	if v := vals["depth"]; v != nil {
		jq.Depth = v
	}
	if v := vals["capacity"]; v != nil {
		jq.Capacity = v
	}
	if v := vals["busy"]; v != nil {
		jq.BusyWorkers = v
	}
	if v := vals["workers"]; v != nil {
		jq.Workers = v
	}
	if jq.Depth == nil {
		jq.Note = "queue struct found (" + source + ") but no depth field recognized"
	}
	return jq
}

// frameAboveIsWork reports whether any frame above the worker loop runs
// code other than the runtime's channel/select parking.
func frameAboveIsWork(frames []proc.Stackframe) bool {
	for _, f := range frames {
		if f.Call.Fn == nil {
			continue
		}
		n := f.Call.Fn.Name
		if strings.HasPrefix(n, "runtime.") || strings.HasPrefix(n, "internal/") {
			continue
		}
		return true
	}
	return false
}

var queueLoad = proc.LoadConfig{FollowPointers: true, MaxVariableRecurse: 3, MaxStringLen: 64, MaxArrayValues: 0, MaxStructFields: -1}

// queueVar returns the first argument or local of frame i that is (a
// pointer to) a struct of the jobqueue package having a recognized field.
func (a *analysis) queueVar(g *proc.G, frames []proc.Stackframe, i int, fields queueFields) (*proc.Variable, string) {
	tid := 0
	if g.Thread != nil {
		tid = g.Thread.ThreadID()
	}
	scope := proc.FrameToScope(a.t, a.t.Memory(), g, tid, frames[i:]...)
	vars, err := scope.FunctionArguments(queueLoad)
	if err != nil {
		return nil, ""
	}
	if locals, err := scope.LocalVariables(queueLoad); err == nil {
		vars = append(vars, locals...)
	}
	for _, v := range vars {
		typ := ""
		if v.DwarfType != nil {
			typ = v.DwarfType.String()
		}
		if !strings.Contains(typ, jobqueuePkg) {
			continue
		}
		sv := v
		for sv.Kind == reflect.Ptr && len(sv.Children) == 1 {
			sv = &sv.Children[0]
		}
		if sv.Kind != reflect.Struct {
			continue
		}
		vals := map[string]*int64{}
		collectQueueFields(sv, fields, vals, 0)
		if vals["depth"] != nil || vals["capacity"] != nil || vals["chanlen"] != nil {
			return sv, fmt.Sprintf("%s (%s) in %s of goroutine %d", v.Name, typ, frames[i].Call.Fn.Name, g.ID)
		}
	}
	return nil, ""
}

// collectQueueFields walks struct fields (then nested structs, two levels)
// and records the first integer or channel found for each role. A channel
// field that is the queue itself gives depth = len and capacity = cap.
func collectQueueFields(v *proc.Variable, fields queueFields, out map[string]*int64, level int) {
	if level > 2 {
		return
	}
	for i := range v.Children {
		c := &v.Children[i]
		name := strings.ToLower(c.Name)
		for role, names := range fields {
			if out[role] != nil || !matchesAny(name, names) {
				continue
			}
			if n, ok := intValue(c); ok {
				out[role] = &n
			}
		}
		if c.Kind == reflect.Chan && (name == "queue" || name == "jobs" || name == "ch" || strings.Contains(name, "queue")) {
			var qlen, qcap *int64
			for j := range c.Children {
				hc := &c.Children[j]
				switch hc.Name {
				case "qcount":
					if n, ok := intValue(hc); ok {
						qlen = &n
					}
				case "dataqsiz":
					if n, ok := intValue(hc); ok {
						qcap = &n
					}
				}
			}
			// Only a fallback: named counters seen later in the struct win.
			if out["chanlen"] == nil && qlen != nil {
				out["chanlen"] = qlen
			}
			if out["chancap"] == nil && qcap != nil {
				out["chancap"] = qcap
			}
		}
	}
	// Nested structs only after the struct's own fields: Queue.reserved
	// must win over a same-named counter inside an embedded helper.
	for i := range v.Children {
		sc := &v.Children[i]
		for sc.Kind == reflect.Ptr && len(sc.Children) == 1 {
			sc = &sc.Children[0]
		}
		if sc.Kind == reflect.Struct && !isAtomicWrapper(sc) {
			collectQueueFields(sc, fields, out, level+1)
		}
	}
}

func matchesAny(name string, names []string) bool {
	for _, n := range names {
		if name == n {
			return true
		}
	}
	return false
}

func isAtomicWrapper(v *proc.Variable) bool {
	return strings.HasPrefix(v.TypeString(), "sync/atomic.")
}
