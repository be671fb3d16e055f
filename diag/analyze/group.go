package analyze

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/go-delve/delve/pkg/proc"
)

// Group: goroutines with identical stacks become one group, keyed first by
// their frame-pointer chain and then by the symbolic stack delve unwinds
// for one representative. It is a phase of its own because it is the one
// loop over every goroutine (100k in a big core): the states, labels and
// trace IDs are counted in the same pass, and nothing in it evaluates
// variables.

// grouping is the result of the group phase.
type grouping struct {
	groups map[string]*groupAcc // symbolic key -> group
	traces map[string]int       // trace_id label -> goroutines
}

// group scans every goroutine once: its state, labels and group. It fills
// r.Goroutines and r.States, and adds a warning per goroutine delve could
// not unwind.
func (a *analysis) group(ctx context.Context, gs []gInfo, labels *labelReader, crashID int64, r *Report) (*grouping, error) {
	clk := a.coreClock(gs)
	groups := map[string]*groupAcc{} // symbolic key -> group
	byPCs := map[string]string{}     // return-address chain -> symbolic key
	states := map[string]int{}
	traceCount := map[string]int{}
	var pcs []uint64
	var keyBuf []byte
	for i := range gs {
		g := &gs[i]
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		state, reason := a.state(g)
		if reason != "" {
			states[state+": "+reason]++
		} else {
			states[state]++
		}
		labels := labels.labels(g)
		if tid := labels["trace_id"]; tid != "" {
			traceCount[tid]++
		}

		var key string
		pcs = a.fpChain(g, pcs[:0])
		if pcs != nil {
			keyBuf = keyBuf[:0]
			for _, pc := range pcs {
				keyBuf = binary.LittleEndian.AppendUint64(keyBuf, pc)
			}
			keyBuf = binary.LittleEndian.AppendUint64(keyBuf, g.goPC)
			keyBuf = append(keyBuf, byte(g.status), g.waitReason)
			k, ok := byPCs[string(keyBuf)]
			if !ok {
				var err error
				if k, err = a.groupOf(groups, g, state, reason); err != nil {
					r.Warnings = append(r.Warnings, err.Error())
				}
				byPCs[string(keyBuf)] = k
			}
			key = k
		} else {
			var err error
			if key, err = a.groupOf(groups, g, state, reason); err != nil {
				r.Warnings = append(r.Warnings, err.Error())
			}
		}
		acc := groups[key]
		acc.add(g, labels, clk, g.id == crashID)
	}

	r.Goroutines = len(gs)
	for s, n := range states {
		r.States = append(r.States, StateCount{State: s, Count: n})
	}
	sort.Slice(r.States, func(i, j int) bool {
		if r.States[i].Count != r.States[j].Count {
			return r.States[i].Count > r.States[j].Count
		}
		return r.States[i].State < r.States[j].State
	})
	return &grouping{groups: groups, traces: traceCount}, nil
}

// ordered returns the groups in the report's default order, after giving
// the crashing goroutine's group the labels the detail phase read from its
// context (pprof.Do's restore had already cleared them from the g).
func (gr *grouping) ordered(r *Report) []*groupAcc {
	all := make([]*groupAcc, 0, len(gr.groups))
	for _, acc := range gr.groups {
		all = append(all, acc)
		if r.Crashing != nil && r.Crashing.LabelsFromContext && (acc.crashing || acc.has(r.Crashing.ID)) {
			acc.addLabels(r.Crashing.Labels)
			if tid := r.Crashing.Labels["trace_id"]; tid != "" {
				gr.traces[tid]++
			}
		}
	}
	// A signal sent from outside (an operator's SIGQUIT) lands on whatever
	// thread; the goroutine that happened to run there is not the culprit.
	promote := !externalSignal(r.Stop.Fatal)
	sort.Slice(all, func(i, j int) bool { return all[i].before(all[j], r.Stop.Goroutine, promote) })
	return all
}

// maxLabelValues caps the distinct values kept per label key and group.
const maxLabelValues = 20

// maxGroupIDs caps the goroutine IDs listed per group.
const maxGroupIDs = 10

