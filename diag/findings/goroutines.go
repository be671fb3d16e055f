package findings

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Group is goroutines with an identical stack, as every diag source
// produces them (a core, a live debug=2 dump, a goroutine profile).
type Group struct {
	// Ref is how the report refers to the group ("group 3").
	Ref   string
	Count int
	// State is "running", "runnable", "syscall", "waiting" or "" when the
	// source does not say (a goroutine profile).
	State string
	// WaitReason is the runtime's ("chan receive", "sync.Mutex.Lock",
	// "IO wait", "select", "sleep", ...).
	WaitReason string
	// WaitSeconds is a lower bound of the group's longest wait; 0 unknown.
	WaitSeconds float64
	Frames      []Frame
	CreatedBy   *Frame
	IDs         []int64
	Labels      map[string][]string
	// Locks identifies the locks the goroutines wait for (an address or a
	// variable name), when the source can tell.
	Locks    []string
	Crashing bool
}

// Snapshot is every goroutine of a process at one moment.
type Snapshot struct {
	Groups []Group
	Total  int
	Taken  time.Time
}

// waitClass is what a goroutine waits for.
type waitClass int

const (
	waitOther waitClass = iota
	waitLock
	waitChanSend
	waitChanRecv
	waitSelect
	waitIO
	waitSleep
	waitSync // WaitGroup, Cond
	waitNilChan
	waitRuntime
)

func classifyWait(g *Group) waitClass {
	r := g.WaitReason
	switch {
	case strings.Contains(r, "nil chan") || r == "select (no cases)":
		return waitNilChan
	case strings.HasPrefix(r, "sync.Mutex") || strings.HasPrefix(r, "sync.RWMutex") || r == "semacquire":
		return waitLock
	case r == "chan send":
		return waitChanSend
	case r == "chan receive":
		return waitChanRecv
	case r == "select":
		return waitSelect
	case r == "IO wait":
		return waitIO
	case r == "sleep":
		return waitSleep
	case strings.HasPrefix(r, "sync.WaitGroup") || strings.HasPrefix(r, "sync.Cond"):
		return waitSync
	case r == "":
		// A goroutine profile has no states: infer from the frames.
		return inferWait(g.Frames)
	}
	return waitRuntime
}

// inferWait guesses the wait from the innermost frames of a stack that
// came without a state (goroutine profiles).
func inferWait(frames []Frame) waitClass {
	for _, f := range frames {
		fn := f.Function
		switch {
		case strings.Contains(fn, "SemacquireMutex") || strings.Contains(fn, "SemacquireRWMutex") || strings.Contains(fn, "(*Mutex).lockSlow"):
			return waitLock
		case fn == "runtime.chansend" || fn == "runtime.chansend1":
			return waitChanSend
		case fn == "runtime.chanrecv" || fn == "runtime.chanrecv1" || fn == "runtime.chanrecv2":
			return waitChanRecv
		case fn == "runtime.selectgo" || fn == "runtime.block":
			return waitSelect
		case fn == "internal/poll.runtime_pollWait" || fn == "runtime.netpollblock":
			return waitIO
		case fn == "time.Sleep":
			return waitSleep
		case strings.HasPrefix(fn, "sync.(*WaitGroup)") || strings.HasPrefix(fn, "sync.(*Cond)"):
			return waitSync
		case fn == "syscall.Syscall" || fn == "syscall.Syscall6" || fn == "syscall.RawSyscall6" || strings.HasPrefix(fn, "internal/runtime/syscall"):
			return waitIO
		}
		if !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "internal/") {
			break
		}
	}
	return waitOther
}

func (w waitClass) String() string {
	switch w {
	case waitLock:
		return "a lock"
	case waitChanSend:
		return "a channel send"
	case waitChanRecv:
		return "a channel receive"
	case waitSelect:
		return "a select"
	case waitIO:
		return "network/file I/O"
	case waitSleep:
		return "time.Sleep"
	case waitSync:
		return "a WaitGroup/Cond"
	case waitNilChan:
		return "a nil channel (forever)"
	}
	return "the runtime"
}

