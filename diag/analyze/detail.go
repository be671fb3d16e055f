package analyze

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/go-delve/delve/pkg/proc"
	"github.com/go-delve/delve/service/api"

	"github.com/wardgate/wardgate/diag/findings"
)

// Detail: the crashing goroutine in full (source lines, locals, labels
// from its context) and the fatal message read from memory. It is a phase
// of its own because it is the only one that evaluates variables, and it
// runs for one goroutine where the group phase runs for all of them.

// signalled returns the goroutine on the signalled thread (delve's current
// thread is the first NT_PRSTATUS one, the same the kernel gave the
// signal), nil when that thread ran none, and fills r.Stop.Fatal from
// memory when the crash output did not give it.
func (a *analysis) signalled(r *Report) *proc.G {
	var crashG *proc.G
	if th := a.t.CurrentThread(); th != nil {
		if g, err := proc.GetG(th); err == nil && g != nil && g.ID != 0 {
			crashG = g
		}
		if r.Stop.Fatal == "" {
			if msg := a.fatalFromMemory(th); msg != "" {
				r.Stop.Fatal, r.Stop.FatalSource = msg, "memory (argument of the runtime's fatal/throw frame)"
			}
		}
	}
	return crashG
}

// goroutineByID is delve's view of goroutine id, nil if it is not in gs.
func (a *analysis) goroutineByID(gs []gInfo, id int64) *proc.G {
	for i := range gs {
		if gs[i].id == id {
			if g, err := a.delveG(&gs[i]); err == nil {
				return g
			}
			break
		}
	}
	return nil
}

// detail unwinds one goroutine with source lines and the locals of its
// topmost user frame.
func (a *analysis) detail(g *proc.G, warnings *[]string) *Goroutine {
	d := &Goroutine{ID: g.ID, Labels: g.Labels()}
	d.State, d.WaitReason = a.state(&gInfo{status: g.Status, waitReason: uint8(g.WaitReason)})
	if g.Thread != nil {
		d.ThreadID = g.Thread.ThreadID()
	}
	frames, err := proc.GoroutineStacktrace(a.t, g, stackDepth, 0)
	if err != nil {
		*warnings = append(*warnings, fmt.Sprintf("crashing goroutine %d: stack: %v", g.ID, err))
	}
	d.Frames = convertFrames(frames)
	for i := range d.Frames {
		d.Frames[i].Source = a.src.line(d.Frames[i].File, d.Frames[i].Line)
	}
	top := -1
	ff := make([]findings.Frame, len(d.Frames))
	for i, f := range d.Frames {
		ff[i] = findings.Frame{Function: f.Function, File: f.File, Line: f.Line}
	}
	if ci := a.cls.Culprit(ff); ci >= 0 && !strings.HasPrefix(ff[ci].Function, "runtime.") {
		top = ci
	}
	if top < 0 {
		for i, f := range d.Frames {
			if !strings.HasPrefix(f.Function, "runtime.") {
				top = i
				break
			}
		}
	}
	if top < 0 {
		return d
	}
	threadID := 0
	if g.Thread != nil {
		threadID = g.Thread.ThreadID()
	}
	if len(d.Labels) == 0 {
		if l := a.contextLabels(g, frames, threadID); len(l) > 0 {
			d.Labels, d.LabelsFromContext = l, true
		}
	}
	d.LocalsFrame = fmt.Sprintf("#%d %s", top, d.Frames[top].Function)
	scope := proc.FrameToScope(a.t, a.t.Memory(), g, threadID, frames[top:]...)
	vars, err := scope.FunctionArguments(localsLoad)
	if err == nil {
		var locals []*proc.Variable
		locals, err = scope.LocalVariables(localsLoad)
		vars = append(vars, locals...)
	}
	if err != nil {
		*warnings = append(*warnings, fmt.Sprintf("crashing goroutine %d: locals of %s: %v", g.ID, d.Frames[top].Function, err))
	}
	for _, v := range vars {
		av := api.ConvertVar(v)
		d.Locals = append(d.Locals, Variable{Name: v.Name, Type: av.Type, Value: redactLocal(v.Name, valueString(av))})
	}
	return d
}

var localsLoad = proc.LoadConfig{FollowPointers: true, MaxVariableRecurse: 1, MaxStringLen: 256, MaxArrayValues: 16, MaxStructFields: -1}

func valueString(v *api.Variable) string {
	if v.Unreadable != "" {
		return "(unreadable " + v.Unreadable + ")"
	}
	s := v.SinglelineString()
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return s
}

// fatalFromMemory reads the message argument of runtime.fatal/throw on the
// thread's stack: a deadlock's "all goroutines are asleep" is printed
// before the runtime starts copying output to the crash file, so memory is
// the only place it is sure to be found.
func (a *analysis) fatalFromMemory(th proc.Thread) string {
	frames, err := proc.ThreadStacktrace(a.t, th, stackDepth)
	if err != nil {
		return ""
	}
	g, _ := proc.GetG(th)
	for i, f := range frames {
		if f.Call.Fn == nil {
			continue
		}
		switch f.Call.Fn.Name {
		case "runtime.fatal", "runtime.throw":
		default:
			continue
		}
		scope := proc.FrameToScope(a.t, a.t.Memory(), g, th.ThreadID(), frames[i:]...)
		v, err := scope.EvalExpression("s", proc.LoadConfig{MaxStringLen: 1024})
		if err != nil || v.Unreadable != nil || v.Value == nil {
			continue
		}
		msg := strings.Trim(v.Value.ExactString(), `"`)
		if s, err := strconv.Unquote(v.Value.ExactString()); err == nil {
			msg = s
		}
		return "fatal error: " + msg
	}
	return ""
}

// sourceCache reads source files once.
type sourceCache struct {
	files map[string][]string
}

func newSourceCache() *sourceCache { return &sourceCache{files: map[string][]string{}} }

func (c *sourceCache) line(file string, n int) string {
	if file == "" || n <= 0 {
		return ""
	}
	lines, ok := c.files[file]
	if !ok {
		data, err := readSourceFile(file)
		if err == nil {
			lines = strings.Split(string(data), "\n")
		}
		c.files[file] = lines
	}
	if n > len(lines) {
		return ""
	}
	return clipLine(strings.TrimSpace(lines[n-1]))
}