// groupOf unwinds g with delve and returns the symbolic key of its group,
// creating the group if needed.
func (a *analysis) groupOf(groups map[string]*groupAcc, g *gInfo, state, reason string) (string, error) {
	dg, err := a.delveG(g)
	if err != nil {
		return a.newGroup(groups, nil, nil, state, reason), fmt.Errorf("goroutine %d: %w", g.id, err)
	}
	frames, err := a.frames(dg)
	if err != nil {
		err = fmt.Errorf("goroutine %d: stack: %w", g.id, err)
	}
	return a.newGroup(groups, dg, frames, state, reason), err
}

// fpChain returns the return addresses of a parked goroutine by following
// its saved frame pointers (amd64 and arm64 Go code always keeps them), or
// nil when the goroutine is on a thread or the chain looks wrong; the caller
// then asks delve to unwind it.
func (a *analysis) fpChain(g *gInfo, pcs []uint64) []uint64 {
	if a.threadG[g.id] != nil || (g.status != proc.Gwaiting && g.status != proc.Grunnable) || g.bp == 0 {
		return nil
	}
	switch a.bi.Arch.Name {
	case "amd64", "arm64":
	default:
		return nil
	}
	pcs = append(pcs, g.pc)
	fp := g.bp
	if fp < g.sp {
		return nil
	}
	var buf [16]byte
	for depth := 0; fp != 0; depth++ {
		if depth > stackDepth*4 {
			return nil
		}
		if err := a.mem.read(buf[:], fp); err != nil {
			return nil
		}
		next := binary.LittleEndian.Uint64(buf[0:])
		ret := binary.LittleEndian.Uint64(buf[8:])
		if ret == 0 {
			break
		}
		pcs = append(pcs, ret)
		if next != 0 && (next <= fp || next-fp > 1<<30) {
			return nil // frame pointers grow towards the stack's top
		}
		fp = next
	}
	return pcs
}

func (a *analysis) frames(g *proc.G) ([]proc.Stackframe, error) {
	frames, err := proc.GoroutineStacktrace(a.t, g, stackDepth, 0)
	if fs := a.sigtrampFrames(g, frames); fs != nil {
		return fs, nil
	}
	return frames, err
}

func (a *analysis) newGroup(groups map[string]*groupAcc, g *proc.G, frames []proc.Stackframe, state, reason string) string {
	fs := convertFrames(frames)
	var sb strings.Builder
	sb.WriteString(state)
	sb.WriteByte('|')
	sb.WriteString(reason)
	for _, f := range fs {
		fmt.Fprintf(&sb, "|%s %s:%d", f.Function, f.File, f.Line)
	}
	var created *Frame
	if g != nil {
		created = a.createdBy(g)
	}
	if created != nil {
		fmt.Fprintf(&sb, "|created by %s %s:%d", created.Function, created.File, created.Line)
	}
	key := sb.String()
	if _, ok := groups[key]; !ok {
		groups[key] = &groupAcc{
			frames: fs, createdBy: created, state: state, reason: reason,
			system: g != nil && g.System(a.t), labels: map[string]map[string]bool{},
		}
	}
	return key
}

func (a *analysis) createdBy(g *proc.G) *Frame {
	if g.GoPC == 0 {
		return nil
	}
	loc := g.Go()
	if loc.Fn == nil {
		return nil
	}
	return &Frame{Function: loc.Fn.Name, File: loc.File, Line: loc.Line}
}

func convertFrames(frames []proc.Stackframe) []Frame {
	out := make([]Frame, 0, len(frames))
	for _, f := range frames {
		fr := Frame{File: f.Call.File, Line: f.Call.Line, Inlined: f.Inlined}
		if f.Call.Fn != nil {
			fr.Function = f.Call.Fn.Name
		} else {
			fr.Function = fmt.Sprintf("?%#x", f.Call.PC)
		}
		out = append(out, fr)
	}
	return out
}

// culprit is the topmost frame outside the runtime and the standard library
// (whose import paths have no dot in their first element, package main
// aside), else the topmost frame outside package runtime.
func culprit(fs []Frame) string {
	for _, f := range fs {
		if isUserFunc(f.Function) {
			return f.Function
		}
	}
	for _, f := range fs {
		if !strings.HasPrefix(f.Function, "runtime.") && !strings.HasPrefix(f.Function, "internal/") {
			return f.Function
		}
	}
	if len(fs) > 0 {
		return fs[0].Function
	}
	return ""
}