// idleSignatures are frames that mark a goroutine as waiting by design
// when it is parked (not running) and only library code sits between it
// and the frame.
var idleSignatures = []string{
	"net/http.(*Server).Serve", "net.(*TCPListener).Accept", "net.(*UnixListener).Accept",
	"net/http.(*persistConn).readLoop", "net/http.(*persistConn).writeLoop",
	"net/http.(*connReader).backgroundRead", "os/signal.signal_recv", "os/signal.loop",
	"os/signal.NotifyContext.func1", "net/http.(*conn).serve",
	"github.com/wardgate/wardgate/jobqueue.(*Queue).worker",
	"github.com/wardgate/wardgate/jobqueue.(*Queue).fill", // the batch builder waiting for payloads
	"database/sql.(*DB).connectionOpener", "database/sql.(*DB).connectionCleaner",
	"net/http.(*http2ClientConn).readLoop", "net/http.(*http2serverConn).serve",
	"runtime/pprof.profileWriter", "runtime/trace.Start.func1", "time.Sleep",
	"context.(*cancelCtx).propagateCancel.func2", "context.AfterFunc.func1",
}

// IdleReason says why a group waits by design ("net/http.(*Server).Serve",
// "library", "background loop", "runtime"), or "" if it does not.
func (c *Classifier) IdleReason(g *Group) string {
	if isProfiler(g.Frames) && !g.Crashing {
		return "the profiler writing this sample"
	}
	if g.State == "syscall" && len(g.Frames) > 0 && g.Frames[0].Function == "os/signal.signal_recv" {
		return "signal.signal_recv" // the signal handler loop sits in a syscall state by design
	}
	if (g.State == "running" || g.State == "runnable") && !g.Crashing && !c.HasApp(g.Frames) {
		return "library (running)" // hot library code shows in the CPU profile, attributed to its caller
	}
	if g.Crashing || g.State == "running" || g.State == "runnable" || g.State == "syscall" {
		return ""
	}
	w := classifyWait(g)
	if w == waitRuntime || allRuntime(g.Frames) {
		return "runtime"
	}
	if w == waitLock || w == waitChanSend || w == waitNilChan {
		return "" // never idle by design
	}
	// The first frame at which user code could be waiting.
	i := c.Culprit(g.Frames)
	if i < 0 {
		return "runtime"
	}
	appAbove := false // an application frame innermost of the current one
frames:
	for _, f := range g.Frames {
		for _, sig := range idleSignatures {
			if f.Function != sig {
				continue
			}
			if appAbove {
				break frames // the machinery is running application code: in work
			}
			if sig == "time.Sleep" && g.Count > 1 && c.IsApp(g.Frames[i].Function) {
				return "" // many app goroutines sleeping: the leak detector judges
			}
			return shortFunc(sig)
		}
		if c.IsApp(f.Function) {
			appAbove = true
		}
	}
	if !c.HasApp(g.Frames) {
		return "library" // only runtime, stdlib and plumbing: machinery waiting for work
	}
	if inWork(c, g.Frames) {
		return "" // application code running a job or a request: judged, not folded
	}
	// A few application goroutines waiting for a receive/select/sleep are
	// background loops (a ticker, main waiting for a signal); many are a
	// leak, judged elsewhere.
	if g.Count <= smallGroup && (w == waitChanRecv || w == waitSelect || w == waitSleep || w == waitSync) {
		return "background loop"
	}
	return ""
}

// appAboveIO reports whether an application frame is between the I/O wait
// and the server's connection loop (a handler reading a slow body or
// calling out), as opposed to the server waiting for the next request.
func (c *Classifier) appAboveIO(frames []Frame) bool {
	for _, f := range frames {
		if f.Function == "net/http.(*conn).serve" {
			return false
		}
		if c.IsApp(f.Function) {
			return true
		}
	}
	return false
}

