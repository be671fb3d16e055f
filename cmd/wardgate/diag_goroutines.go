package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/wardgate/wardgate/diag/findings"
	"github.com/wardgate/wardgate/diag/profile"
	"github.com/wardgate/wardgate/diag/triage"
)

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