func isUserFunc(fn string) bool {
	if strings.HasPrefix(fn, "main.") {
		return true
	}
	slash := strings.Index(fn, "/")
	if slash < 0 {
		return false // "runtime.gopark", "sync.(*Mutex).Lock"
	}
	return strings.Contains(fn[:slash], ".")
}

// groupAcc accumulates one group while goroutines are scanned.
type groupAcc struct {
	frames    []Frame
	createdBy *Frame
	state     string
	reason    string
	system    bool
	count     int
	ids       []int64
	minID     int64
	crashing  bool
	longest   float64
	hasWait   bool
	labels    map[string]map[string]bool
	// lastLabels is the label map added last (maps are shared per label set).
	lastLabels map[string]string
}

func (acc *groupAcc) add(g *gInfo, labels map[string]string, clk coreClock, crashing bool) {
	acc.count++
	if len(acc.ids) < maxGroupIDs {
		acc.ids = append(acc.ids, g.id)
	}
	if acc.minID == 0 || g.id < acc.minID {
		acc.minID = g.id
	}
	acc.crashing = acc.crashing || crashing
	if wait, ok := clk.waitedAtLeast(g.waitSince); ok {
		if w := float64(wait) / 1e9; w > acc.longest || !acc.hasWait {
			acc.longest, acc.hasWait = w, true
		}
	}
	if len(labels) > 0 && (acc.lastLabels == nil || !sameMap(acc.lastLabels, labels)) {
		acc.addLabels(labels)
		acc.lastLabels = labels
	}
}

// sameMap reports whether a and b are the same map (label maps are shared
// by goroutines with the same label set): a cheap way to skip re-adding.
func sameMap(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

func (acc *groupAcc) addLabels(labels map[string]string) {
	for k, v := range labels {
		vals := acc.labels[k]
		if vals == nil {
			vals = map[string]bool{}
			acc.labels[k] = vals
		}
		if len(vals) < maxLabelValues {
			vals[v] = true
		}
	}
}

// before orders groups most diagnostic first: the crashing or panicking
// goroutine (unless promoteCrash is false), then groups running user code before runtime-only ones, then
// bigger groups, longer waits, older goroutines.
func (acc *groupAcc) before(o *groupAcc, panicking int64, promoteCrash bool) bool {
	ac, oc := acc.crashing || acc.has(panicking), o.crashing || o.has(panicking)
	if ac != oc && promoteCrash {
		return ac
	}
	au, ou := !acc.system && hasUserFrame(acc.frames), !o.system && hasUserFrame(o.frames)
	if au != ou {
		return au
	}
	if acc.system != o.system {
		return !acc.system
	}
	if acc.count != o.count {
		return acc.count > o.count
	}
	if acc.longest != o.longest {
		return acc.longest > o.longest
	}
	return acc.minID < o.minID
}

func (acc *groupAcc) has(id int64) bool {
	if id == 0 {
		return false
	}
	for _, x := range acc.ids {
		if x == id {
			return true
		}
	}
	return false
}

func hasUserFrame(fs []Frame) bool {
	for _, f := range fs {
		if isUserFunc(f.Function) {
			return true
		}
	}
	return false
}

func (acc *groupAcc) group(src *sourceCache, withSource bool) Group {
	g := Group{
		Count: acc.count, State: acc.state, WaitReason: acc.reason, Culprit: culprit(acc.frames),
		Frames: acc.frames, CreatedBy: acc.createdBy, GoroutineIDs: acc.ids,
		Crashing: acc.crashing, System: acc.system,
	}
	if withSource {
		g.Frames = make([]Frame, len(acc.frames))
		for i, f := range acc.frames {
			f.Source = src.line(f.File, f.Line)
			g.Frames[i] = f
		}
	}
	if acc.hasWait {
		w := acc.longest
		g.LongestWaitSeconds = &w
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
	return g
}

func traceLinks(counts map[string]int, template string) []TraceLink {
	var out []TraceLink
	for id, n := range counts {
		l := TraceLink{TraceID: id, Goroutines: n}
		if template != "" {
			l.URL = strings.ReplaceAll(template, "{trace_id}", id)
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Goroutines != out[j].Goroutines {
			return out[i].Goroutines > out[j].Goroutines
		}
		return out[i].TraceID < out[j].TraceID
	})
	return out
}