// dispatchers are frames that call application code to do one unit of
// work (a job, a request): application code above them is busy, not a
// background loop.
var dispatchers = []string{
	wardgatePath + "/jobqueue.(*Queue).worker", "net/http.(*conn).serve", "net/http.HandlerFunc.ServeHTTP",
	"google.golang.org/grpc.(*Server).handleStream",
}

// inWork reports whether an application frame sits above (is called by) a
// dispatcher in frames (innermost first). The dispatcher itself may be
// application code (wardgate analyzing itself).
func inWork(c *Classifier, frames []Frame) bool {
	app := false
	for _, f := range frames {
		for _, d := range dispatchers {
			if strings.HasPrefix(f.Function, d) {
				return app
			}
		}
		if c.IsApp(f.Function) {
			app = true
		}
	}
	return false
}

// smallGroup is the size up to which app goroutines parked on a receive or
// select are taken for background loops.
const smallGroup = 4

// minGrowth is the least growth of a group between two samples taken for a
// trend that counts as growing (a few requests more in flight is noise).
const minGrowth = 5

// leakMin is the group size from which goroutines parked at one place
// count as a suspected leak without a trend.
const leakMin = 100

func allRuntime(frames []Frame) bool {
	for _, f := range frames {
		if !strings.HasPrefix(f.Function, "runtime.") && !strings.HasPrefix(f.Function, "internal/runtime") {
			return false
		}
	}
	return true
}

func shortFunc(fn string) string {
	if i := strings.LastIndexByte(fn, '/'); i >= 0 {
		return fn[i+1:]
	}
	return fn
}

// isProfiler reports whether a running goroutine is the one writing the
// profile or dump being read (not a suspect).
func isProfiler(frames []Frame) bool {
	for _, f := range frames {
		switch f.Function {
		case "runtime/pprof.(*Profile).WriteTo", "runtime/pprof.writeGoroutineStacks", "runtime/pprof.profileWriter",
			"runtime/pprof.StartCPUProfile", "runtime.Stack", "runtime/pprof.writeRuntimeProfile":
			return true
		}
		if strings.HasPrefix(f.Function, "net/http/pprof.") {
			return true
		}
	}
	return false
}

// GoroutineOptions tune the goroutine detectors.
type GoroutineOptions struct {
	// Earlier is a snapshot taken Interval before Now, for trends: a
	// goroutine present in both at the same place waited at least that
	// long; a group that grew is leaking.
	Earlier *Snapshot
	// TraceURL turns a trace_id into a link ("{trace_id}" is replaced).
	TraceURL string
	// Queue is the job queue's state, when known.
	Queue *Queue
	// Source reads source files (LocalSource), to name the locks a
	// deadlocked goroutine holds; nil skips that.
	Source Source
}

// Queue is a job queue's state (depth and capacity in payloads).
type Queue struct {
	Depth, Capacity, Busy, Workers int64
	// Source says where the numbers come from ("core", "/metrics").
	Source string
}

