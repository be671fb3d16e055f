// Package triage is `wardgate diag triage`: the one command for "something
// is wrong with this process". It samples a live Go process through its
// admin listener twice a few seconds apart (goroutine dump and profile, a
// heap profile taken right after a GC, /metrics), takes a CPU profile in
// between and, on request, a core; saves everything in one bundle
// directory; and ranks what it saw with package findings, so the report
// opens with the verdict and the application function to look at.
package triage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	gpprof "github.com/google/pprof/profile"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wardgate/wardgate/diag/analyze"
	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/diag/capture"
	"github.com/wardgate/wardgate/diag/findings"
	"github.com/wardgate/wardgate/diag/profile"
)

// Options says what to triage.
type Options struct {
	// Target is the admin URL; when empty, it is found from PID's
	// listening ports.
	Target string
	PID    int
	Token  string
	// Dump is DumpAuto (""), DumpAlways or DumpNever: when to take the
	// text goroutine dump.
	Dump string
	// Interval is the time between the two samples; the CPU profile
	// covers it. Default 3s.
	Interval time.Duration
	// Core also captures a core (needs PID, found from Target if local)
	// and adds its analysis.
	Core bool
	// OutDir is the bundle directory; "" means
	// ./wardgate-triage-<UTC time>.
	OutDir string
	// App are application import-path prefixes (--app); empty means the
	// main module of the process's executable.
	App []string
	// TraceURLTemplate turns trace IDs into links.
	TraceURLTemplate string
	// Progress receives one line per step (stderr); nil discards.
	Progress io.Writer
	// Logger is for the capture's own logs; nil discards.
	Logger *slog.Logger
}

// Artifact is one file the triage saved.
type Artifact struct {
	Path string `json:"path"`
	What string `json:"what"`
}

// Report is the triage result.
type Report struct {
	Target     string             `json:"target"`
	PID        int                `json:"pid,omitempty"`
	MainModule string             `json:"main_module,omitempty"`
	App        []string           `json:"app"`
	Started    time.Time          `json:"started"`
	Seconds    float64            `json:"seconds"`
	Bundle     string             `json:"bundle"`
	Findings   []findings.Finding `json:"findings"`
	Idle       *findings.Idle     `json:"idle,omitempty"`
	Notes      []string           `json:"notes,omitempty"`
	Goroutines int                `json:"goroutines"`
	// Groups are the goroutine groups of the second sample, those the
	// findings refer to first.
	Groups    []profile.DumpGroup `json:"groups"`
	Artifacts []Artifact          `json:"artifacts"`
	// Analysis is the core's report, with --core.
	Analysis *analyze.Report `json:"analysis,omitempty"`
}

// Text dumps (debug=2) are the only source of goroutine states, wait
// times and IDs, but the runtime writes them by tracing every goroutine
// with the world stopped, into a buffer that starts at 1 MiB and doubles:
// a 45 MB dump (100k goroutines) costs the process seven full traces, and
// dumps stop at 64 MB (~140k goroutines). So with DumpAuto both samples
// take one below dumpBothBelow goroutines, only the second below
// dumpOneBelow, and none above: the proto profile (one cheap pass) then
// gives stacks, counts and labels, and waits are judged from the frames
// and from the two samples.
const (
	dumpBothBelow = 20_000
	dumpOneBelow  = 50_000
)

// Dump policies (Options.Dump).
const (
	DumpAuto   = "auto"
	DumpAlways = "always"
	DumpNever  = "never"
)

type sample struct {
	snap    *findings.Snapshot
	heap    *gpprof.Profile
	metrics map[string]*dto.MetricFamily
}

