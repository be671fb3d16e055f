package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	gpprof "github.com/google/pprof/profile"

	"github.com/wardgate/wardgate/diag/findings"
	"github.com/wardgate/wardgate/diag/profile"
	"github.com/wardgate/wardgate/diag/triage"
	"github.com/wardgate/wardgate/diag/watch"
)

// labelFlags collects repeated --label k=v.
type labelFlags []profile.Label

func (l *labelFlags) String() string {
	var s []string
	for _, x := range *l {
		s = append(s, x.Key+"="+x.Value)
	}
	return strings.Join(s, ",")
}

func (l *labelFlags) Set(v string) error {
	x, err := profile.ParseLabel(v)
	if err != nil {
		return err
	}
	*l = append(*l, x)
	return nil
}

// parseInterleaved parses flags that may come before, between or after
// positional arguments (`profile diff BASE NEW --top 5`), which the flag
// package alone stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func usageFunc(fs *flag.FlagSet, head, runbook string) func() {
	return func() {
		fmt.Fprint(fs.Output(), head)
		fmt.Fprint(fs.Output(), "\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nRunbook: %s\n", runbook)
	}
}

func tokenDefault() string { return os.Getenv("ADMIN_TOKEN") }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// runDiagProfile is `wardgate diag profile` (capture + top) and
// `wardgate diag profile diff BASE NEW`.
func runDiagProfile(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "diff" {
		return runDiagProfileDiff(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "web" {
		return runDiagProfileWeb(ctx, args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("wardgate diag profile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "admin URL of the process, e.g. http://127.0.0.1:6060 (required)")
	typ := fs.String("type", "", "cpu, heap, allocs, goroutine, mutex or block (required)")
	seconds := fs.Int("seconds", 30, "CPU profile duration in seconds (cpu only)")
	out := fs.String("out", "", "file for the raw profile (default ./<type>-<host_port>-<UTC time>.pb.gz)")
	httpAddr := fs.String("http", "", "then serve pprof's web UI (flame graph, source) of the saved profile on `ADDR` (e.g. 127.0.0.1:0) until Ctrl-C;\nwith FILE arguments instead of --target, of those files (wardgate diag profile web --help)")
	var labels labelFlags
	fs.Var(&labels, "label", "keep only samples with this pprof label, key=value (repeatable, all must match), e.g. trace_id=4bf9...;\nthe saved file stays unfiltered")
	top := fs.Int("top", 20, "number of functions to print (0: all)")
	sampleType := fs.String("sample-type", "", "sample type to rank by (default: cpu, inuse_space, alloc_space, goroutine or delay by --type)")
	tokens := addAdminTokenFlags(fs)
	asJSON := fs.Bool("json", false, "print the findings and the top as JSON")
	var app stringList
	fs.Var(&app, "app", appFlagHelp)
	fs.Usage = usageFunc(fs, `Usage: wardgate diag profile --target ADMIN_URL --type TYPE [--seconds N] [--out FILE] [--label k=v]... [--top N]
       wardgate diag profile diff BASE NEW [--top N] [--cum]

Fetches /debug/pprof/<type> from a process's admin listener, saves the raw
.pb.gz (open it later with: go tool pprof FILE) and prints Findings (cpu: the
hottest application function; goroutine: leaks, stuck locks), then the top
functions like go tool pprof -top: flat (spent in the function itself), cum
(in it and its callees), each as a share of the total.

Types and what is ranked:
  cpu        CPU time over --seconds (samples the process for that long)
  heap       in-use bytes, right after a GC (gc=1): what is retained
  allocs     bytes allocated since the process started
  goroutine  goroutine count per stack (proto form, keeps trace_id labels)
  mutex      contended lock wait time (needs runtime.SetMutexProfileFraction)
  block      blocking wait time (needs runtime.SetBlockProfileRate)
`, "docs/runbooks/profile.md")
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return code
	}
	if *httpAddr != "" && !validHTTPAddr(*httpAddr) { // before a capture that may take --seconds
		fmt.Fprintf(stderr, "wardgate diag profile: --http: want host:port (e.g. 127.0.0.1:0), got %q\n", *httpAddr)
		return 2
	}
	if fs.NArg() > 0 && *httpAddr != "" && *target == "" {
		return serveProfileUI(ctx, "wardgate diag profile", *httpAddr, fs.Args(), stdout, stderr)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wardgate diag profile: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *target == "" {
		fmt.Fprintln(stderr, "wardgate diag profile: --target is required (the admin URL, e.g. http://127.0.0.1:6060)")
		return 2
	}
	if *typ == "" {
		fmt.Fprintln(stderr, "wardgate diag profile: --type is required: cpu, heap, allocs, goroutine, mutex or block")
		return 2
	}
	pt, err := profile.ParseType(*typ)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile: --type: %v\n", err)
		return 2
	}
	if *seconds <= 0 {
		fmt.Fprintln(stderr, "wardgate diag profile: --seconds must be positive")
		return 2
	}
	base, err := profile.NormalizeTarget(*target)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile: --target: %v\n", err)
		return 2
	}

	token, err := tokens.resolve(*target, "")
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile: %v\n", err)
		return 2
	}
	client := &http.Client{Timeout: time.Duration(*seconds)*time.Second + time.Minute}
	p, raw, err := profile.Fetch(ctx, *target, pt, profile.FetchOptions{Client: client, Token: token, Seconds: *seconds})
	if code, ok := reportInterrupted(ctx, "wardgate diag profile", stderr); ok {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile: %v\n", err)
		return 1
	}
	path := *out
	if path == "" {
		host := strings.NewReplacer(":", "_", "[", "", "]", "").Replace(base.Host)
		path = fmt.Sprintf("%s-%s-%s.pb.gz", pt, host, time.Now().UTC().Format("20060102T150405Z"))
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile: save: %v\n", err)
		return 1
	}
	if !profile.FilterLabels(p, labels) && len(labels) > 0 {
		fmt.Fprintf(stderr, "wardgate diag profile: no sample has label(s) %s (saved %s unfiltered)\n", labels.String(), path)
	}
	st := *sampleType
	if st == "" {
		st = pt.DefaultSampleType()
	}
	rep, err := profile.Top(p, st, *top)
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile: %v\n", err)
		return 1
	}
	res := profileFindings(findings.NewClassifier(triage.MainModule(*target, p), app), pt, p)
	if *asJSON {
		if err := writeJSON(stdout, map[string]any{"file": path, "type": pt, "labels": labels.String(), "findings": nonNil(res.Findings), "notes": res.Notes, "top": rep}); err != nil {
			fmt.Fprintf(stderr, "wardgate diag profile: %v\n", err)
			return 1
		}
		// The URL goes to stderr: stdout stays one JSON document.
		return serveSavedProfile(ctx, *httpAddr, path, stderr, stderr)
	}
	if err := res.WriteText(stdout, false); err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "Saved %s (%d bytes). Flame graph: wardgate diag profile web --http 127.0.0.1:0 %s\n", path, len(raw), path)
	if len(labels) > 0 {
		fmt.Fprintf(stdout, "Only samples labeled %s\n", labels.String())
	}
	if err := rep.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile: %v\n", err)
		return 1
	}
	return serveSavedProfile(ctx, *httpAddr, path, stdout, stderr)
}

