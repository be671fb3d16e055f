package findings

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/wardgate/wardgate/internal/bytesize"
)

// sampleFrames converts a pprof sample's stack (innermost first, inlined
// frames expanded).
func sampleFrames(s *profile.Sample) []Frame {
	var out []Frame
	for _, loc := range s.Location {
		for _, ln := range loc.Line {
			if ln.Function == nil {
				continue
			}
			out = append(out, Frame{Function: ln.Function.Name, File: ln.Function.Filename, Line: int(ln.Line)})
		}
	}
	return out
}

func sampleIndex(p *profile.Profile, names ...string) int {
	for _, n := range names {
		for i, st := range p.SampleType {
			if st.Type == n {
				return i
			}
		}
	}
	return len(p.SampleType) - 1
}

// siteAcc sums a profile's values per application site.
type siteAcc struct {
	fr     Frame
	attrib int64 // value of the samples whose first application frame is this one
}

// appSites attributes every sample to its first application frame (the
// culprit), keyed by function (byLine false) or function and line.
func appSites(c *Classifier, p *profile.Profile, idx int, byLine bool) (map[string]*siteAcc, int64) {
	sites := map[string]*siteAcc{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[idx]
		total += v
		frames := sampleFrames(s)
		ci := c.Culprit(frames)
		if ci < 0 {
			continue
		}
		fr := frames[ci]
		key := fr.Function
		if byLine {
			key = fmt.Sprintf("%s:%d", fr.Function, fr.Line)
		}
		a := sites[key]
		if a == nil {
			a = &siteAcc{fr: fr}
			sites[key] = a
		}
		a.attrib += v
	}
	return sites, total
}

// CPU names the hottest application function of a CPU profile: every
// sample counts for the first application frame on its stack (time in the
// standard library and libraries counts for the application code that
// called them). running is an optional goroutine snapshot pair: goroutines
// found running in the same function in both are named in the evidence.
func CPU(c *Classifier, p *profile.Profile, running ...*Snapshot) Result {
	var r Result
	if p == nil || len(p.Sample) == 0 {
		return r
	}
	idx := sampleIndex(p, "cpu")
	sites, total := appSites(c, p, idx, false)
	dur := time.Duration(p.DurationNanos)
	if dur <= 0 || total <= 0 {
		return r
	}
	cores := float64(total) / float64(dur.Nanoseconds()) // cpu nanoseconds per wall nanosecond
	var best *siteAcc
	for _, s := range sites {
		if best == nil || s.attrib > best.attrib {
			best = s
		}
	}
	if best == nil || !c.IsApp(best.fr.Function) {
		if cores >= 0.5 {
			r.Notes = append(r.Notes, fmt.Sprintf("CPU: %.2f cores used, most of it outside application code", cores))
		}
		return r
	}
	share := float64(best.attrib) / float64(total)
	used := cores * share
	nRunning, runIDs := 0, []int64(nil)
	if len(running) > 0 {
		nRunning, runIDs = runningIn(c, best.fr.Function, running)
	}
	// Hot: a quarter of a core in one application function, or less on a
	// starved machine when goroutines were caught running there in every
	// sample and it takes most of what the process used.
	if used < 0.25 && !(nRunning > 0 && share >= 0.5 && used >= 0.05) {
		r.Notes = append(r.Notes, fmt.Sprintf("CPU: %.2f cores used; nothing hot (the busiest application function, %s, %.0f%%)", cores, shortFunc(best.fr.Function), 100*share))
		return r
	}
	// Own flat/cum of the function itself.
	flat, cum := ownFlatCum(p, idx, best.fr.Function)
	f := Finding{Kind: KindCPU, Severity: Medium, Function: best.fr.Function, File: best.fr.File, Line: best.fr.Line,
		Numbers: map[string]float64{"cores": cores, "share": share, "flat_share": float64(flat) / float64(total),
			"cum_share": float64(cum) / float64(total), "profile_seconds": dur.Seconds()},
		score: 100 * used}
	if used >= 0.75 {
		f.Severity = High
	}
	f.Headline = fmt.Sprintf("hot code in %s: %.2f cores (%.0f%% of %.2f cores used over %s; flat %.0f%%, cum %.0f%%)",
		best.fr.Short(), used, 100*share, cores, seconds(dur.Seconds()), 100*float64(flat)/float64(total), 100*float64(cum)/float64(total))
	f.Evidence = append(f.Evidence, "hottest line: "+hottestLine(p, idx, best.fr.Function))
	if nRunning > 0 {
		f.Goroutines, f.GoroutineIDs = nRunning, runIDs
		f.Evidence = append(f.Evidence, fmt.Sprintf("%d goroutine(s) found running/runnable in %s in every goroutine sample", nRunning, shortFunc(best.fr.Function)))
		f.score += 10
	}
	r.add(f)
	return r
}