// Goroutines runs the goroutine detectors (deadlock, stuck-lock, leak,
// hung-io, stuck-queue; running goroutines feed the CPU evidence) over s.
func Goroutines(c *Classifier, s *Snapshot, opts GoroutineOptions) Result {
	var r Result
	if s == nil {
		return r
	}
	idle := &Idle{}
	idleWhere := map[string]int{}
	earlier := indexEarlier(opts.Earlier)
	var interval float64
	if opts.Earlier != nil && !s.Taken.IsZero() && !opts.Earlier.Taken.IsZero() {
		interval = s.Taken.Sub(opts.Earlier.Taken).Seconds()
	}

	type lockWait struct {
		g     *Group
		frame Frame
		wait  float64
	}
	var lockWaits []lockWait
	appRunning := false
	for i := range s.Groups {
		g := &s.Groups[i]
		if (g.State == "running" || g.State == "runnable" || g.State == "syscall") && c.HasApp(g.Frames) && !isProfiler(g.Frames) {
			appRunning = true
		}
	}

	for i := range s.Groups {
		g := &s.Groups[i]
		if why := c.IdleReason(g); why != "" {
			idle.Goroutines += g.Count
			idle.Groups++
			idleWhere[why] += g.Count
			continue
		}
		ci := c.Culprit(g.Frames)
		if ci < 0 {
			continue
		}
		fr := g.Frames[ci]
		app := c.IsApp(fr.Function)
		wait := g.WaitSeconds
		persisted, grew := earlier.compare(g)
		if persisted > 0 && interval > wait {
			wait = interval
		}
		w := classifyWait(g)
		base := Finding{
			Function: fr.Function, File: fr.File, Line: fr.Line,
			Goroutines: g.Count, GoroutineIDs: capIDs(g.IDs), WaitSeconds: wait, Ref: g.Ref,
			Numbers: map[string]float64{"goroutines": float64(g.Count)},
		}
		base.TraceIDs, base.TraceURLs = traces(g.Labels, opts.TraceURL)
		base.Evidence = evidence(g, ci, persisted, interval)
		switch {
		case w == waitLock && app:
			lockWaits = append(lockWaits, lockWait{g, fr, wait})
		case w == waitNilChan && app:
			f := base
			f.Kind, f.Severity = KindDeadlock, Critical
			f.Headline = fmt.Sprintf("blocked forever in %s: %d goroutine(s) on %s", fr.Short(), g.Count, w)
			f.score = 1000 + float64(g.Count)
			r.add(f)
		case (w == waitIO && app || (app && isNetCall(g.Frames[:ci]))) && (wait >= 1 || persisted > 0 || g.Count > smallGroup || isClientCall(g.Frames[:ci])):
			// Reading or calling out is what servers do: only a wait
			// seen to last (wait time, or the same goroutines in two
			// samples), or many goroutines at once, is suspicious.
			f := base
			f.Kind = KindHungIO
			f.Severity = Low
			switch {
			case wait >= 30 || persisted > 0:
				f.Severity = High
			case wait >= 1:
				f.Severity = Medium
			}
			f.Headline = fmt.Sprintf("hung I/O in %s: %d goroutine(s) waiting on %s with no deadline%s", fr.Short(), g.Count, ioWhat(g.Frames[:ci]), waitText(wait, persisted > 0))
			f.Evidence = append(f.Evidence, "no deadline reaches this call: give the client a Timeout or the call a context with a deadline")
			f.score = wait + float64(g.Count)
			r.add(f)
		case (w == waitChanSend || w == waitChanRecv || w == waitSelect || w == waitSync || w == waitSleep || w == waitOther) && app &&
			(g.Count >= leakMin || grew > 0 || (w == waitChanSend && (wait >= 60 || persisted > 0)) || (g.Count > smallGroup && wait >= 60)):
			f := base
			f.Kind = KindLeak
			f.Severity = Medium
			if grew > 0 || g.Count >= 1000 || wait >= 300 {
				f.Severity = High
			}
			trend := ""
			if grew > 0 {
				trend = fmt.Sprintf(", +%d in %s", grew, seconds(interval))
				f.Numbers["growth"] = float64(grew)
				if interval > 0 {
					f.Numbers["growth_per_second"] = float64(grew) / interval
				}
			}
			f.Headline = fmt.Sprintf("goroutine leak in %s: %d goroutine(s) parked on %s%s%s", fr.Short(), g.Count, w, trend, waitText(wait, false))
			if g.CreatedBy != nil {
				f.Headline += ", created by " + shortFunc(g.CreatedBy.Function)
			}
			f.score = float64(g.Count) + 10*float64(grew) + wait
			r.add(f)
		case app && inWork(c, g.Frames) && (w == waitChanSend || w == waitChanRecv || w == waitSelect || w == waitSync || w == waitSleep) &&
			(persisted > 0 || wait >= 60):
			// A request or job that has waited on a channel (or slept)
			// across both samples, or for minutes: it is not coming back
			// on its own.
			f := base
			f.Kind, f.Severity = KindLeak, Medium
			verdict := "stuck"
			if !appRunning && w != waitSleep {
				f.Kind, f.Severity = KindDeadlock, High
				verdict = "stuck, and no application goroutine is running that could wake it"
			}
			if wait >= 60 {
				f.Severity = High
			}
			f.Headline = fmt.Sprintf("stuck in %s: %d goroutine(s) serving a request or job blocked on %s%s (%s)", fr.Short(), g.Count, w, waitText(wait, persisted > 0), verdict)
			f.score = 400 + wait + float64(g.Count)
			r.add(f)
		}
	}

	// Lock waits: all of them stuck while no application goroutine runs
	// is a deadlock (nobody running can release those locks); otherwise a
	// lock held too long, ranked by wait time.
	if len(lockWaits) > 0 {
		locks := map[string]bool{}
		sites := map[string]bool{}
		total := 0
		stuck := true
		var longest float64
		for _, lw := range lockWaits {
			for _, l := range lw.g.Locks {
				locks[l] = true
			}
			sites[lw.frame.String()] = true
			total += lw.g.Count
			if lw.wait > longest {
				longest = lw.wait
			}
			p, _ := earlier.compare(lw.g)
			if lw.wait < 1 && p == 0 {
				stuck = false
			}
		}
		sort.Slice(lockWaits, func(i, j int) bool { return lockWaits[i].wait > lockWaits[j].wait })
		deadlock := !appRunning && total >= 2 && (len(sites) >= 2 || len(locks) >= 2)
		for k, lw := range lockWaits {
			g, fr := lw.g, lw.frame
			f := Finding{
				Function: fr.Function, File: fr.File, Line: fr.Line,
				Goroutines: g.Count, GoroutineIDs: capIDs(g.IDs), WaitSeconds: lw.wait, Ref: g.Ref,
				Numbers: map[string]float64{"goroutines": float64(g.Count)},
			}
			f.TraceIDs, f.TraceURLs = traces(g.Labels, opts.TraceURL)
			p, _ := earlier.compare(g)
			f.Evidence = evidence(g, c.Culprit(g.Frames), p, interval)
			lockText := "a lock"
			if len(g.Locks) > 0 {
				lockText = "lock " + strings.Join(g.Locks, ", ")
			}
			if deadlock {
				if k > 0 {
					continue // one finding for the whole set, listed below
				}
				f.Kind, f.Severity = KindDeadlock, Critical
				if !stuck && longest == 0 {
					f.Severity = High // one sample, no wait time: could be contention caught in the act
				}
				all := map[string]bool{}
				for _, o := range lockWaits {
					for _, l := range o.g.Locks {
						all[l] = true
					}
				}
				lockN := ""
				if len(all) > 0 {
					lockN = fmt.Sprintf(" on %d lock(s)", len(all))
				}
				f.Headline = fmt.Sprintf("deadlock in %s: %d goroutine(s) at %d place(s) wait for each other's locks%s%s; nobody running can release them",
					fr.Short(), total, len(sites), lockN, waitText(longest, false))
				f.Goroutines, f.WaitSeconds = total, longest
				f.Numbers["goroutines"] = float64(total)
				f.Numbers["locks"] = float64(len(all))
				f.Evidence = nil
				for _, o := range lockWaits {
					waitsFor := "a lock"
					if len(o.g.Locks) > 0 {
						waitsFor = "lock " + strings.Join(o.g.Locks, ", ")
					}
					caller := ""
					if ci := c.Culprit(o.g.Frames); ci+1 < len(o.g.Frames) {
						caller = ", called from " + o.g.Frames[ci+1].String()
					}
					holds := ""
					if held, at, waits := heldLocks(opts.Source, o.frame); len(held) > 0 {
						parts := make([]string, len(held))
						for i := range held {
							parts[i] = fmt.Sprintf("%s (locked at line %d)", held[i], at[i])
						}
						holds = "hold " + strings.Join(parts, ", ") + " and "
						if waits != "" {
							waitsFor = waits + " (" + waitsFor + ")"
						}
					}
					f.Evidence = append(f.Evidence, fmt.Sprintf("%d goroutine(s) %s %swait for %s at %s%s%s", o.g.Count, idList(o.g.IDs), holds, waitsFor, o.frame, caller, waitText(o.wait, false)))
					for _, id := range o.g.IDs {
						if len(f.GoroutineIDs) < 10 {
							f.GoroutineIDs = append(f.GoroutineIDs, id)
						}
					}
				}
				f.Evidence = append(f.Evidence, "Go mutexes record no owner: \"hold\" is read from the source (locks taken earlier in the same function and not unlocked); check it against the stacks")
				f.score = 2000 + lw.wait
			} else {
				f.Kind = KindStuckLock
				f.Severity = Medium
				if lw.wait >= 10 || p > 0 {
					f.Severity = High
				}
				f.Headline = fmt.Sprintf("stuck on a lock in %s: %d goroutine(s) waiting for %s%s", fr.Short(), g.Count, lockText, waitText(lw.wait, p > 0))
				f.score = 500 + lw.wait + float64(g.Count)
			}
			r.add(f)
		}
	}

	if q := opts.Queue; q != nil {
		if f, ok := stuckQueue(c, s, q); ok {
			r.add(f)
		}
	}

	if idle.Goroutines > 0 {
		keys := make([]string, 0, len(idleWhere))
		for k := range idleWhere {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return idleWhere[keys[i]] > idleWhere[keys[j]] })
		for _, k := range keys {
			idle.Where = append(idle.Where, fmt.Sprintf("%s ×%d", k, idleWhere[k]))
		}
		r.Idle = idle
	}
	r.sortFindings()
	return r
}