// profileFindings judges one profile by its type (see findings).
func profileFindings(cls *findings.Classifier, pt profile.Type, p *gpprof.Profile) findings.Result {
	switch pt {
	case profile.CPU:
		return findings.CPU(cls, p)
	case profile.Goroutine:
		s := findings.ProfileSnapshot(p)
		res := findings.Goroutines(cls, s, findings.GoroutineOptions{TraceURL: os.Getenv("TRACE_URL_TEMPLATE")})
		for i := range res.Findings {
			res.Findings[i].Ref = "" // the top below lists functions, not groups
		}
		return res
	case profile.Heap:
		res := findings.HeapRetained(cls, p)
		res.Notes = append(res.Notes, "one heap profile shows what is retained, not what grows: take a second one later and run 'wardgate diag profile diff FIRST SECOND', or 'wardgate diag triage'")
		return res
	}
	return findings.Result{}
}

func hasSampleType(p *gpprof.Profile, t string) bool {
	for _, st := range p.SampleType {
		if st.Type == t {
			return true
		}
	}
	return false
}

func nonNil(fs []findings.Finding) []findings.Finding {
	if fs == nil {
		return []findings.Finding{}
	}
	return fs
}

func readProfileFile(path string) (*gpprof.Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not a pprof profile: %w", path, err)
	}
	return p, nil
}

