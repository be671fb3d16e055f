package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	gpprof "github.com/google/pprof/profile"

	"github.com/wardgate/wardgate/diag/findings"
	"github.com/wardgate/wardgate/diag/profile"
	"github.com/wardgate/wardgate/diag/triage"
)

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