// stuckQueue reports a job queue whose workers are all busy in one
// application function while the queue fills.
func stuckQueue(c *Classifier, s *Snapshot, q *Queue) (Finding, bool) {
	var f Finding
	if q.Workers <= 0 || q.Capacity <= 0 {
		return f, false
	}
	full := float64(q.Depth) / float64(q.Capacity)
	if full < 0.5 {
		return f, false
	}
	// Which application function are the workers in?
	type site struct {
		fr    Frame
		n     int
		ids   []int64
		ref   string
		wait  float64
		state string
	}
	sites := map[string]*site{}
	for i := range s.Groups {
		g := &s.Groups[i]
		wi := workerFrame(g.Frames)
		if wi <= 0 {
			continue
		}
		ci := c.Culprit(g.Frames[:wi])
		if ci < 0 || !c.IsApp(g.Frames[ci].Function) {
			continue
		}
		fr := g.Frames[ci]
		st := sites[fr.String()]
		if st == nil {
			st = &site{fr: fr, ref: g.Ref, state: stateOf(g)}
			sites[fr.String()] = st
		}
		st.n += g.Count
		st.ids = append(st.ids, g.IDs...)
		if g.WaitSeconds > st.wait {
			st.wait = g.WaitSeconds
		}
	}
	var best *site
	for _, st := range sites {
		if best == nil || st.n > best.n {
			best = st
		}
	}
	// Workers take turns building batches: one stuck builder stalls the
	// rest, so "all busy" is not required when a worker sits in
	// application code while the queue fills.
	if best == nil && q.Busy < q.Workers {
		return f, false
	}
	f = Finding{Kind: KindStuckQueue, Severity: High,
		Numbers: map[string]float64{"depth": float64(q.Depth), "capacity": float64(q.Capacity), "busy_workers": float64(q.Busy), "workers": float64(q.Workers)},
		score:   500 + 100*full}
	where := ""
	if best != nil {
		f.Function, f.File, f.Line = best.fr.Function, best.fr.File, best.fr.Line
		f.Goroutines, f.GoroutineIDs, f.Ref, f.WaitSeconds = best.n, capIDs(best.ids), best.ref, best.wait
		where = fmt.Sprintf(" in %s: %d worker(s) there (%s)", best.fr.Short(), best.n, best.state)
	} else {
		where = ":"
	}
	f.Headline = fmt.Sprintf("job queue stuck%s; %d of %d workers busy, depth %d of %d (%.0f%%)", where, q.Busy, q.Workers, q.Depth, q.Capacity, 100*full)
	f.Evidence = []string{fmt.Sprintf("queue numbers from %s", q.Source)}
	if best == nil {
		f.Evidence = append(f.Evidence, "no worker goroutine found in application code (a slow blob store?)")
	}
	return f, true
}

