package profile

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"
	"github.com/maruel/panicparse/v2/stack"

	"github.com/wardgate/wardgate/diag/findings"
)

// DumpURL is the text goroutine dump (/debug/pprof/goroutine?debug=2):
// the only live source of each goroutine's state, wait reason, wait time
// (in minutes, from one minute on), ID and creator. It has no labels; the
// proto profile (Fetch with Goroutine) has those.
func DumpURL(target string) (string, error) {
	base, err := NormalizeTarget(target)
	if err != nil {
		return "", err
	}
	u := base.JoinPath("/debug/pprof/goroutine")
	u.RawQuery = "debug=2"
	return u.String(), nil
}

// FetchDump downloads the text goroutine dump (see DumpURL).
func FetchDump(ctx context.Context, target string, opts FetchOptions) ([]byte, error) {
	u, err := DumpURL(target)
	if err != nil {
		return nil, err
	}
	b, err := Get(ctx, opts.Client, u, opts.Token)
	if err != nil {
		return nil, fmt.Errorf("fetch goroutine dump: %w", err)
	}
	return b, nil
}

// FetchParseDump streams the dump into the parser while copying it to
// save (a file): for a process with 100k goroutines (~45 MB) the parse
// overlaps the download instead of following it.
func FetchParseDump(ctx context.Context, target string, opts FetchOptions, labels *profile.Profile, save io.Writer) (*findings.Snapshot, error) {
	u, err := DumpURL(target)
	if err != nil {
		return nil, err
	}
	body, err := Open(ctx, opts.Client, u, opts.Token)
	if err != nil {
		return nil, fmt.Errorf("fetch goroutine dump: %w", err)
	}
	defer body.Close()
	taken := time.Now()
	return ParseDumpReader(io.TeeReader(body, save), labels, taken)
}

// maxDump bounds what is read of a dump: 2 GiB is some 4 million
// goroutines; the rest is not parsed.
const maxDump = 2 << 30

// limitedBuffer keeps the first n bytes written to it.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// lockFuncs are the frames whose first argument is the lock a goroutine
// waits for (when the runtime printed it: not for inlined frames).
var lockFuncs = map[string]bool{
	"internal/sync.(*Mutex).lockSlow": true, "sync.(*Mutex).lockSlow": true,
	"sync.(*RWMutex).Lock": true, "sync.(*RWMutex).RLock": true,
	"internal/sync.(*Mutex).Lock": true, "sync.(*Mutex).Lock": true,
}

// ParseDump reads a debug=2 goroutine dump (or a crash's traceback) with
// panicparse and groups it by identical stack (state, wait reason and
// function:line sequence). labels, when not nil, is a goroutine profile
// taken at about the same time: its pprof labels are attached to the
// groups with the same stack.
func ParseDump(dump []byte, labels *profile.Profile, taken time.Time) (*findings.Snapshot, error) {
	return ParseDumpReader(bytes.NewReader(dump), labels, taken)
}

// ParseDumpReader is ParseDump reading from r.
func ParseDumpReader(r io.Reader, labels *profile.Profile, taken time.Time) (*findings.Snapshot, error) {
	var head bytes.Buffer
	snap, _, err := stack.ScanSnapshot(io.TeeReader(io.LimitReader(r, maxDump), &limitedBuffer{&head, 200}), io.Discard, &stack.Opts{})
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("parse goroutine dump: %w", err)
	}
	if snap == nil || len(snap.Goroutines) == 0 {
		return nil, fmt.Errorf("parse goroutine dump: no goroutine found (%q)", firstLine(head.Bytes()))
	}
	s := &findings.Snapshot{Taken: taken}
	byKey := map[string]int{}
	locks := map[int]map[string]bool{}
	for _, gr := range snap.Goroutines {
		s.Total++
		frames := make([]findings.Frame, 0, len(gr.Stack.Calls))
		var lock string
		for _, c := range gr.Stack.Calls {
			fn := c.Func.Complete
			frames = append(frames, findings.Frame{Function: fn, File: c.RemoteSrcPath, Line: c.Line})
			if lock == "" && lockFuncs[fn] && len(c.Args.Values) > 0 && !c.Args.Elided && c.Args.Values[0].Value != 0 {
				lock = fmt.Sprintf("%#x", c.Args.Values[0].Value)
			}
		}
		state, reason := splitState(gr.State)
		key := state + "|" + reason + "|" + framesKey(frames)
		i, ok := byKey[key]
		if !ok {
			i = len(s.Groups)
			byKey[key] = i
			g := findings.Group{State: state, WaitReason: reason, Frames: frames}
			if len(gr.CreatedBy.Calls) > 0 {
				c := gr.CreatedBy.Calls[0]
				fn, _, _ := strings.Cut(c.Func.Complete, " in goroutine ")
				g.CreatedBy = &findings.Frame{Function: fn, File: c.RemoteSrcPath, Line: c.Line}
			}
			s.Groups = append(s.Groups, g)
		}
		g := &s.Groups[i]
		g.Count++
		g.IDs = append(g.IDs, int64(gr.ID))
		if w := float64(gr.SleepMax) * 60; w > g.WaitSeconds {
			g.WaitSeconds = w
		}
		if lock != "" {
			if locks[i] == nil {
				locks[i] = map[string]bool{}
			}
			if !locks[i][lock] && len(locks[i]) < 8 {
				locks[i][lock] = true
				g.Locks = append(g.Locks, lock)
			}
		}
	}
	if labels != nil {
		attachLabels(s, labels)
	}
	for i := range s.Groups {
		ids := s.Groups[i].IDs
		sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	}
	return s, nil
}