// Run triages the process. Errors wrapping ErrTarget are about the target
// (exit 2); partial failures (a profile the target does not serve) become
// notes in the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	start := time.Now()
	if opts.Interval <= 0 {
		opts.Interval = 3 * time.Second
	}
	progress := func(format string, a ...any) {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "triage: %5.1fs "+format+"\n", append([]any{time.Since(start).Seconds()}, a...)...)
		}
	}
	r := &Report{Started: start.UTC(), PID: opts.PID}
	if opts.Target == "" {
		if opts.PID <= 0 {
			return nil, fmt.Errorf("%w: give --target, --pid or --pid-file", ErrTarget)
		}
		progress("finding the admin listener of pid %d", opts.PID)
		u, err := FindAdmin(ctx, opts.PID, opts.Token)
		if err != nil {
			return nil, err
		}
		opts.Target = u
	}
	base, err := profile.NormalizeTarget(opts.Target)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTarget, err)
	}
	r.Target = base.String()
	if r.PID == 0 {
		r.PID = localPID(base)
	}
	r.MainModule = mainModule(r.PID)
	cls := findings.NewClassifier(r.MainModule, opts.App)
	r.App = cls.App()

	dir := opts.OutDir
	if dir == "" {
		dir = "wardgate-triage-" + start.UTC().Format("20060102T150405Z")
	}
	if err := os.MkdirAll(dir, bundle.DirMode); err != nil {
		return nil, fmt.Errorf("triage: bundle directory: %w", err)
	}
	if err := os.Chmod(dir, bundle.DirMode); err != nil {
		return nil, fmt.Errorf("triage: bundle directory: %w", err)
	}
	r.Bundle = dir
	client := &http.Client{Timeout: opts.Interval + time.Minute}
	fo := profile.FetchOptions{Client: client, Token: opts.Token}
	save := func(name, what string, b []byte) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, bundle.FileMode); err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("save %s: %v", name, err))
			return
		}
		r.Artifacts = append(r.Artifacts, Artifact{Path: p, What: what})
	}

	take := func(n int) (*sample, error) {
		s := &sample{}
		progress("sample %d: goroutines, heap (after a GC), metrics", n)
		gp, raw, err := profile.Fetch(ctx, r.Target, profile.Goroutine, fo)
		if err != nil {
			return nil, targetErr(err)
		}
		save(fmt.Sprintf("goroutine-%d.pb.gz", n), "goroutine profile (labels: trace_id)", raw)
		total := 0
		for _, smp := range gp.Sample {
			total += int(smp.Value[len(smp.Value)-1])
		}
		// The text dump (states, wait times, IDs) stops the target while
		// it is written: see dumpBothBelow.
		takeDump := total <= dumpBothBelow || n == 2 && total <= dumpOneBelow
		switch opts.Dump {
		case DumpAlways:
			takeDump = true
		case DumpNever:
			takeDump = false
		}
		if !takeDump && n == 2 {
			r.Notes = append(r.Notes, fmt.Sprintf("%d goroutines: no text dump taken (it would stop the process for seconds); states and wait times are inferred from the stacks and the two samples (--dump always to take it)", total))
		}
		if takeDump {
			name := fmt.Sprintf("goroutines-%d.txt", n)
			f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, bundle.FileMode)
			if err != nil {
				return nil, fmt.Errorf("triage: %w", err)
			}
			progress("sample %d: goroutine dump (%d goroutines)", n, total)
			s.snap, err = profile.FetchParseDump(ctx, r.Target, fo, gp, f)
			if cerr := f.Close(); err == nil && cerr != nil {
				err = cerr
			}
			if err != nil {
				return nil, targetErr(err)
			}
			r.Artifacts = append(r.Artifacts, Artifact{Path: filepath.Join(dir, name), What: "goroutine dump (debug=2: states, wait times, creators)"})
		} else {
			s.snap = findings.ProfileSnapshot(gp)
		}
		profile.PrepareRefs(s.snap)
		progress("sample %d: heap", n)
		hp, raw, err := fetchHeapAfterGC(ctx, r.Target, fo)
		if err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("heap profile %d: %v", n, err))
		} else {
			s.heap = hp
			save(fmt.Sprintf("heap-%d.pb.gz", n), "heap profile taken after a GC (in-use = retained)", raw)
		}
		if b, err := profile.Get(ctx, client, r.Target+"/metrics", opts.Token); err == nil {
			save(fmt.Sprintf("metrics-%d.txt", n), "Prometheus metrics", b)
			p := expfmt.NewTextParser(model.UTF8Validation)
			if fams, err := p.TextToMetricFamilies(bytes.NewReader(b)); err == nil {
				s.metrics = fams
			}
		}
		return s, nil
	}

	s1, err := take(1)
	if err != nil {
		if opts.OutDir == "" {
			os.RemoveAll(dir) // nothing worth keeping from a target that did not answer
		}
		return nil, err
	}
	progress("CPU profile for %s", opts.Interval)
	secs := int(opts.Interval.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	cpu, raw, err := profile.Fetch(ctx, r.Target, profile.CPU, profile.FetchOptions{Client: client, Token: opts.Token, Seconds: secs})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.Notes = append(r.Notes, fmt.Sprintf("CPU profile: %v", err))
		cpu = nil
		// Keep the trend interval without the profile.
		select {
		case <-time.After(opts.Interval):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	} else {
		save("cpu.pb.gz", fmt.Sprintf("CPU profile (%ds)", secs), raw)
	}
	s2, err := take(2)
	if err != nil {
		return nil, err
	}

	var res findings.Result
	q := queueFromFamilies(s2.metrics)
	res.Merge(findings.Goroutines(cls, s2.snap, findings.GoroutineOptions{Earlier: s1.snap, TraceURL: opts.TraceURLTemplate, Queue: q, Source: findings.LocalSource()}))
	res.Merge(findings.CPU(cls, cpu, s1.snap, s2.snap))
	res.Merge(findings.HeapGrowth(cls, s1.heap, s2.heap))

	if opts.Core {
		if r.PID <= 0 {
			r.Notes = append(r.Notes, "--core: no pid (give --pid or --pid-file; the target is not a local process)")
		} else {
			progress("capturing a core of pid %d", r.PID)
			coreDir := filepath.Join(dir, "core")
			b, err := capture.Capture(ctx, capture.Options{PID: r.PID, OutDir: coreDir, Logger: opts.Logger})
			if err != nil {
				r.Notes = append(r.Notes, fmt.Sprintf("core: %v", err))
			} else {
				r.Artifacts = append(r.Artifacts, Artifact{Path: b.Dir, What: "core bundle (wardgate diag analyze " + b.Dir + ")"})
				progress("analyzing the core")
				ao, err := analyze.OptionsFromBundle(b.Dir)
				if err == nil {
					ao.TraceURLTemplate, ao.App = opts.TraceURLTemplate, opts.App
					var ar *analyze.Report
					if ar, err = analyze.Run(ctx, ao); err == nil {
						r.Analysis = ar
						// The core's findings see lock addresses and exact
						// wait times; merged, a problem seen twice is one.
						res.Merge(findings.Result{Findings: ar.Findings})
					}
				}
				if err != nil {
					r.Notes = append(r.Notes, fmt.Sprintf("core analysis: %v", err))
				}
			}
		}
	}

	if r.PID > 0 {
		addPeers(res.Findings, r.PID)
	}
	r.Findings, r.Idle, r.Notes = res.Findings, res.Idle, append(r.Notes, res.Notes...)
	r.Goroutines = s2.snap.Total
	r.Groups = profile.OrderGroups(cls, s2.snap, res.Findings, 0)
	r.Seconds = time.Since(start).Seconds()

	var md bytes.Buffer
	if err := r.WriteText(&md); err == nil {
		save("report.txt", "this report", md.Bytes())
	}
	if b, err := json.MarshalIndent(r, "", "  "); err == nil {
		save("report.json", "this report as JSON (findings first)", append(b, '\n'))
	}
	return r, nil
}