func stateOf(g *Group) string {
	if g.WaitReason != "" {
		return g.State + ": " + g.WaitReason
	}
	if g.State == "" {
		return "state unknown"
	}
	return g.State
}

// workerFrame is the index of the job queue's worker loop in frames, or -1.
func workerFrame(frames []Frame) int {
	for i, f := range frames {
		if strings.HasPrefix(f.Function, wardgatePath+"/jobqueue.(*Queue).worker") ||
			strings.HasPrefix(f.Function, wardgatePath+"/jobqueue.(*Queue).runKind") ||
			strings.HasPrefix(f.Function, wardgatePath+"/jobqueue.(*Queue).put") {
			return i
		}
	}
	return -1
}

var netCalls = []string{
	"net/http.(*Client).", "net/http.(*Transport).roundTrip", "net/http.(*persistConn).roundTrip",
	"net.(*conn).Read", "net.(*conn).Write", "net.(*Dialer).DialContext", "database/sql.",
	"net.(*Resolver).", "crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Handshake",
}

// clientCalls are outbound calls: an application goroutine found waiting
// in one is worth a (low) finding even in a single sample, where a server
// reading a request is not.
var clientCalls = []string{
	"net/http.(*Client).", "net/http.(*Transport).roundTrip", "net/http.(*persistConn).roundTrip",
	"net.(*Dialer).DialContext", "net.(*Resolver).", "database/sql.",
}

