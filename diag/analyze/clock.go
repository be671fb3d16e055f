package analyze

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/go-delve/delve/pkg/proc"
)

// Clock: how long goroutines have waited, as far as a core can tell. It
// is its own file because no clock reading is stored in a core: the bound
// is pieced together from runtime timestamps, and the reasoning (which
// stamps, why each wait is a lower bound) is longer than the code.

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
