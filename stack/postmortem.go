package stack

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/wardgate/wardgate/diag/analyze"
	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/supervisor"
)

// postmortemHooks connects the supervisor's post-mortems to the diag
// packages: analyze writes report.md and report.json next to the core (the
// same report as `wardgate diag analyze`), capture takes a live core of a
// child stuck in its crash path before the watchdog kills it.
type postmortemHooks struct {
	log *slog.Logger
	// exe is the wardgate binary that runs `diag capture`.
	exe string
	// traceURL is TRACE_URL_TEMPLATE, e.g. http://localhost:16686/trace/{trace_id}.
	traceURL string
}

func newPostmortemHooks(log *slog.Logger, exe string) postmortemHooks {
	return postmortemHooks{log: log, exe: exe, traceURL: os.Getenv("TRACE_URL_TEMPLATE")}
}

// analyze writes the report and returns its headline and path: the
// supervisor logs them in the one line up prints per crash.
func (h postmortemHooks) analyze(ctx context.Context, pm supervisor.Postmortem) (supervisor.Analysis, error) {
	rep, err := analyze.Run(ctx, analyze.Options{
		Core:             pm.Core,
		Exe:              pm.Exe,
		CrashOutput:      pm.CrashOutput,
		TraceURLTemplate: h.traceURL,
	})
	if err != nil {
		return supervisor.Analysis{}, fmt.Errorf("analyze %s: %w", pm.Dir, err)
	}
	var md, js bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		return supervisor.Analysis{}, err
	}
	if err := rep.WriteJSON(&js); err != nil {
		return supervisor.Analysis{}, err
	}
	for name, b := range map[string][]byte{bundle.ReportFile: md.Bytes(), bundle.ReportJSONFile: js.Bytes()} {
		if err := writeFileAtomic(filepath.Join(pm.Dir, name), b); err != nil {
			return supervisor.Analysis{}, err
		}
	}
	return supervisor.Analysis{Headline: reportHeadline(rep), Report: filepath.Join(pm.Dir, bundle.ReportFile)}, nil
}

// reportHeadline is the one line of a report worth printing on up's
// terminal: the first finding (what is wrong and where), else why the
// process stopped.
func reportHeadline(rep *analyze.Report) string {
	if len(rep.Findings) > 0 && rep.Findings[0].Headline != "" {
		return rep.Findings[0].Headline
	}
	return rep.Stop.Summary
}

// capture writes a native (low-pause) capture bundle of pid into dir: core,
// exe, bundle.json, maps, status, environ. It runs `wardgate diag capture`
// as a separate process rather than calling diag/capture here: up is the
// child's parent, and the wait it keeps on the child would reap the ptrace
// stops an in-process tracer waits for.
func (h postmortemHooks) capture(ctx context.Context, pid int, dir string) error {
	out, err := exec.CommandContext(ctx, h.exe, "diag", "capture", "--pid", strconv.Itoa(pid),
		"--out", dir, "--method", "native", "--quiet").CombinedOutput()
	if err != nil {
		return fmt.Errorf("capture pid %d: %w: %s", pid, err, bytes.TrimSpace(out))
	}
	return nil
}

// writeFileAtomic writes via a temp file and rename, so a reader never sees
// half a report.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}