func isClientCall(frames []Frame) bool {
	for _, f := range frames {
		for _, n := range clientCalls {
			if strings.HasPrefix(f.Function, n) {
				return true
			}
		}
	}
	return false
}

func isNetCall(frames []Frame) bool {
	for _, f := range frames {
		for _, n := range netCalls {
			if strings.HasPrefix(f.Function, n) {
				return true
			}
		}
	}
	return false
}

func ioWhat(frames []Frame) string {
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f.Function, "net/http."):
			return "an HTTP call"
		case strings.HasPrefix(f.Function, "database/sql."):
			return "a database call"
		case strings.HasPrefix(f.Function, "net.(*Resolver)"):
			return "a DNS lookup"
		case strings.HasPrefix(f.Function, "crypto/tls."):
			return "a TLS connection"
		}
	}
	return "network I/O"
}

func waitText(sec float64, persisted bool) string {
	switch {
	case sec > 0 && persisted:
		return fmt.Sprintf(" for ≥ %s (at the same place in both samples)", seconds(sec))
	case sec > 0:
		return fmt.Sprintf(" for ≥ %s", seconds(sec))
	}
	return ""
}

func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func capIDs(ids []int64) []int64 {
	if len(ids) > 10 {
		return ids[:10]
	}
	return ids
}

