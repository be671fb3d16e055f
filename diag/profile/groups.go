package profile

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// Frame is one stack frame of a goroutine.
type Frame struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int64  `json:"line"`
}

// Group is a set of goroutines with an identical stack, like panicparse's
// buckets: a thousand goroutines parked on the same channel receive read
// as one line with a count.
type Group struct {
	Count int64 `json:"count"`
	// Top is the innermost frame's function (often runtime.gopark for a
	// parked goroutine).
	Top string `json:"top"`
	// Where is the innermost frame outside the Go standard library: the
	// application code that started the wait.
	Where string  `json:"where,omitempty"`
	Stack []Frame `json:"stack"`
	// Labels holds, for each pprof label key, the distinct values seen in
	// the group (sorted), e.g. every trace_id of the stuck requests.
	Labels map[string][]string `json:"labels,omitempty"`
	// Unlabeled is how many goroutines of the group had no labels.
	Unlabeled int64 `json:"unlabeled"`
}

// GroupsReport is the goroutine profile grouped by stack.
type GroupsReport struct {
	Total  int64   `json:"total"`
	Groups []Group `json:"groups"`
}

func stackFrames(s *profile.Sample) []Frame {
	var fr []Frame
	for _, loc := range s.Location {
		if len(loc.Line) == 0 {
			fr = append(fr, Frame{Function: fmt.Sprintf("0x%x", loc.Address)})
		}
		for _, ln := range loc.Line {
			f := Frame{Line: ln.Line}
			if ln.Function != nil {
				f.Function, f.File = ln.Function.Name, ln.Function.Filename
			} else {
				f.Function = fmt.Sprintf("0x%x", loc.Address)
			}
			fr = append(fr, f)
		}
	}
	return fr
}

// isStdlib reports whether fn belongs to the Go standard library: its
// import path's first element has no dot and it is not package main.
func isStdlib(fn string) bool {
	if strings.HasPrefix(fn, "main.") {
		return false
	}
	path := fn
	if i := strings.LastIndex(path, "/"); i >= 0 {
		path = path[:i]
	} else if i := strings.Index(path, "."); i >= 0 {
		path = path[:i]
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// Groups groups the samples of a goroutine profile (debug=0, which keeps
// labels) by identical stack, most populated group first.
func Groups(p *profile.Profile) (*GroupsReport, error) {
	idx, err := SampleIndex(p, "goroutine")
	if err != nil {
		return nil, fmt.Errorf("not a goroutine profile: %w", err)
	}
	type acc struct {
		g      *Group
		labels map[string]map[string]bool
	}
	byKey := map[string]*acc{}
	var order []string
	r := &GroupsReport{}
	for _, s := range p.Sample {
		n := s.Value[idx]
		r.Total += n
		frames := stackFrames(s)
		var kb strings.Builder
		for _, f := range frames {
			fmt.Fprintf(&kb, "%s\x00%s\x00%d\n", f.Function, f.File, f.Line)
		}
		key := kb.String()
		a, ok := byKey[key]
		if !ok {
			g := &Group{Stack: frames}
			if len(frames) > 0 {
				g.Top = frames[0].Function
			}
			for _, f := range frames {
				if !isStdlib(f.Function) {
					g.Where = f.Function
					break
				}
			}
			a = &acc{g: g, labels: map[string]map[string]bool{}}
			byKey[key] = a
			order = append(order, key)
		}
		a.g.Count += n
		if len(s.Label) == 0 {
			a.g.Unlabeled += n
		}
		for k, vs := range s.Label {
			if a.labels[k] == nil {
				a.labels[k] = map[string]bool{}
			}
			for _, v := range vs {
				a.labels[k][v] = true
			}
		}
	}
	for _, key := range order {
		a := byKey[key]
		if len(a.labels) > 0 {
			a.g.Labels = map[string][]string{}
			for k, set := range a.labels {
				for v := range set {
					a.g.Labels[k] = append(a.g.Labels[k], v)
				}
				sort.Strings(a.g.Labels[k])
			}
		}
		r.Groups = append(r.Groups, *a.g)
	}
	sort.SliceStable(r.Groups, func(i, j int) bool {
		a, b := r.Groups[i], r.Groups[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Top < b.Top
	})
	return r, nil
}

// maxLabelValues caps how many distinct values per label key the text
// output lists; JSON has them all.
const maxLabelValues = 10

// WriteText prints each group: count, where it waits, its labels and the
// full stack with file:line.
func (r *GroupsReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "%d goroutines in %d groups (identical stacks)\n", r.Total, len(r.Groups))
	for _, g := range r.Groups {
		top := g.Top
		if top == "" {
			top = "(no stack recorded)"
		}
		fmt.Fprintf(w, "\n%d goroutine(s): %s", g.Count, top)
		if g.Where != "" && g.Where != g.Top {
			fmt.Fprintf(w, "  in %s", g.Where)
		}
		fmt.Fprintln(w)
		keys := make([]string, 0, len(g.Labels))
		for k := range g.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			vs := g.Labels[k]
			shown := vs
			if len(shown) > maxLabelValues {
				shown = shown[:maxLabelValues]
			}
			more := ""
			if len(vs) > len(shown) {
				more = fmt.Sprintf(" ... (%d distinct)", len(vs))
			}
			fmt.Fprintf(w, "  label %s: %s%s\n", k, strings.Join(shown, ", "), more)
		}
		if len(g.Labels) > 0 && g.Unlabeled > 0 {
			fmt.Fprintf(w, "  (%d without labels)\n", g.Unlabeled)
		}
		for _, f := range g.Stack {
			if f.File != "" {
				fmt.Fprintf(w, "    %s\n        %s:%d\n", f.Function, f.File, f.Line)
			} else {
				fmt.Fprintf(w, "    %s\n", f.Function)
			}
		}
	}
	return nil
}
