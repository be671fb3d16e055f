// Package watch polls a live process's admin listener and, when a
// threshold is crossed (goroutine count, in-use heap, CPU), captures the
// profiles that explain it (and optionally a core) into a bundle
// directory, then stays quiet for a cooldown, in the spirit of
// mosn/holmes but from outside the process.
//
// Polling is cheap: one GET of /metrics (Prometheus text, parsed with
// prometheus/common/expfmt) per interval. When a metric is missing, the
// goroutine count and heap fall back to the debug=1 pprof pages.
package watch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	gpprof "github.com/google/pprof/profile"

	"github.com/wardgate/wardgate/diag/capture"
	"github.com/wardgate/wardgate/diag/findings"
	"github.com/wardgate/wardgate/diag/profile"
	"github.com/wardgate/wardgate/diag/triage"
)

// Reasons a capture is triggered; they name the bundle directory.
const (
	ReasonGoroutines = "goroutines"
	ReasonHeap       = "heap"
	ReasonCPU        = "cpu"
)

// TriggerFile is the JSON file in every bundle that says why it was taken.
const TriggerFile = "trigger.json"

// Config says what to watch and where captures go. Zero thresholds are
// off; at least one must be set.
type Config struct {
	// Target is the admin URL (http://127.0.0.1:PORT).
	Target string
	// Token is the admin bearer token, if the listener wants one.
	Token string
	// Client performs every request; required.
	Client *http.Client

	Goroutines int64   // trigger when go_goroutines > Goroutines
	HeapBytes  int64   // trigger when in-use heap bytes > HeapBytes
	CPUPercent float64 // trigger when CPU use over the last interval > CPUPercent (100 = one core)

	Interval time.Duration // between checks; default 5s
	Cooldown time.Duration // per reason, after a capture; default 5m
	OutDir   string        // bundles go to OutDir/<UTC time>-<reason>/; required
	// MaxCaptures stops Run after that many bundles; 0 is unlimited.
	MaxCaptures int
	// CPUProfileSeconds is the length of the CPU profile taken on a CPU
	// trigger; default 10.
	CPUProfileSeconds int

	// CorePID, when > 0, also captures a core of that process (it should
	// be the target's pid) into <bundle>/core/ with diag/capture.
	CorePID int
	// CorePIDFile, when set instead of CorePID, names a pid file read at
	// each capture (wardgate up keeps DATA/run/<service>/pid current), so
	// the core is of the process running now, also after a restart.
	CorePIDFile string
	CoreMethod  string // auto, native or gcore; "" = auto
	// App are the application's import-path prefixes for the findings
	// (--app); empty means the target's main module.
	App []string

	// Logger gets one debug line per check and one info line per
	// trigger; nil discards.
	Logger *slog.Logger

	// OnCapture, if set, is called by Run with each bundle written (a
	// trigger whose Dir is complete): `diag watch --upload` sends it to a
	// blob store there. Run waits for it before the next check.
	OnCapture func(context.Context, Trigger)
}

// Sample is one poll of the target.
type Sample struct {
	Time       time.Time `json:"time"`
	Goroutines int64     `json:"goroutines"`
	HeapInuse  int64     `json:"heap_inuse_bytes"`
	CPUSeconds float64   `json:"cpu_seconds_total"`
	// CPUPercent is the CPU use since the previous sample (100 = one
	// core), NaN when unknown (first sample); not in JSON for that reason.
	CPUPercent float64 `json:"-"`
	hasCPU     bool
}