// addPeers names, under each hung-io finding, the remote addresses the
// process has connections open to: the call is waiting on one of them.
func addPeers(fs []findings.Finding, pid int) {
	var peers map[string]int
	for i := range fs {
		if fs[i].Kind != findings.KindHungIO {
			continue
		}
		if peers == nil {
			if peers = outboundPeers(pid); len(peers) == 0 {
				return
			}
		}
		addrs := make([]string, 0, len(peers))
		for a := range peers {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		parts := make([]string, 0, len(addrs))
		for _, a := range addrs {
			if len(parts) == 8 {
				parts = append(parts, "...")
				break
			}
			parts = append(parts, fmt.Sprintf("%s ×%d", a, peers[a]))
		}
		fs[i].Evidence = append(fs[i].Evidence, "the process's outbound connections (from /proc/"+strconv.Itoa(pid)+"/net/tcp): "+strings.Join(parts, ", "))
	}
}

// fetchHeapAfterGC asks for /debug/pprof/heap?gc=1: the runtime collects
// garbage first, so in-use bytes are what the program retains.
func fetchHeapAfterGC(ctx context.Context, target string, fo profile.FetchOptions) (*gpprof.Profile, []byte, error) {
	base, err := profile.NormalizeTarget(target)
	if err != nil {
		return nil, nil, err
	}
	u := base.JoinPath("/debug/pprof/heap")
	u.RawQuery = "gc=1"
	raw, err := profile.Get(ctx, fo.Client, u.String(), fo.Token)
	if err != nil {
		return nil, nil, err
	}
	p, err := gpprof.ParseData(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("heap profile: %w", err)
	}
	return p, raw, nil
}

func targetErr(err error) error {
	if errors.Is(err, profile.ErrUnreachable) || errors.Is(err, profile.ErrUnauthorized) || errors.Is(err, profile.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrTarget, err)
	}
	return err
}