func runDiagProfileDiff(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate diag profile diff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	top := fs.Int("top", 20, "functions to list in each of grew and shrank (0: all)")
	cum := fs.Bool("cum", false, "rank by cumulative delta (names the caller: best for goroutine leaks) instead of flat delta")
	sampleType := fs.String("sample-type", "", "sample type to compare (default: the profiles' default, e.g. cpu or inuse_space)")
	asJSON := fs.Bool("json", false, "print the findings and the diff as JSON")
	var app stringList
	fs.Var(&app, "app", appFlagHelp)
	fs.Usage = usageFunc(fs, `Usage: wardgate diag profile diff BASE NEW [--top N] [--cum] [--sample-type T] [--app PREFIX]...

Compares two saved profiles of the same type the way go tool pprof
-diff_base does: BASE is scaled by -1 and merged with NEW, so what did not
change cancels out. Prints Findings first (goroutine profiles: the
application location that gained goroutines, a leak; heap profiles: the
application allocation site whose in-use bytes grew, with bytes and rate;
CPU profiles: the hottest application function in NEW), then the totals,
then what grew and what shrank, ranked by absolute delta.
`, "docs/runbooks/profile.md")
	var pos []string
	if code, ok := parseFlags(fs, stdout, stderr, func() (err error) { pos, err = parseInterleaved(fs, args); return err }); !ok {
		return code
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "wardgate diag profile diff: want exactly two files: BASE NEW")
		return 2
	}
	base, err := readProfileFile(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile diff: %v\n", err)
		return 1
	}
	newP, err := readProfileFile(pos[1])
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile diff: %v\n", err)
		return 1
	}
	d, err := profile.Diff(base, newP, profile.DiffOptions{SampleType: *sampleType, N: *top, Cum: *cum})
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile diff: %v\n", err)
		return 1
	}
	cls := findings.NewClassifier(triage.MainModule("", newP), app)
	var res findings.Result
	switch {
	case hasSampleType(newP, "goroutine"):
		res = findings.GoroutineGrowth(cls, base, newP)
	case hasSampleType(newP, "inuse_space"):
		res = findings.HeapGrowth(cls, base, newP)
	case hasSampleType(newP, "cpu"):
		res = findings.CPU(cls, newP)
	}
	if *asJSON {
		err = writeJSON(stdout, struct {
			Findings []findings.Finding `json:"findings"`
			Notes    []string           `json:"notes,omitempty"`
			*profile.DiffReport
		}{nonNil(res.Findings), res.Notes, d})
	} else if err = res.WriteText(stdout, false); err == nil {
		err = d.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag profile diff: %v\n", err)
		return 1
	}
	return 0
}

// runDiagGoroutines is `wardgate diag goroutines`.
func runDiagGoroutines(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate diag goroutines", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "admin URL of the process, e.g. http://127.0.0.1:6060 (required)")
	var labels labelFlags
	fs.Var(&labels, "label", "keep only goroutines with this pprof label, key=value (repeatable), e.g. trace_id=4bf9...")
	tokens := addAdminTokenFlags(fs)
	asJSON := fs.Bool("json", false, "print the findings and groups as JSON")
	var app stringList
	fs.Var(&app, "app", appFlagHelp)
	fs.Usage = usageFunc(fs, `Usage: wardgate diag goroutines --target ADMIN_URL [--label k=v]... [--json] [--app PREFIX]...

Reads the live goroutines twice over: the text dump (debug=2: state, wait
reason, wait time from one minute on, goroutine IDs, creator) and the proto
profile (pprof labels: trace_id, span_id, http_route). Prints Findings first
(deadlock, stuck lock, leak, hung I/O, each naming the application function
and file:line), then the groups of identical stacks: those the findings name
first, then by size, the idle-by-design ones (accept loops, idle workers,
signal handlers, exporters, the runtime) last.
For trends (a leak growing, a goroutine stuck across samples, CPU, heap
growth) use 'wardgate diag triage'.

Exit codes: 0 goroutines listed, 1 error or no goroutine has the --label(s),
2 bad usage.
`, "docs/runbooks/goroutines.md")
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "wardgate diag goroutines: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *target == "" {
		fmt.Fprintln(stderr, "wardgate diag goroutines: --target is required (the admin URL, e.g. http://127.0.0.1:6060)")
		return 2
	}
	if _, err := profile.NormalizeTarget(*target); err != nil {
		fmt.Fprintf(stderr, "wardgate diag goroutines: --target: %v\n", err)
		return 2
	}
	token, err := tokens.resolve(*target, "")
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag goroutines: %v\n", err)
		return 2
	}
	client := &http.Client{Timeout: time.Minute}
	fo := profile.FetchOptions{Client: client, Token: token}
	p, _, err := profile.Fetch(ctx, *target, profile.Goroutine, fo)
	if code, ok := reportInterrupted(ctx, "wardgate diag goroutines", stderr); ok {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag goroutines: %v\n", err)
		return 1
	}
	rep := &profile.GoroutinesReport{}
	var snap *findings.Snapshot
	dump, err := profile.FetchDump(ctx, *target, fo)
	if err == nil {
		snap, err = profile.ParseDump(dump, p, time.Now())
	}
	if err != nil {
		// Still useful without states: group the profile itself.
		rep.Notes = append(rep.Notes, fmt.Sprintf("no goroutine dump (%v): states and wait times unknown", err))
		snap = findings.ProfileSnapshot(p)
	}
	if len(labels) > 0 {
		if !profile.FilterLabels(p, labels) {
			// Like grep: an empty answer to a filter is a failure a script
			// can test, not a blank report with exit 0.
			fmt.Fprintf(stderr, "wardgate diag goroutines: no goroutine has label(s) %s\n", labels.String())
			return 1
		}
		profile.RestrictToProfile(snap, p)
	}
	cls := findings.NewClassifier(triage.MainModule(*target, p), app)
	profile.PrepareRefs(snap)
	gopts := findings.GoroutineOptions{TraceURL: os.Getenv("TRACE_URL_TEMPLATE"), Source: findings.LocalSource()}
	if len(labels) == 0 {
		// A job queue's depth and workers, for a stuck queue (best effort).
		if base, err := profile.NormalizeTarget(*target); err == nil {
			if body, err := profile.Get(ctx, client, base.String()+"/metrics", token); err == nil {
				gopts.Queue = triage.QueueFromMetrics(body)
			}
		}
	}
	res := findings.Goroutines(cls, snap, gopts)
	rep.Total, rep.App = snap.Total, cls.App()
	rep.Groups = profile.OrderGroups(cls, snap, res.Findings, 0)
	rep.Findings, rep.Idle = res.Findings, res.Idle
	rep.Notes = append(rep.Notes, res.Notes...)
	if rep.Findings == nil {
		rep.Findings = []findings.Finding{}
	}
	if *asJSON {
		err = writeJSON(stdout, rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wardgate diag goroutines: %v\n", err)
		return 1
	}
	return 0
}