// Trigger is one threshold crossing and what was captured for it.
type Trigger struct {
	Reason    string    `json:"reason"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	Unit      string    `json:"unit"`
	Time      time.Time `json:"time"`
	Target    string    `json:"target"`
	Dir       string    `json:"dir"`
	// Files are the files written into Dir, relative to it.
	Files []string `json:"files"`
	// Errors lists captures that failed; the bundle keeps what worked.
	Errors []string `json:"errors,omitempty"`
	// Findings judge what was captured (also in findings.txt, the file
	// to read first).
	Findings []findings.Finding `json:"findings"`
}

// FindingsFile is the human-readable verdict in every bundle.
const FindingsFile = "findings.txt"

// Watcher polls one target. It is not safe for concurrent use.
type Watcher struct {
	cfg      Config
	log      *slog.Logger
	prev     *Sample
	lastFire map[string]time.Time
	captures int
}

// New validates cfg and fills defaults.
func New(cfg Config) (*Watcher, error) {
	if cfg.Client == nil {
		return nil, errors.New("watch: Config.Client is nil")
	}
	if _, err := profile.NormalizeTarget(cfg.Target); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	if cfg.Goroutines < 0 || cfg.HeapBytes < 0 || cfg.CPUPercent < 0 {
		return nil, errors.New("watch: thresholds must not be negative")
	}
	if cfg.Goroutines == 0 && cfg.HeapBytes == 0 && cfg.CPUPercent == 0 {
		return nil, errors.New("watch: no threshold set (use --goroutines, --heap-mb or --cpu-pct)")
	}
	if cfg.OutDir == "" {
		return nil, errors.New("watch: no output directory")
	}
	if cfg.CorePID != 0 && cfg.CorePIDFile != "" {
		return nil, errors.New("watch: CorePID and CorePIDFile are exclusive")
	}
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Interval < 0 || cfg.Cooldown < 0 || cfg.MaxCaptures < 0 {
		return nil, errors.New("watch: interval, cooldown and max captures must not be negative")
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = 5 * time.Minute
	}
	if cfg.CPUProfileSeconds <= 0 {
		cfg.CPUProfileSeconds = 10
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{cfg: cfg, log: log, lastFire: map[string]time.Time{}}, nil
}

// Last is the most recent sample, nil before the first poll of a check.
func (w *Watcher) Last() *Sample { return w.prev }

// Captures is how many bundles this watcher has written.
func (w *Watcher) Captures() int { return w.captures }

// Run checks every Interval until ctx is cancelled (returns nil) or
// MaxCaptures bundles were written. A failed check (target restarting,
// say) is logged and the watch goes on.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		fired, err := w.Check(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.Warn("watch check failed", "target", w.cfg.Target, "err", err.Error())
		}
		if w.cfg.OnCapture != nil {
			for _, tr := range fired {
				w.cfg.OnCapture(ctx, tr)
			}
		}
		if w.cfg.MaxCaptures > 0 && w.captures >= w.cfg.MaxCaptures {
			w.log.Info("watch stopping: max captures reached", "captures", w.captures)
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once performs a single check for scripts. When a CPU threshold is set it
// first takes a priming sample and waits one Interval, since CPU use is a
// rate between two samples.
func (w *Watcher) Once(ctx context.Context) ([]Trigger, error) {
	if w.cfg.CPUPercent > 0 && w.prev == nil {
		s, err := w.Poll(ctx)
		if err != nil {
			return nil, err
		}
		w.prev = s
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(w.cfg.Interval):
		}
	}
	return w.Check(ctx)
}

// Check polls the target once, and for every threshold crossed whose
// cooldown has passed writes a bundle. It returns the triggers fired.
func (w *Watcher) Check(ctx context.Context) ([]Trigger, error) {
	s, err := w.Poll(ctx)
	if err != nil {
		return nil, err
	}
	if w.prev != nil && w.prev.hasCPU && s.hasCPU {
		if dt := s.Time.Sub(w.prev.Time).Seconds(); dt > 0 {
			s.CPUPercent = 100 * (s.CPUSeconds - w.prev.CPUSeconds) / dt
		}
	}
	w.prev = s
	attrs := []any{"target", w.cfg.Target, "goroutines", s.Goroutines, "heap_inuse_bytes", s.HeapInuse}
	if !math.IsNaN(s.CPUPercent) {
		attrs = append(attrs, "cpu_pct", math.Round(s.CPUPercent*10)/10)
	}
	w.log.Debug("watch check", attrs...)

	type crossing struct {
		reason           string
		value, threshold float64
		unit             string
	}
	var crossed []crossing
	if w.cfg.Goroutines > 0 && s.Goroutines > w.cfg.Goroutines {
		crossed = append(crossed, crossing{ReasonGoroutines, float64(s.Goroutines), float64(w.cfg.Goroutines), "goroutines"})
	}
	if w.cfg.HeapBytes > 0 && s.HeapInuse > w.cfg.HeapBytes {
		crossed = append(crossed, crossing{ReasonHeap, float64(s.HeapInuse), float64(w.cfg.HeapBytes), "bytes"})
	}
	if w.cfg.CPUPercent > 0 && !math.IsNaN(s.CPUPercent) && s.CPUPercent > w.cfg.CPUPercent {
		crossed = append(crossed, crossing{ReasonCPU, s.CPUPercent, w.cfg.CPUPercent, "percent"})
	}
	var fired []Trigger
	for _, c := range crossed {
		if last, ok := w.lastFire[c.reason]; ok && s.Time.Sub(last) < w.cfg.Cooldown {
			w.log.Debug("watch threshold crossed, in cooldown", "reason", c.reason, "value", c.value, "threshold", c.threshold,
				"cooldown_left", (w.cfg.Cooldown - s.Time.Sub(last)).String())
			continue
		}
		if w.cfg.MaxCaptures > 0 && w.captures >= w.cfg.MaxCaptures {
			break
		}
		w.lastFire[c.reason] = s.Time
		tr := Trigger{Reason: c.reason, Value: c.value, Threshold: c.threshold, Unit: c.unit, Time: s.Time.UTC(), Target: w.cfg.Target}
		if err := w.capture(ctx, &tr); err != nil {
			return fired, err
		}
		w.captures++
		attrs := []any{"target", w.cfg.Target, "reason", tr.Reason, "value", tr.Value, "threshold", tr.Threshold, "dir", tr.Dir, "files", tr.Files}
		if len(tr.Errors) > 0 {
			attrs = append(attrs, "errors", tr.Errors)
		}
		w.log.Info("watch trigger", attrs...)
		fired = append(fired, tr)
	}
	return fired, nil
}

// capture writes the bundle for tr. Only failing to create the bundle or
// trigger.json is an error; a failed profile is recorded in tr.Errors.
func (w *Watcher) capture(ctx context.Context, tr *Trigger) error {
	if err := os.MkdirAll(w.cfg.OutDir, 0o700); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	base := filepath.Join(w.cfg.OutDir, tr.Time.Format("20060102T150405Z")+"-"+tr.Reason)
	dir := base
	for i := 2; ; i++ {
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("watch: %w", err)
		}
		dir = fmt.Sprintf("%s-%d", base, i)
	}
	tr.Dir = dir

	var types []profile.Type
	switch tr.Reason {
	case ReasonGoroutines:
		types = []profile.Type{profile.Goroutine}
	case ReasonHeap:
		types = []profile.Type{profile.Heap, profile.Allocs}
	case ReasonCPU:
		types = []profile.Type{profile.CPU, profile.Goroutine}
	}
	got := map[profile.Type]*gpprof.Profile{}
	for _, typ := range types {
		p, raw, err := profile.Fetch(ctx, w.cfg.Target, typ, profile.FetchOptions{Client: w.cfg.Client, Token: w.cfg.Token, Seconds: w.cfg.CPUProfileSeconds})
		if err != nil {
			tr.Errors = append(tr.Errors, err.Error())
			continue
		}
		got[typ] = p
		name := string(typ) + ".pb.gz"
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o600); err != nil {
			tr.Errors = append(tr.Errors, err.Error())
			continue
		}
		tr.Files = append(tr.Files, name)
	}
	var dump []byte
	if tr.Reason == ReasonGoroutines || tr.Reason == ReasonCPU {
		// The debug=2 dump adds each goroutine's state and wait time,
		// which the proto form lacks.
		var err error
		if dump, err = w.saveText(ctx, dir, "/debug/pprof/goroutine?debug=2", "goroutines.txt"); err != nil {
			tr.Errors = append(tr.Errors, err.Error())
		} else {
			tr.Files = append(tr.Files, "goroutines.txt")
		}
	}
	w.judge(tr, dir, got, dump)
	if pid, err := w.corePID(); err != nil {
		tr.Errors = append(tr.Errors, fmt.Sprintf("core: %v", err))
	} else if pid > 0 {
		b, err := capture.Capture(ctx, capture.Options{PID: pid, OutDir: filepath.Join(dir, "core"), Method: w.cfg.CoreMethod, Logger: w.log})
		if err != nil {
			tr.Errors = append(tr.Errors, fmt.Sprintf("core: %v", err))
		} else {
			rel, _ := filepath.Rel(dir, b.Dir)
			tr.Files = append(tr.Files, rel+"/")
		}
	}
	js, err := json.MarshalIndent(tr, "", "  ")
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, TriggerFile), append(js, '\n'), 0o600); err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	return nil
}

func (w *Watcher) adminURL(path string) (string, error) {
	u, err := profile.NormalizeTarget(w.cfg.Target)
	if err != nil {
		return "", err
	}
	return u.String() + path, nil
}

func (w *Watcher) saveText(ctx context.Context, dir, path, name string) ([]byte, error) {
	u, err := w.adminURL(path)
	if err != nil {
		return nil, err
	}
	body, err := profile.Get(ctx, w.cfg.Client, u, w.cfg.Token)
	if err != nil {
		return nil, err
	}
	return body, os.WriteFile(filepath.Join(dir, name), body, 0o600)
}

// judge runs the findings over what the bundle holds and writes
// findings.txt, the file to read first.
func (w *Watcher) judge(tr *Trigger, dir string, got map[profile.Type]*gpprof.Profile, dump []byte) {
	var labels *gpprof.Profile
	for _, p := range got {
		labels = p // any profile records the executable's path
		break
	}
	if p := got[profile.Goroutine]; p != nil {
		labels = p
	}
	cls := findings.NewClassifier(triage.MainModule(w.cfg.Target, labels), w.cfg.App)
	var snap *findings.Snapshot
	if dump != nil {
		if s, err := profile.ParseDump(dump, got[profile.Goroutine], tr.Time); err == nil {
			snap = s
		}
	}
	if snap == nil && got[profile.Goroutine] != nil {
		snap = findings.ProfileSnapshot(got[profile.Goroutine])
	}
	var res findings.Result
	switch tr.Reason {
	case ReasonGoroutines:
		res.Merge(findings.Goroutines(cls, snap, findings.GoroutineOptions{Source: findings.LocalSource()}))
	case ReasonCPU:
		res.Merge(findings.CPU(cls, got[profile.CPU], snap))
		res.Merge(findings.Goroutines(cls, snap, findings.GoroutineOptions{Source: findings.LocalSource()}))
	case ReasonHeap:
		res.Merge(findings.HeapRetained(cls, got[profile.Heap]))
	}
	tr.Findings = res.Findings
	if tr.Findings == nil {
		tr.Findings = []findings.Finding{}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "wardgate diag watch: %s crossed (%g > %g %s) at %s on %s\n\n", tr.Reason, tr.Value, tr.Threshold, tr.Unit, tr.Time.Format(time.RFC3339), tr.Target)
	_ = res.WriteText(&b, false)
	fmt.Fprintf(&b, "Files: %s (trigger.json has this as JSON). Next: wardgate diag triage --target %s\n", strings.Join(tr.Files, ", "), tr.Target)
	if err := os.WriteFile(filepath.Join(dir, FindingsFile), b.Bytes(), 0o600); err != nil {
		tr.Errors = append(tr.Errors, err.Error())
		return
	}
	tr.Files = append([]string{FindingsFile}, tr.Files...)
}

// Poll reads the target's current goroutine count, in-use heap and CPU
// seconds. It does not evaluate thresholds.
func (w *Watcher) Poll(ctx context.Context) (*Sample, error) {
	s := &Sample{Time: time.Now(), CPUPercent: math.NaN(), Goroutines: -1, HeapInuse: -1}
	u, err := w.adminURL("/metrics")
	if err != nil {
		return nil, err
	}
	body, err := profile.Get(ctx, w.cfg.Client, u, w.cfg.Token)
	if err != nil && !errors.Is(err, profile.ErrNotFound) {
		return nil, fmt.Errorf("watch: poll: %w", err)
	}
	if err == nil {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, perr := p.TextToMetricFamilies(bytes.NewReader(body))
		if perr != nil {
			return nil, fmt.Errorf("watch: parse %s: %w", u, perr)
		}
		if v, ok := metricValue(fams, "go_goroutines"); ok {
			s.Goroutines = int64(v)
		}
		if v, ok := metricValue(fams, "go_memstats_heap_inuse_bytes"); ok {
			s.HeapInuse = int64(v)
		}
		if v, ok := metricValue(fams, "process_cpu_seconds_total"); ok {
			s.CPUSeconds, s.hasCPU = v, true
		}
	}
	if s.Goroutines < 0 && w.cfg.Goroutines > 0 {
		n, err := w.pprofHeader(ctx, "/debug/pprof/goroutine?debug=1", "goroutine profile: total ")
		if err != nil {
			return nil, fmt.Errorf("watch: poll goroutines: %w", err)
		}
		s.Goroutines = n
	}
	if s.HeapInuse < 0 && w.cfg.HeapBytes > 0 {
		n, err := w.pprofHeader(ctx, "/debug/pprof/heap?debug=1", "# HeapInuse = ")
		if err != nil {
			return nil, fmt.Errorf("watch: poll heap: %w", err)
		}
		s.HeapInuse = n
	}
	if !s.hasCPU && w.cfg.CPUPercent > 0 {
		return nil, fmt.Errorf("watch: %s has no process_cpu_seconds_total, cannot watch CPU", u)
	}
	return s, nil
}

func metricValue(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) == 0 {
		return 0, false
	}
	m := f.GetMetric()[0]
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue(), true
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue(), true
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// pprofHeader reads the integer after prefix on a line of a debug=1
// pprof page (the fallback when /metrics lacks a metric).
func (w *Watcher) pprofHeader(ctx context.Context, path, prefix string) (int64, error) {
	u, err := w.adminURL(path)
	if err != nil {
		return 0, err
	}
	body, err := profile.Get(ctx, w.cfg.Client, u, w.cfg.Token)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no line starting with %q", u, prefix)
}

// corePID is the process to capture a core of: CorePID, or the pid in
// CorePIDFile as it reads now; 0 for no core.
func (w *Watcher) corePID() (int, error) {
	if w.cfg.CorePIDFile == "" {
		return w.cfg.CorePID, nil
	}
	return ReadPIDFile(w.cfg.CorePIDFile)
}

// ReadPIDFile reads a pid file: a positive decimal pid, optionally followed
// by a newline. A missing file under wardgate up means the service is
// between a crash and its restart.
func ReadPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: want a positive pid, got %q", path, strings.TrimSpace(string(b)))
	}
	return pid, nil
}
