package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"time"

	"github.com/wardgate/wardgate/diag/findings"
	"github.com/wardgate/wardgate/diag/profile"
	"github.com/wardgate/wardgate/diag/watch"
)

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
	uploadFlag := fs.String("upload", "", uploadFlagHelp)
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

--upload (or WARDGATE_UPLOAD) also uploads every bundle to a blob store.

Exit codes: 0 ok (with --once: nothing crossed), 1 error, 2 bad usage,
3 with --once: a threshold was crossed and a bundle written, 4 a bundle
could not be uploaded (it stays on disk; the watch went on).
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
	dest, err := uploadDest(*uploadFlag)
	if err != nil {
		return fail("%v", err)
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
	uploadsFailed := 0
	if dest != "" {
		cfg.OnCapture = func(ctx context.Context, tr watch.Trigger) {
			if !uploadBundle(ctx, "wardgate diag watch", dest, tr.Dir, stderr) {
				uploadsFailed++
			}
		}
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
			if cfg.OnCapture != nil {
				cfg.OnCapture(ctx, tr)
			}
		}
		if uploadsFailed > 0 {
			return exitUploadFailed
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
	if uploadsFailed > 0 {
		return exitUploadFailed
	}
	return 0
}