// splitState splits panicparse's state ("chan receive", "running",
// "sync.Mutex.Lock") into the runtime's state and wait reason.
func splitState(st string) (state, reason string) {
	switch st {
	case "running", "runnable", "syscall", "idle", "dead", "copystack", "preempted":
		return st, ""
	case "":
		return "", ""
	}
	if strings.HasPrefix(st, "syscall") {
		return "syscall", ""
	}
	return "waiting", st
}

func framesKey(frames []findings.Frame) string {
	var sb strings.Builder
	for _, f := range frames {
		sb.WriteString(f.Function)
		sb.WriteByte(':')
		fmt.Fprint(&sb, f.Line)
		sb.WriteByte('|')
	}
	return sb.String()
}

// attachLabels copies the labels of the goroutine profile's samples onto
// the groups with the same function:line sequence. The two were taken
// moments apart, so a group may get no labels; that is all it loses.
func attachLabels(s *findings.Snapshot, p *profile.Profile) {
	byKey := map[string][]int{}
	for i := range s.Groups {
		k := framesKey(trimRuntime(s.Groups[i].Frames))
		byKey[k] = append(byKey[k], i)
	}
	for _, smp := range p.Sample {
		if len(smp.Label) == 0 {
			continue
		}
		var frames []findings.Frame
		for _, f := range stackFrames(smp) {
			frames = append(frames, findings.Frame{Function: f.Function, File: f.File, Line: int(f.Line)})
		}
		// Compared without the innermost runtime frames: the dump and the
		// profile may start a stack one runtime frame apart.
		idx := byKey[framesKey(trimRuntime(frames))]
		for _, i := range idx {
			g := &s.Groups[i]
			if g.Labels == nil {
				g.Labels = map[string][]string{}
			}
			for k, vs := range smp.Label {
				for _, v := range vs {
					if len(g.Labels[k]) < 20 && !slices.Contains(g.Labels[k], v) {
						g.Labels[k] = append(g.Labels[k], v)
					}
				}
			}
		}
	}
}

func trimRuntime(frames []findings.Frame) []findings.Frame {
	for len(frames) > 0 && strings.HasPrefix(frames[0].Function, "runtime.") {
		frames = frames[1:]
	}
	return frames
}

// DumpGroup is one group of a goroutine dump as diag prints it.
type DumpGroup struct {
	Ref        string              `json:"ref"`
	Count      int                 `json:"count"`
	State      string              `json:"state,omitempty"`
	WaitReason string              `json:"wait_reason,omitempty"`
	WaitSecs   float64             `json:"wait_seconds,omitempty"`
	Culprit    string              `json:"culprit,omitempty"`
	Idle       string              `json:"idle,omitempty"`
	IDs        []int64             `json:"goroutine_ids,omitempty"`
	Labels     map[string][]string `json:"labels,omitempty"`
	Locks      []string            `json:"locks,omitempty"`
	Stack      []findings.Frame    `json:"stack"`
	CreatedBy  *findings.Frame     `json:"created_by,omitempty"`
}

// PrepareRefs gives every group of s a provisional reference, which the
// detectors copy into findings and OrderGroups renumbers.
func PrepareRefs(s *findings.Snapshot) {
	for i := range s.Groups {
		s.Groups[i].Ref = "#" + strconv.Itoa(i)
	}
}

// OrderGroups lists s's groups the way a reader wants them: first those
// the findings name, in the findings' order; then the rest by size; the
// idle-by-design ones last. Groups are renumbered "group 1", "group 2", ...
// and the findings' references rewritten to match. max caps the list (0:
// all).
func OrderGroups(c *findings.Classifier, s *findings.Snapshot, fs []findings.Finding, max int) []DumpGroup {
	order, idle := findings.Order(c, s.Groups, fs, func(a, b *findings.Group) bool { return a.Count > b.Count })
	var out []DumpGroup
	for k, i := range order {
		if max > 0 && k >= max {
			break
		}
		g := &s.Groups[i]
		dg := DumpGroup{Ref: findings.GroupRef(k), Count: g.Count, State: g.State, WaitReason: g.WaitReason, WaitSecs: g.WaitSeconds,
			Idle: idle[i], IDs: g.IDs, Labels: g.Labels, Locks: g.Locks, Stack: g.Frames, CreatedBy: g.CreatedBy}
		if ci := c.Culprit(g.Frames); ci >= 0 {
			dg.Culprit = g.Frames[ci].Function
		}
		if len(dg.IDs) > 20 {
			dg.IDs = dg.IDs[:20]
		}
		out = append(out, dg)
	}
	return out
}