// Exit code of `diag watch --once` when a threshold was crossed, so
// scripts can tell "captured" from "fine" (0) and "failed" (1).
const exitTriggered = 3

// runDiagWatch is `wardgate diag watch`.
func runDiagWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wardgate diag watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "admin URL of the process, e.g. http://127.0.0.1:6060 (required)")
	goroutines := fs.Int64("goroutines", 0, "capture when the goroutine count exceeds N (0: off)")
	heapMB := fs.Float64("heap-mb", 0, "capture when the in-use heap exceeds M MiB (0: off)")
	cpuPct := fs.Float64("cpu-pct", 0, "capture when CPU use over the last interval exceeds P percent, 100 = one core (0: off)")
	interval := fs.Duration("interval", 5*time.Second, "time between checks (one GET of /metrics each)")
	cooldown := fs.Duration("cooldown", 5*time.Minute, "after a capture, no new capture for the same reason for this long")
	out := fs.String("out", "wardgate-watch", "directory for the bundles (<UTC time>-<reason>/ each)")
	cpuSeconds := fs.Int("cpu-seconds", 10, "length of the CPU profile taken on a CPU trigger")
	core := fs.Bool("core", false, "also capture a core of --pid (or --pid-file) into the bundle (wardgate diag capture, method auto)")
	pid := fs.Int("pid", 0, "pid of the target process, for --core")
	pidFile := fs.String("pid-file", "", "for --core: read the target's pid from `FILE` at each capture instead of --pid, so the core follows restarts\n(under wardgate up: DATA/run/<service>/pid)")
	maxCaptures := fs.Int("max-captures", 0, "stop after K bundles (0: no limit)")
	once := fs.Bool("once", false, "check once and exit: 0 nothing crossed, 3 a bundle was captured, 1 error")
	tokens := addAdminTokenFlags(fs)
	logLevel := fs.String("log-level", "info", "debug (one JSON line per check), info (per trigger), warn or error; logs go to stderr")
	var app stringList
	fs.Var(&app, "app", appFlagHelp)
	fs.Usage = usageFunc(fs, `Usage: wardgate diag watch --target ADMIN_URL [--goroutines N] [--heap-mb M] [--cpu-pct P]
                          [--interval 5s] [--cooldown 5m] [--out DIR]
                          [--core --pid PID | --core --pid-file FILE]
                          [--max-captures K] [--once]

Polls the process's /metrics every --interval. When a threshold is crossed
it writes OUT/<UTC time>-<reason>/ with findings.txt (the verdict: what is
wrong and in which application function; read it first), trigger.json
(reason, value, threshold, time, findings) and the profiles that explain it:
  goroutines  goroutine.pb.gz + goroutines.txt (debug=2: states, wait times)
  heap        heap.pb.gz + allocs.pb.gz
  cpu         cpu.pb.gz (--cpu-seconds long) + goroutine.pb.gz + goroutines.txt
  --core      core/ (a diag capture bundle: core, exe, bundle.json)
and then ignores that reason for --cooldown. Runs until interrupted.

Exit codes: 0 ok (with --once: nothing crossed), 1 error, 2 bad usage,
3 with --once: a threshold was crossed and a bundle written.
`, "docs/runbooks/watch.md")
	if code, ok := parseFlags(fs, stdout, stderr, func() error { return fs.Parse(args) }); !ok {
		return code
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "wardgate diag watch: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if *target == "" {
		return fail("--target is required (the admin URL, e.g. http://127.0.0.1:6060)")
	}
	if _, err := profile.NormalizeTarget(*target); err != nil {
		return fail("--target: %v", err)
	}
	if *goroutines == 0 && *heapMB == 0 && *cpuPct == 0 {
		return fail("set at least one threshold: --goroutines, --heap-mb or --cpu-pct")
	}
	if *goroutines < 0 || *heapMB < 0 || *cpuPct < 0 {
		return fail("thresholds must not be negative")
	}
	if *interval <= 0 || *cooldown < 0 || *cpuSeconds <= 0 || *maxCaptures < 0 {
		return fail("--interval and --cpu-seconds must be positive, --cooldown and --max-captures not negative")
	}
	switch {
	case *pid != 0 && *pidFile != "":
		return fail("--pid and --pid-file are exclusive")
	case !*core && (*pid != 0 || *pidFile != ""):
		return fail("--pid and --pid-file are only used with --core")
	case *core && *pidFile != "":
		// Fail fast on a wrong path; later, a missing file (a restart in
		// progress) is recorded in the bundle's trigger.json.
		if _, err := watch.ReadPIDFile(*pidFile); err != nil {
			return fail("--pid-file: %v", err)
		}
	case *core && *pid <= 0:
		return fail("--core needs --pid or --pid-file (the target process's pid)")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fail("--log-level: %v", err)
	}
	token, err := tokens.resolve(*target, *pidFile)
	if err != nil {
		return fail("%v", err)
	}
	cfg := watch.Config{
		Target: *target, Token: token,
		Client:     &http.Client{Timeout: time.Duration(*cpuSeconds)*time.Second + time.Minute},
		Goroutines: *goroutines, HeapBytes: int64(*heapMB * (1 << 20)), CPUPercent: *cpuPct,
		Interval: *interval, Cooldown: *cooldown, OutDir: *out,
		MaxCaptures: *maxCaptures, CPUProfileSeconds: *cpuSeconds, App: app,
		Logger: slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})),
	}
	if *core {
		cfg.CorePID, cfg.CorePIDFile = *pid, *pidFile
	}
	w, err := watch.New(cfg)
	if err != nil {
		return fail("%v", err)
	}
	if *once {
		fired, err := w.Once(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "wardgate diag watch: %v\n", err)
			return 1
		}
		for _, tr := range fired {
			fmt.Fprintf(stdout, "%s: %g > %g %s: %s\n", tr.Reason, tr.Value, tr.Threshold, tr.Unit, tr.Dir)
			res := findings.Result{Findings: tr.Findings}
			fmt.Fprintf(stdout, "  %s (%s)\n", res.First(), filepath.Join(tr.Dir, watch.FindingsFile))
		}
		if len(fired) > 0 {
			return exitTriggered
		}
		if s := w.Last(); s != nil {
			fmt.Fprintf(stdout, "ok: goroutines=%d heap_inuse=%.1fMiB", s.Goroutines, float64(s.HeapInuse)/(1<<20))
			if !math.IsNaN(s.CPUPercent) {
				fmt.Fprintf(stdout, " cpu=%.1f%%", s.CPUPercent)
			}
			fmt.Fprintln(stdout, ": no threshold crossed")
		}
		return 0
	}
	// Fail fast on a wrong URL or token instead of logging it forever.
	if _, err := w.Poll(ctx); err != nil {
		fmt.Fprintf(stderr, "wardgate diag watch: %v\n", err)
		return 1
	}
	if err := w.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "wardgate diag watch: %v\n", err)
		return 1
	}
	return 0
}
