package analyze

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/go-delve/delve/pkg/goversion"
	"github.com/go-delve/delve/pkg/proc"
	"github.com/go-delve/delve/pkg/proc/core"
	"github.com/go-delve/delve/service/api"

	"github.com/wardgate/wardgate/diag/findings"
)

// maxLabelValues caps the distinct values kept per label key and group.
const maxLabelValues = 20

// maxGroupIDs caps the goroutine IDs listed per group.
const maxGroupIDs = 10

// stackDepth is how many frames are unwound per goroutine.
const stackDepth = 64

// analyzeCore opens the core with delve and fills the goroutine sections,
// the crashing goroutine, the job queue and the trace list of r.
func analyzeCore(ctx context.Context, opts Options, r *Report) error {
	grp, err := core.OpenCore(opts.Core, opts.Exe, nil)
	if err != nil {
		return fmt.Errorf("analyze: open core %s with %s: %w", opts.Core, opts.Exe, err)
	}
	defer grp.Detach(false)
	t := grp.Selected
	a := &analysis{
		t:       t,
		bi:      t.BinInfo(),
		mem:     newCoreMemory(opts.Core, t.Memory()),
		src:     newSourceCache(),
		gover:   goversion.ParseProducer(t.BinInfo().Producer()),
		threadG: map[int64]*proc.G{},
		delveGs: map[int]*proc.G{},
		funcs:   map[uint64]string{},
		cls:     findings.NewClassifier(r.Build.MainModule, opts.App),
	}
	defer a.mem.close()
	if r.Build.GoVersion == "" {
		r.Build.GoVersion = t.BinInfo().Producer()
	}
	for _, th := range t.ThreadList() {
		if g, err := proc.GetG(th); err == nil && g != nil && g.ID != 0 {
			a.threadG[g.ID] = g
		}
	}

	gs, err := a.readGoroutines()
	if err != nil {
		// Unknown runtime layout: let delve list them (slower).
		r.Warnings = append(r.Warnings, fmt.Sprintf("reading goroutines directly: %v; used delve's slower listing", err))
		if gs, err = a.goroutinesFromDelve(ctx); err != nil {
			return fmt.Errorf("analyze: list goroutines: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	labels := newLabelReader(a)

	// The goroutine on the signalled thread (delve's current thread is the
	// first NT_PRSTATUS one, the same the kernel gave the signal).
	var crashG *proc.G
	if th := t.CurrentThread(); th != nil {
		if g, err := proc.GetG(th); err == nil && g != nil && g.ID != 0 {
			crashG = g
		}
		if r.Stop.Fatal == "" {
			if msg := a.fatalFromMemory(th); msg != "" {
				r.Stop.Fatal, r.Stop.FatalSource = msg, "memory (argument of the runtime's fatal/throw frame)"
			}
		}
	}
	crashID := int64(0)
	if crashG != nil {
		crashID = crashG.ID
	}
	if r.Stop.Goroutine == 0 {
		r.Stop.Goroutine = crashID
	}

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
				return err
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

	if crashG == nil && r.Stop.Goroutine != 0 {
		for i := range gs {
			if gs[i].id == r.Stop.Goroutine {
				if g, err := a.delveG(&gs[i]); err == nil {
					crashG = g
				}
				break
			}
		}
	}
	if crashG != nil {
		r.Crashing = a.detail(crashG, &r.Warnings)
	}

	all := make([]*groupAcc, 0, len(groups))
	for _, acc := range groups {
		all = append(all, acc)
		if r.Crashing != nil && r.Crashing.LabelsFromContext && (acc.crashing || acc.has(r.Crashing.ID)) {
			acc.addLabels(r.Crashing.Labels)
			if tid := r.Crashing.Labels["trace_id"]; tid != "" {
				traceCount[tid]++
			}
		}
	}
	// A signal sent from outside (an operator's SIGQUIT) lands on whatever
	// thread; the goroutine that happened to run there is not the culprit.
	promote := !externalSignal(r.Stop.Fatal)
	sort.Slice(all, func(i, j int) bool { return all[i].before(all[j], r.Stop.Goroutine, promote) })
	r.JobQueue = a.jobQueue(gs)
	a.rank(r, all, opts)
	r.Traces = traceLinks(traceCount, opts.TraceURLTemplate)
	return nil
}

type analysis struct {
	t     *proc.Target
	bi    *proc.BinaryInfo
	mem   *coreMemory
	src   *sourceCache
	gover goversion.GoVersion
	// threadG are the goroutines running on a thread, by ID (delve's
	// view, with the thread's registers); delveGs caches delve's view of
	// others by allgs index.
	threadG map[int64]*proc.G
	delveGs map[int]*proc.G
	funcs   map[uint64]string // function name by entry-relative PC lookups
	cls     *findings.Classifier
}

// goroutinesFromDelve lists goroutines through delve when the runtime.g
// layout could not be read.
func (a *analysis) goroutinesFromDelve(ctx context.Context) ([]gInfo, error) {
	dgs, err := a.delveGoroutinesBounded(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]gInfo, 0, len(dgs))
	for i, g := range dgs {
		if g.Unreadable != nil {
			continue
		}
		a.delveGs[i] = g
		out = append(out, gInfo{
			idx: i, id: g.ID, status: g.Status, waitReason: uint8(g.WaitReason), waitSince: g.WaitSince,
			pc: g.PC, sp: g.SP, bp: g.BP, goPC: g.GoPC, startPC: g.StartPC,
		})
	}
	return out, nil
}

func (a *analysis) state(g *gInfo) (state, reason string) {
	switch g.status {
	case proc.Grunnable:
		return "runnable", ""
	case proc.Grunning:
		return "running", ""
	case proc.Gsyscall:
		return "syscall", ""
	case proc.Gwaiting:
		return "waiting", api.WaitReasonString(&a.gover, int64(g.waitReason))
	case proc.Gidle:
		return "idle", ""
	case proc.Gcopystack:
		return "copystack", ""
	case 9:
		return "preempted", ""
	case 10:
		return "leaked", ""
	}
	return "status " + strconv.FormatUint(g.status, 10), ""
}

// funcName is the name of the function containing pc ("" if unknown).
func (a *analysis) funcName(pc uint64) string {
	if n, ok := a.funcs[pc]; ok {
		return n
	}
	n := ""
	if fn := a.bi.PCToFunc(pc); fn != nil {
		n = fn.Name
	}
	a.funcs[pc] = n
	return n
}

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

// coreClock is what a core tells about time, in the runtime's nanotime()
// units (CLOCK_MONOTONIC).
type coreClock struct {
	// now is a lower bound of nanotime() when the core was written.
	now int64
	// gcEnds are the end times of the last (up to 256) GCs, ascending.
	gcEnds []int64
}

// waitedAtLeast turns a goroutine's g.waitsince into a lower bound of how
// long it has been blocked.
//
// What Go (1.26, and for many releases) records: nothing when a goroutine
// parks. A GC's stack scan stamps each goroutine it finds blocked and not
// yet stamped with work.tstart, and running again clears the stamp. But
// work.tstart is only set at mark termination, after the scans, so the
// stamp is the mark-termination time of the GC *before* the one that saw
// the goroutine blocked (and 0, no stamp, during a process's first GC).
// The goroutine may have blocked after that earlier GC; what is certain is
// that it was blocked during the next GC's mark phase, which ended before
// that next GC's end. So the wait is at least now minus the end of the
// second GC that ended at or after the stamp; GC end times come from
// memstats.pause_end. If that GC has not ended yet (the core was written
// mid-GC) or fell out of the 256-entry history, the wait is unknown.
func (c coreClock) waitedAtLeast(waitsince int64) (int64, bool) {
	if waitsince <= 0 || c.now <= 0 {
		return 0, false
	}
	i := sort.Search(len(c.gcEnds), func(i int) bool { return c.gcEnds[i] >= waitsince })
	if i+1 >= len(c.gcEnds) {
		return 0, false
	}
	blockedBy := c.gcEnds[i+1]
	if c.now <= blockedBy {
		return 0, false
	}
	return c.now - blockedBy, true
}

// coreClock reads the core's notion of time. No clock reading is stored in
// a core, so now is the latest of the timestamps the runtime keeps in
// nanotime units: the last netpoll (sched.lastpoll), the last GC's start
// and end, the GC CPU limiter's last update, sysmon's per-P "last saw it
// schedule / enter a syscall" stamps (allp[i].sysmontick, refreshed every
// 20 µs-10 ms while the process is busy), and every goroutine's waitsince.
// Deadlines that lie in the future (sched.pollUntil, timers) are left out:
// they would overstate waits (a main goroutine in time.Sleep(time.Hour)
// once made every wait an hour). Waits computed from it are lower bounds,
// short by at most the time since the process last did any of those
// things (milliseconds when busy; for an idle process, up to the time since
// its last GC or poll).
//
// GC end times: memstats.pause_end holds wall-clock (Unix) times; they are
// converted with the offset between memstats.last_gc_unix and
// last_gc_nanotime, both taken at the last GC's end, so a wall-clock step
// between GCs shifts older entries by that step.
func (a *analysis) coreClock(gs []gInfo) coreClock {
	var c coreClock
	for i := range gs {
		c.now = max(c.now, gs[i].waitSince)
	}
	scope, err := proc.ConvertEvalScope(a.t, -1, 0, 0)
	if err != nil {
		return c
	}
	cfg := proc.LoadConfig{MaxVariableRecurse: 2, MaxStructFields: -1}
	eval := func(expr string) (int64, bool) {
		v, err := scope.EvalExpression(expr, cfg)
		if err != nil || v.Unreadable != nil {
			return 0, false
		}
		return intValue(v)
	}
	for _, expr := range []string{
		"runtime.sched.lastpoll", "runtime.work.tstart", "runtime.memstats.last_gc_nanotime",
		"runtime.gcCPULimiter.lastUpdate", "runtime.sched.procresizetime",
	} {
		if n, ok := eval(expr); ok {
			c.now = max(c.now, n)
		}
	}
	if nP, ok := eval("len(runtime.allp)"); ok {
		for i := range min(nP, 1024) {
			for _, f := range []string{"schedwhen", "syscallwhen"} {
				if n, ok := eval(fmt.Sprintf("runtime.allp[%d].sysmontick.%s", i, f)); ok {
					c.now = max(c.now, n)
				}
			}
		}
	}

	numgc, ok1 := eval("runtime.memstats.numgc")
	lastUnix, ok2 := eval("runtime.memstats.last_gc_unix")
	lastMono, ok3 := eval("runtime.memstats.last_gc_nanotime")
	if !ok1 || !ok2 || !ok3 || numgc <= 0 || lastUnix <= 0 || lastMono <= 0 {
		return c
	}
	ends, err := scope.EvalExpression("runtime.memstats.pause_end", proc.LoadConfig{MaxArrayValues: 256})
	if err != nil || ends.Unreadable != nil || len(ends.Children) == 0 {
		return c
	}
	ring := int64(len(ends.Children))
	offset := lastUnix - lastMono
	for k := min(numgc, ring) - 1; k >= 0; k-- {
		// pause_end[numgc%ring] is written before numgc++: the newest
		// entry is at (numgc-1)%ring.
		if u, ok := intValue(&ends.Children[(numgc-1-k)%ring]); ok && u > 0 {
			c.gcEnds = append(c.gcEnds, u-offset)
		}
	}
	sort.Slice(c.gcEnds, func(i, j int) bool { return c.gcEnds[i] < c.gcEnds[j] })
	return c
}

// intValue reads an integer variable, looking through sync/atomic wrappers
// (atomic.Int64{v: ...}) and atomic.Uint64-style structs.
func intValue(v *proc.Variable) (int64, bool) {
	for range 3 {
		if v.Value != nil {
			s := v.Value.ExactString()
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				u, err2 := strconv.ParseUint(s, 10, 64)
				if err2 != nil {
					return 0, false
				}
				n = int64(u)
			}
			return n, true
		}
		var next *proc.Variable
		for i := range v.Children {
			if c := &v.Children[i]; c.Name == "v" || c.Name == "value" {
				next = c
			}
		}
		if next == nil {
			return 0, false
		}
		v = next
	}
	return 0, false
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