func ownFlatCum(p *profile.Profile, idx int, fn string) (flat, cum int64) {
	for _, s := range p.Sample {
		frames := sampleFrames(s)
		for i, f := range frames {
			if f.Function == fn {
				if i == 0 {
					flat += s.Value[idx]
				}
				cum += s.Value[idx]
				break
			}
		}
	}
	return flat, cum
}

func hottestLine(p *profile.Profile, idx int, fn string) string {
	lines := map[string]int64{}
	for _, s := range p.Sample {
		for _, f := range sampleFrames(s) {
			if f.Function == fn {
				lines[fmt.Sprintf("%s:%d", f.File, f.Line)] += s.Value[idx]
				break
			}
		}
	}
	best, bv := "", int64(-1)
	for l, v := range lines {
		if v > bv || v == bv && l < best {
			best, bv = l, v
		}
	}
	return best
}

// runningIn counts goroutines running or runnable with fn on their stack
// in every snapshot.
func runningIn(c *Classifier, fn string, snaps []*Snapshot) (int, []int64) {
	minN := -1
	var ids []int64
	for _, s := range snaps {
		if s == nil {
			continue
		}
		n := 0
		var sids []int64
		for i := range s.Groups {
			g := &s.Groups[i]
			if g.State != "running" && g.State != "runnable" {
				continue
			}
			for _, f := range g.Frames {
				if f.Function == fn {
					n += g.Count
					sids = append(sids, g.IDs...)
					break
				}
			}
		}
		if minN < 0 || n < minN {
			minN, ids = n, sids
		}
	}
	if minN < 0 {
		minN = 0
	}
	return minN, capIDs(ids)
}

// HeapGrowth compares two heap profiles (in-use space, both taken right
// after a GC so in-use means retained) and names the application
// allocation site that grew most, with bytes and rate.
func HeapGrowth(c *Classifier, before, after *profile.Profile) Result {
	var r Result
	if before == nil || after == nil {
		return r
	}
	bi, ai := sampleIndex(before, "inuse_space"), sampleIndex(after, "inuse_space")
	bs, btotal := appSites(c, before, bi, true)
	as, atotal := appSites(c, after, ai, true)
	interval := time.Duration(after.TimeNanos - before.TimeNanos)
	type grow struct {
		s     *siteAcc
		delta int64
	}
	var gs []grow
	for k, a := range as {
		var prev int64
		if b := bs[k]; b != nil {
			prev = b.attrib
		}
		if d := a.attrib - prev; d > 0 {
			gs = append(gs, grow{a, d})
		}
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].delta > gs[j].delta })
	totalDelta := atotal - btotal
	if len(gs) == 0 || !c.IsApp(gs[0].s.fr.Function) {
		if totalDelta > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("heap: in-use grew by %s, not at an application allocation site", bytesize.Format(totalDelta)))
		}
		return r
	}
	top := gs[0]
	// Small absolute growth is noise (a few buffers); require a MiB, or
	// a quarter of the heap.
	if top.delta < 1<<20 && (atotal == 0 || float64(top.delta)/float64(atotal) < 0.25) {
		r.Notes = append(r.Notes, fmt.Sprintf("heap: largest growth %s at %s: too small to call", bytesize.Format(top.delta), shortFunc(top.s.fr.Function)))
		return r
	}
	f := Finding{Kind: KindMemoryGrowth, Severity: Medium, Function: top.s.fr.Function, File: top.s.fr.File, Line: top.s.fr.Line,
		Numbers: map[string]float64{"grew_bytes": float64(top.delta), "inuse_bytes": float64(top.s.attrib), "heap_inuse_bytes": float64(atotal)},
		score:   float64(top.delta) / (1 << 20)}
	rate := ""
	if interval > 0 {
		perSec := float64(top.delta) / interval.Seconds()
		f.Numbers["bytes_per_second"] = perSec
		f.Numbers["interval_seconds"] = interval.Seconds()
		rate = fmt.Sprintf(" (%s/s over %s)", bytesize.Format(int64(perSec)), seconds(interval.Seconds()))
	}
	if top.delta >= 8<<20 || atotal > 0 && float64(top.delta)/float64(atotal) >= 0.2 {
		f.Severity = High
	}
	f.Headline = fmt.Sprintf("memory growth in %s: in-use heap allocated there grew by %s%s, now %s of %s retained",
		top.s.fr.Short(), bytesize.Format(top.delta), rate, bytesize.Format(top.s.attrib), bytesize.Format(atotal))
	for _, o := range gs[1:] {
		if len(f.Evidence) >= 3 || !c.IsApp(o.s.fr.Function) {
			break
		}
		f.Evidence = append(f.Evidence, fmt.Sprintf("also grew: %s at %s", bytesize.Format(o.delta), o.s.fr))
	}
	f.Evidence = append(f.Evidence, "heap profiles taken after a GC: in-use bytes are retained, not garbage")
	r.add(f)
	return r
}