// localPID is the pid of the process behind a loopback admin URL, if we
// can see it.
func localPID(u *url.URL) int {
	host, portS, err := net.SplitHostPort(u.Host)
	if err != nil {
		return 0
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return 0
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return 0
	}
	return pidOfPort(port)
}

// QueueFromMetrics reads the wardgate job queue's gauges from a /metrics
// body (nil when the process exports none).
func QueueFromMetrics(body []byte) *findings.Queue {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil
	}
	return queueFromFamilies(fams)
}

func queueFromFamilies(fams map[string]*dto.MetricFamily) *findings.Queue {
	get := func(name string) (int64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
		var sum float64
		for _, m := range f.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				sum += m.GetUntyped().GetValue()
			}
		}
		return int64(sum), true
	}
	depth, ok1 := get("wardgate_queue_depth")
	capacity, ok2 := get("wardgate_queue_capacity")
	busy, ok3 := get("wardgate_workers_busy")
	workers, ok4 := get("wardgate_workers_max")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil
	}
	return &findings.Queue{Depth: depth, Capacity: capacity, Busy: busy, Workers: workers, Source: "/metrics"}
}

// WriteText writes the report for a terminal: findings first, then the
// groups they refer to, then every saved file.
func (r *Report) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "wardgate diag triage %s", r.Target)
	if r.PID > 0 {
		fmt.Fprintf(&b, " (pid %d)", r.PID)
	}
	fmt.Fprintf(&b, ": %d goroutines, %.1fs\n\n", r.Goroutines, r.Seconds)
	res := findings.Result{Findings: r.Findings, Idle: r.Idle, Notes: r.Notes}
	if err := res.WriteText(&b, false); err != nil {
		return err
	}
	fmt.Fprintf(&b, "Application code: %s\n\n", strings.Join(r.App, ", "))
	profile.WriteDumpGroups(&b, r.Groups, 8)
	fmt.Fprintf(&b, "\nSaved in %s:\n", r.Bundle)
	arts := append([]Artifact(nil), r.Artifacts...)
	sort.SliceStable(arts, func(i, j int) bool { return arts[i].Path < arts[j].Path })
	for _, a := range arts {
		fmt.Fprintf(&b, "  %s  %s\n", a.Path, a.What)
	}
	fmt.Fprintf(&b, "Next: wardgate diag profile web --http 127.0.0.1:0 %s  (flame graph), wardgate diag profile diff %s %s\n",
		filepath.Join(r.Bundle, "cpu.pb.gz"), filepath.Join(r.Bundle, "heap-1.pb.gz"), filepath.Join(r.Bundle, "heap-2.pb.gz"))
	_, err := w.Write(b.Bytes())
	return err
}
