package profile

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/pprof/profile"
)

// Entry is one function's share of a profile, as in `go tool pprof -top`:
// Flat is what the function itself spent (it was the innermost frame),
// Cum what it and everything it called spent (counted once per sample
// even when the function recurses).
type Entry struct {
	Function string  `json:"function"`
	Flat     int64   `json:"flat"`
	FlatPct  float64 `json:"flat_pct"`
	Cum      int64   `json:"cum"`
	CumPct   float64 `json:"cum_pct"`
}

// TopReport is the top of one profile for one sample type.
type TopReport struct {
	SampleType string  `json:"sample_type"`
	Unit       string  `json:"unit"`
	Total      int64   `json:"total"`
	Samples    int     `json:"samples"`
	Entries    []Entry `json:"entries"`
	// Functions is how many functions had a non-zero value before
	// truncation to N.
	Functions int `json:"functions"`
}

// SampleIndex finds the index of sampleType in p. An empty name selects
// p's default sample type (or the last one, pprof's convention).
func SampleIndex(p *profile.Profile, sampleType string) (int, error) {
	if len(p.SampleType) == 0 {
		return 0, fmt.Errorf("profile has no sample types")
	}
	if sampleType == "" {
		sampleType = p.DefaultSampleType
	}
	if sampleType == "" {
		return len(p.SampleType) - 1, nil
	}
	var have []string
	for i, st := range p.SampleType {
		if st.Type == sampleType {
			return i, nil
		}
		have = append(have, st.Type)
	}
	return 0, fmt.Errorf("profile has no sample type %q (it has %s)", sampleType, strings.Join(have, ", "))
}

// frameNames returns the function names of a sample's stack, innermost
// first, with inlined calls expanded as pprof does.
func frameNames(s *profile.Sample) []string {
	var names []string
	for _, loc := range s.Location {
		if len(loc.Line) == 0 {
			names = append(names, fmt.Sprintf("0x%x", loc.Address))
			continue
		}
		for _, ln := range loc.Line {
			if ln.Function != nil {
				names = append(names, ln.Function.Name)
			} else {
				names = append(names, fmt.Sprintf("0x%x", loc.Address))
			}
		}
	}
	return names
}

// flatCum sums flat and cum values per function for sample index idx.
func flatCum(p *profile.Profile, idx int) (flat, cum map[string]int64, total int64) {
	flat, cum = map[string]int64{}, map[string]int64{}
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		names := frameNames(s)
		if len(names) == 0 {
			continue
		}
		flat[names[0]] += v
		seen := make(map[string]bool, len(names))
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				cum[n] += v
			}
		}
	}
	return flat, cum, total
}

func pct(v, total int64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * float64(v) / float64(total)
}

// Top returns the n functions with the largest flat value (ties by cum,
// then name) for sampleType ("" = the profile's default). n <= 0 keeps
// all of them.
func Top(p *profile.Profile, sampleType string, n int) (*TopReport, error) {
	idx, err := SampleIndex(p, sampleType)
	if err != nil {
		return nil, err
	}
	flat, cum, total := flatCum(p, idx)
	r := &TopReport{
		SampleType: p.SampleType[idx].Type,
		Unit:       p.SampleType[idx].Unit,
		Total:      total,
		Samples:    len(p.Sample),
	}
	for fn, c := range cum {
		if c == 0 && flat[fn] == 0 {
			continue
		}
		r.Entries = append(r.Entries, Entry{
			Function: fn,
			Flat:     flat[fn], FlatPct: pct(flat[fn], total),
			Cum: c, CumPct: pct(c, total),
		})
	}
	sort.Slice(r.Entries, func(i, j int) bool {
		a, b := r.Entries[i], r.Entries[j]
		if a.Flat != b.Flat {
			return a.Flat > b.Flat
		}
		if a.Cum != b.Cum {
			return a.Cum > b.Cum
		}
		return a.Function < b.Function
	})
	r.Functions = len(r.Entries)
	if n > 0 && len(r.Entries) > n {
		r.Entries = r.Entries[:n]
	}
	return r, nil
}

// WriteText prints r like `go tool pprof -top`, with a header line saying
// which sample type is shown and its total.
func (r *TopReport) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "Type: %s (%s)   Total: %s   Samples: %d\n", r.SampleType, r.Unit, FormatValue(r.Total, r.Unit), r.Samples)
	if len(r.Entries) < r.Functions {
		fmt.Fprintf(w, "Showing top %d of %d functions\n", len(r.Entries), r.Functions)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flat\tflat%\tcum\tcum%\t\t")
	for _, e := range r.Entries {
		fmt.Fprintf(tw, "%s\t%.2f%%\t%s\t%.2f%%\t\t%s\n", FormatValue(e.Flat, r.Unit), e.FlatPct, FormatValue(e.Cum, r.Unit), e.CumPct, e.Function)
	}
	return tw.Flush()
}

// FormatValue renders v in unit the way pprof does: nanoseconds as a
// duration, bytes in B/kB/MB/GB, counts as plain numbers.
func FormatValue(v int64, unit string) string {
	neg := v < 0
	if neg {
		v = -v
	}
	var s string
	switch unit {
	case "nanoseconds":
		s = roundDuration(time.Duration(v))
	case "bytes":
		s = formatBytes(v)
	default:
		s = fmt.Sprintf("%d", v)
	}
	if neg {
		return "-" + s
	}
	return s
}

func roundDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d >= time.Microsecond:
		return fmt.Sprintf("%.2fus", float64(d)/float64(time.Microsecond))
	}
	return fmt.Sprintf("%dns", int64(d))
}

func formatBytes(v int64) string {
	const k = 1024
	switch {
	case v >= k*k*k:
		return fmt.Sprintf("%.2fGB", float64(v)/(k*k*k))
	case v >= k*k:
		return fmt.Sprintf("%.2fMB", float64(v)/(k*k))
	case v >= k:
		return fmt.Sprintf("%.2fkB", float64(v)/k)
	}
	return fmt.Sprintf("%dB", v)
}
