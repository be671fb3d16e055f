package findings

import (
	"fmt"
	"strings"
)

// Crash is a process death: the runtime's words and the goroutine that
// crashed (for fatal runtime errors, the one running the offending code).
type Crash struct {
	// Text is "panic: ...", "fatal error: ..." or "SIGSEGV: ..." (first
	// lines of what the runtime printed, or read from memory).
	Text string
	// Signal is the signal that killed the process ("SIGABRT"), if any.
	Signal      string
	GoroutineID int64
	Frames      []Frame
	Labels      map[string]string
	// LocalsFrame and Locals are the culprit frame's variables
	// ("name type = value"); LocalsNote says why there are none.
	LocalsFrame string
	Locals      []string
	LocalsNote  string
	// Ref points at the crashing goroutine's section.
	Ref string
}

// CrashFinding turns a crash into the first finding. blocked is the
// goroutine snapshot, used when the crashing goroutine has no application
// frame (the runtime's "all goroutines are asleep" is thrown from the
// scheduler, not from the code that deadlocked).
func CrashFinding(c *Classifier, cr *Crash, s *Snapshot, traceURL string) Result {
	var r Result
	if cr == nil || (cr.Text == "" && cr.Signal == "") {
		return r
	}
	text := firstLine(cr.Text)
	if text == "" {
		text = "killed by " + cr.Signal
	}
	f := Finding{Kind: KindCrash, Severity: Critical, Ref: cr.Ref, score: 3000}
	if cr.GoroutineID != 0 {
		f.GoroutineIDs = []int64{cr.GoroutineID}
		f.Goroutines = 1
	}
	ci := c.Culprit(cr.Frames)
	if ci >= 0 && c.IsApp(cr.Frames[ci].Function) || ci >= 0 && !strings.Contains(text, "all goroutines are asleep") {
		fr := cr.Frames[ci]
		f.Function, f.File, f.Line = fr.Function, fr.File, fr.Line
		f.Headline = fmt.Sprintf("%s in %s", text, fr.Short())
		f.Evidence = append(f.Evidence, crashPath(cr.Frames, ci)...)
	} else if g := firstBlockedApp(c, s); g != nil {
		// The runtime found every goroutine asleep: name where the
		// application ones sleep.
		gi := c.Culprit(g.Frames)
		fr := g.Frames[gi]
		f.Function, f.File, f.Line = fr.Function, fr.File, fr.Line
		f.Goroutines, f.GoroutineIDs, f.Ref = g.Count, capIDs(g.IDs), g.Ref
		f.Headline = fmt.Sprintf("%s: in %s, %d goroutine(s) blocked on %s", text, fr.Short(), g.Count, classifyWait(g))
		f.Evidence = append(f.Evidence, evidence(g, gi, 0, 0)...)
	} else {
		f.Headline = text
	}
	if cr.Signal != "" && !strings.Contains(text, cr.Signal) {
		f.Evidence = append(f.Evidence, "signal "+cr.Signal)
	}
	if tid := cr.Labels["trace_id"]; tid != "" {
		f.TraceIDs, f.TraceURLs = traces(map[string][]string{"trace_id": {tid}}, traceURL)
	}
	if len(cr.Locals) > 0 {
		shown := cr.Locals
		if len(shown) > 6 {
			shown = shown[:6]
		}
		f.Evidence = append(f.Evidence, "locals of "+cr.LocalsFrame+": "+strings.Join(shown, "; "))
	}
	if cr.LocalsNote != "" {
		f.Evidence = append(f.Evidence, "locals: "+cr.LocalsNote)
	}
	r.add(f)
	return r
}

// crashPath is the frames from the crash site out to the culprit: what the
// runtime was doing when it stopped, in one line.
func crashPath(frames []Frame, ci int) []string {
	var names []string
	for _, f := range frames[:ci] {
		names = append(names, shortFunc(f.Function))
	}
	var ev []string
	if len(names) > 0 {
		if len(names) > 5 {
			names = append(names[:2], append([]string{"..."}, names[len(names)-2:]...)...)
		}
		ev = append(ev, "crashed in "+strings.Join(names, " ← "))
	}
	if ci+1 < len(frames) {
		ev = append(ev, "called from "+frames[ci+1].String())
	}
	return ev
}

func firstBlockedApp(c *Classifier, s *Snapshot) *Group {
	if s == nil {
		return nil
	}
	var best *Group
	for i := range s.Groups {
		g := &s.Groups[i]
		if g.State == "running" || allRuntime(g.Frames) {
			continue
		}
		ci := c.Culprit(g.Frames)
		if ci < 0 || !c.IsApp(g.Frames[ci].Function) {
			continue
		}
		// Locks and sends first: they name the cycle better than receives.
		if best == nil || waitWeight(classifyWait(g)) > waitWeight(classifyWait(best)) {
			best = g
		}
	}
	return best
}

func waitWeight(w waitClass) int {
	switch w {
	case waitLock, waitNilChan:
		return 3
	case waitChanSend:
		return 2
	case waitChanRecv, waitSelect, waitSync:
		return 1
	}
	return 0
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}
