package profile

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/google/pprof/profile"
)

// DiffEntry is one function whose flat or cumulative value changed.
type DiffEntry struct {
	Function  string `json:"function"`
	FlatDelta int64  `json:"flat_delta"`
	CumDelta  int64  `json:"cum_delta"`
	// CumBase and CumNew are the function's cumulative values in each
	// profile, so "grew by 500" can be read as "from 3 to 503".
	CumBase int64 `json:"cum_base"`
	CumNew  int64 `json:"cum_new"`
}

// DiffReport is what grew and what shrank between two profiles.
type DiffReport struct {
	SampleType string      `json:"sample_type"`
	Unit       string      `json:"unit"`
	BaseTotal  int64       `json:"base_total"`
	NewTotal   int64       `json:"new_total"`
	Delta      int64       `json:"delta"`
	Grew       []DiffEntry `json:"grew"`
	Shrank     []DiffEntry `json:"shrank"`
	// SortBy is "flat" or "cum": the delta the entries are ranked by.
	SortBy string `json:"sort_by"`
}

// DiffOptions tunes Diff.
type DiffOptions struct {
	// SampleType to compare ("" = the profiles' default).
	SampleType string
	// N caps each of Grew and Shrank (<= 0: no cap).
	N int
	// Cum ranks by cumulative delta instead of flat delta. Cumulative
	// is what names the caller of a leak: leaked goroutines all have
	// runtime.gopark as their innermost (flat) frame.
	Cum bool
}

// Diff compares newP against base the way `go tool pprof -diff_base`
// does: base is scaled by -1 and merged with newP, so every sample that
// did not change cancels out and what remains is the change. Entries are
// ranked by absolute delta. Neither input is modified.
func Diff(base, newP *profile.Profile, opts DiffOptions) (*DiffReport, error) {
	bi, err := SampleIndex(base, opts.SampleType)
	if err != nil {
		return nil, fmt.Errorf("base profile: %w", err)
	}
	ni, err := SampleIndex(newP, opts.SampleType)
	if err != nil {
		return nil, fmt.Errorf("new profile: %w", err)
	}
	st := newP.SampleType[ni]
	if bt := base.SampleType[bi]; bt.Type != st.Type || bt.Unit != st.Unit {
		return nil, fmt.Errorf("profiles are of different types: base %s/%s, new %s/%s", bt.Type, bt.Unit, st.Type, st.Unit)
	}
	neg := base.Copy()
	neg.Scale(-1)
	merged, err := profile.Merge([]*profile.Profile{neg, newP.Copy()})
	if err != nil {
		return nil, fmt.Errorf("profiles cannot be compared (different kinds?): %w", err)
	}
	mi, err := SampleIndex(merged, st.Type)
	if err != nil {
		return nil, err
	}
	merged = merged.Compact()
	flat, cum, _ := flatCum(merged, mi)
	_, cumBase, baseTotal := flatCum(base, bi)
	_, cumNew, newTotal := flatCum(newP, ni)

	r := &DiffReport{
		SampleType: st.Type, Unit: st.Unit,
		BaseTotal: baseTotal, NewTotal: newTotal, Delta: newTotal - baseTotal,
		SortBy: "flat",
	}
	if opts.Cum {
		r.SortBy = "cum"
	}
	key := func(e DiffEntry) int64 {
		if opts.Cum {
			return e.CumDelta
		}
		return e.FlatDelta
	}
	for fn := range cum {
		e := DiffEntry{Function: fn, FlatDelta: flat[fn], CumDelta: cum[fn], CumBase: cumBase[fn], CumNew: cumNew[fn]}
		if e.FlatDelta == 0 && e.CumDelta == 0 {
			continue
		}
		k := key(e)
		if k == 0 {
			// Ranked by the other delta's sign so it is still listed.
			if opts.Cum {
				k = e.FlatDelta
			} else {
				k = e.CumDelta
			}
		}
		if k > 0 {
			r.Grew = append(r.Grew, e)
		} else {
			r.Shrank = append(r.Shrank, e)
		}
	}
	less := func(list []DiffEntry) func(i, j int) bool {
		return func(i, j int) bool {
			a, b := list[i], list[j]
			ka, kb := abs(key(a)), abs(key(b))
			if ka != kb {
				return ka > kb
			}
			if ca, cb := abs(a.CumDelta), abs(b.CumDelta); ca != cb {
				return ca > cb
			}
			return a.Function < b.Function
		}
	}
	sort.Slice(r.Grew, less(r.Grew))
	sort.Slice(r.Shrank, less(r.Shrank))
	if opts.N > 0 {
		if len(r.Grew) > opts.N {
			r.Grew = r.Grew[:opts.N]
		}
		if len(r.Shrank) > opts.N {
			r.Shrank = r.Shrank[:opts.N]
		}
	}
	return r, nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// WriteText prints the totals, then what grew and what shrank.
func (r *DiffReport) WriteText(w io.Writer) error {
	fv := func(v int64) string { return FormatValue(v, r.Unit) }
	sign := func(v int64) string {
		if v > 0 {
			return "+" + fv(v)
		}
		return fv(v)
	}
	fmt.Fprintf(w, "Type: %s (%s)\nTotal: base %s -> new %s (%s)\n", r.SampleType, r.Unit, fv(r.BaseTotal), fv(r.NewTotal), sign(r.Delta))
	section := func(title string, list []DiffEntry) {
		fmt.Fprintf(w, "\n%s (by %s delta):\n", title, r.SortBy)
		if len(list) == 0 {
			fmt.Fprintln(w, "  (nothing)")
			return
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "flat Δ\tcum Δ\tcum base\tcum new\t\t")
		for _, e := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\t%s\n", sign(e.FlatDelta), sign(e.CumDelta), fv(e.CumBase), fv(e.CumNew), e.Function)
		}
		tw.Flush()
	}
	section("Grew", r.Grew)
	section("Shrank", r.Shrank)
	return nil
}