func idList(ids []int64) string {
	if len(ids) == 0 {
		return ""
	}
	s := make([]string, 0, 4)
	for i, id := range ids {
		if i == 4 {
			s = append(s, "...")
			break
		}
		s = append(s, fmt.Sprint(id))
	}
	return "(goroutine " + strings.Join(s, ", ") + ")"
}

func traces(labels map[string][]string, tmpl string) (ids, urls []string) {
	ids = labels["trace_id"]
	if len(ids) > 5 {
		ids = ids[:5]
	}
	if tmpl != "" {
		for _, id := range ids {
			urls = append(urls, strings.ReplaceAll(tmpl, "{trace_id}", id))
		}
	}
	return ids, urls
}

// evidence is the decisive frames of g: where it waits (the innermost
// non-runtime frame), the culprit, who created it.
func evidence(g *Group, ci int, persisted int, interval float64) []string {
	var ev []string
	if ci > 0 {
		for _, f := range g.Frames[:ci] {
			if !strings.HasPrefix(f.Function, "runtime.") && !strings.HasPrefix(f.Function, "internal/") {
				ev = append(ev, "blocked in "+f.String())
				break
			}
		}
	}
	if ci >= 0 && ci+1 < len(g.Frames) {
		ev = append(ev, "called from "+g.Frames[ci+1].String())
	}
	if g.CreatedBy != nil {
		ev = append(ev, "created by "+g.CreatedBy.String())
	}
	st := stateOf(g)
	if len(g.IDs) > 0 {
		st += " " + idList(g.IDs)
	}
	ev = append(ev, "state: "+st)
	if persisted > 0 {
		ev = append(ev, fmt.Sprintf("%d of them were at the same place %s earlier", persisted, seconds(interval)))
	}
	if len(g.Locks) > 0 {
		ev = append(ev, "waiting for "+strings.Join(g.Locks, ", "))
	}
	return ev
}

// earlierIndex finds a group's goroutines in an earlier snapshot.
type earlierIndex struct {
	ids   map[int64]string // goroutine ID -> stack key
	count map[string]int   // stack key -> goroutines
	// hasIDs is false for an earlier goroutine profile (no IDs): then a
	// parked group found at the same place in both is taken as the same
	// goroutines, up to the smaller count.
	hasIDs bool
}

func stackKey(g *Group) string {
	var sb strings.Builder
	frames := g.Frames
	// Sources may start a stack one runtime frame apart (a dump and a
	// profile): compare from the first frame outside the runtime.
	for len(frames) > 1 && strings.HasPrefix(frames[0].Function, "runtime.") {
		frames = frames[1:]
	}
	for _, f := range frames {
		fmt.Fprintf(&sb, "%s:%d|", f.Function, f.Line)
	}
	return sb.String()
}

func indexEarlier(s *Snapshot) *earlierIndex {
	if s == nil {
		return nil
	}
	e := &earlierIndex{ids: map[int64]string{}, count: map[string]int{}}
	for i := range s.Groups {
		g := &s.Groups[i]
		k := stackKey(g)
		e.count[k] += g.Count
		for _, id := range g.IDs {
			e.ids[id] = k
		}
		e.hasIDs = e.hasIDs || len(g.IDs) > 0
	}
	return e
}

// compare returns how many of g's goroutines were at the same place in the
// earlier snapshot and how much the group grew since.
func (e *earlierIndex) compare(g *Group) (persisted, grew int) {
	if e == nil {
		return 0, 0
	}
	k := stackKey(g)
	if e.hasIDs {
		for _, id := range g.IDs {
			if e.ids[id] == k {
				persisted++
			}
		}
	} else if g.State != "running" && g.State != "runnable" {
		persisted = min(g.Count, e.count[k])
	}
	if d := g.Count - e.count[k]; d >= minGrowth && g.Count >= 2*minGrowth {
		grew = d
	}
	return persisted, grew
}