// WriteDumpGroups prints groups (at most max, 0: all) with their state,
// wait, IDs, labels, stack and creator.
func WriteDumpGroups(w io.Writer, groups []DumpGroup, max int) {
	shown := 0
	for _, g := range groups {
		if max > 0 && shown >= max {
			fmt.Fprintf(w, "... %d more groups (all in the JSON output and the saved dump)\n", len(groups)-shown)
			break
		}
		shown++
		st := g.State
		if g.WaitReason != "" {
			st = g.WaitReason
		}
		if st == "" {
			st = "state unknown"
		}
		wait := ""
		if g.WaitSecs > 0 {
			wait = fmt.Sprintf(", ≥ %s", time.Duration(g.WaitSecs*float64(time.Second)))
		}
		idle := ""
		if g.Idle != "" {
			idle = " (idle: " + g.Idle + ")"
		}
		fmt.Fprintf(w, "%s: %d goroutine(s) [%s%s] in %s%s\n", g.Ref, g.Count, st, wait, g.Culprit, idle)
		if len(g.IDs) > 0 {
			ids := make([]string, 0, len(g.IDs))
			for _, id := range g.IDs {
				ids = append(ids, strconv.FormatInt(id, 10))
			}
			more := ""
			if g.Count > len(g.IDs) {
				more = ", ..."
			}
			fmt.Fprintf(w, "  goroutines: %s%s\n", strings.Join(ids, ", "), more)
		}
		keys := make([]string, 0, len(g.Labels))
		for k := range g.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			vs := g.Labels[k]
			if len(vs) > maxLabelValues {
				vs = append(vs[:maxLabelValues:maxLabelValues], "...")
			}
			fmt.Fprintf(w, "  label %s: %s\n", k, strings.Join(vs, ", "))
		}
		if len(g.Locks) > 0 {
			fmt.Fprintf(w, "  waiting for lock %s\n", strings.Join(g.Locks, ", "))
		}
		for _, f := range g.Stack {
			if f.File != "" {
				fmt.Fprintf(w, "    %s\n        %s:%d\n", f.Function, f.File, f.Line)
			} else {
				fmt.Fprintf(w, "    %s\n", f.Function)
			}
		}
		if g.CreatedBy != nil {
			fmt.Fprintf(w, "  created by %s\n        %s:%d\n", g.CreatedBy.Function, g.CreatedBy.File, g.CreatedBy.Line)
		}
		fmt.Fprintln(w)
	}
}

// GoroutinesReport is `diag goroutines`: findings first, then the groups.
type GoroutinesReport struct {
	Total    int                `json:"total"`
	Findings []findings.Finding `json:"findings"`
	Idle     *findings.Idle     `json:"idle,omitempty"`
	Notes    []string           `json:"notes,omitempty"`
	App      []string           `json:"app"`
	Groups   []DumpGroup        `json:"groups"`
}

// WriteText prints the report: Findings, then every group.
func (r *GoroutinesReport) WriteText(w io.Writer) error {
	res := findings.Result{Findings: r.Findings, Idle: r.Idle, Notes: r.Notes}
	if err := res.WriteText(w, false); err != nil {
		return err
	}
	fmt.Fprintf(w, "%d goroutines in %d groups (identical stacks); application code: %s\n\n", r.Total, len(r.Groups), strings.Join(r.App, ", "))
	WriteDumpGroups(w, r.Groups, 0)
	return nil
}

// RestrictToProfile keeps the groups of s whose stack is in p (a goroutine
// profile already filtered by labels), with p's counts and labels.
func RestrictToProfile(s *findings.Snapshot, p *profile.Profile) {
	type acc struct {
		n      int
		labels map[string][]string
	}
	idx, _ := SampleIndex(p, "goroutine")
	byKey := map[string]*acc{}
	for _, smp := range p.Sample {
		var frames []findings.Frame
		for _, f := range stackFrames(smp) {
			frames = append(frames, findings.Frame{Function: f.Function, File: f.File, Line: int(f.Line)})
		}
		k := framesKey(trimRuntime(frames))
		a := byKey[k]
		if a == nil {
			a = &acc{labels: map[string][]string{}}
			byKey[k] = a
		}
		a.n += int(smp.Value[idx])
		for lk, vs := range smp.Label {
			for _, v := range vs {
				if len(a.labels[lk]) < 20 && !slices.Contains(a.labels[lk], v) {
					a.labels[lk] = append(a.labels[lk], v)
				}
			}
		}
	}
	kept := s.Groups[:0]
	s.Total = 0
	for _, g := range s.Groups {
		a := byKey[framesKey(trimRuntime(g.Frames))]
		if a == nil {
			continue
		}
		if a.n < g.Count {
			g.Count = a.n
			if len(g.IDs) > a.n {
				g.IDs = g.IDs[:a.n]
			}
		}
		g.Labels = a.labels
		s.Total += g.Count
		kept = append(kept, g)
	}
	s.Groups = kept
}