// GoroutineGrowth compares two goroutine profiles (proto form: no states)
// and reports application locations that gained goroutines: a leak.
func GoroutineGrowth(c *Classifier, before, after *profile.Profile) Result {
	var r Result
	if before == nil || after == nil {
		return r
	}
	bs, _ := appSites(c, before, sampleIndex(before, "goroutine"), true)
	as, _ := appSites(c, after, sampleIndex(after, "goroutine"), true)
	interval := time.Duration(after.TimeNanos - before.TimeNanos)
	for k, a := range as {
		var prev int64
		if b := bs[k]; b != nil {
			prev = b.attrib
		}
		d := a.attrib - prev
		if d < minGrowth || !c.IsApp(a.fr.Function) {
			continue
		}
		f := Finding{Kind: KindLeak, Severity: High, Function: a.fr.Function, File: a.fr.File, Line: a.fr.Line,
			Goroutines: int(a.attrib), Numbers: map[string]float64{"goroutines": float64(a.attrib), "growth": float64(d)},
			score: float64(d)}
		trend := ""
		if interval > 0 {
			f.Numbers["growth_per_second"] = float64(d) / interval.Seconds()
			trend = " in " + seconds(interval.Seconds())
		}
		f.Headline = fmt.Sprintf("goroutine leak in %s: +%d goroutines%s (now %d)", a.fr.Short(), d, trend, a.attrib)
		r.add(f)
	}
	r.sortFindings()
	if len(r.Findings) > 3 {
		r.Findings = r.Findings[:3]
	}
	return r
}

// ProfileSnapshot groups a goroutine profile (proto, debug=0: labels but
// no states) into a Snapshot for the goroutine detectors.
func ProfileSnapshot(p *profile.Profile) *Snapshot {
	s := &Snapshot{Taken: time.Unix(0, p.TimeNanos)}
	idx := sampleIndex(p, "goroutine")
	byKey := map[string]int{}
	for _, smp := range p.Sample {
		frames := sampleFrames(smp)
		var kb strings.Builder
		for _, f := range frames {
			fmt.Fprintf(&kb, "%s:%d|", f.Function, f.Line)
		}
		n := int(smp.Value[idx])
		s.Total += n
		i, ok := byKey[kb.String()]
		if !ok {
			i = len(s.Groups)
			byKey[kb.String()] = i
			s.Groups = append(s.Groups, Group{Frames: frames, Labels: map[string][]string{}})
		}
		g := &s.Groups[i]
		g.Count += n
		for k, vs := range smp.Label {
			for _, v := range vs {
				if len(g.Labels[k]) < 20 && !slices.Contains(g.Labels[k], v) {
					g.Labels[k] = append(g.Labels[k], v)
				}
			}
		}
	}
	return s
}

// HeapRetained names the application allocation site holding most of one
// heap profile's in-use bytes (taken after a GC: retained memory). One
// profile shows size, not growth: the finding says so; two profiles go to
// HeapGrowth.
func HeapRetained(c *Classifier, p *profile.Profile) Result {
	var r Result
	if p == nil {
		return r
	}
	sites, total := appSites(c, p, sampleIndex(p, "inuse_space"), true)
	var best *siteAcc
	for _, s := range sites {
		if c.IsApp(s.fr.Function) && (best == nil || s.attrib > best.attrib) {
			best = s
		}
	}
	if best == nil || total <= 0 || float64(best.attrib)/float64(total) < 0.2 {
		r.Notes = append(r.Notes, fmt.Sprintf("heap: %s in use, no application allocation site holds a fifth of it", bytesize.Format(total)))
		return r
	}
	share := float64(best.attrib) / float64(total)
	f := Finding{Kind: KindMemoryGrowth, Severity: Medium, Function: best.fr.Function, File: best.fr.File, Line: best.fr.Line,
		Numbers: map[string]float64{"inuse_bytes": float64(best.attrib), "heap_inuse_bytes": float64(total), "share": share},
		score:   float64(best.attrib) / (1 << 20)}
	f.Headline = fmt.Sprintf("memory held in %s: %s of %s in-use heap (%.0f%%) allocated there and retained", best.fr.Short(), bytesize.Format(best.attrib), bytesize.Format(total), 100*share)
	f.Evidence = []string{"one heap profile (after a GC): this is what is retained now; growth needs two (wardgate diag triage, or profile diff)"}
	r.add(f)
	return r
}
