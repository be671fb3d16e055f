// Package supervisor runs and watches the child processes of `wardgate up`.
//
// Each child gets its own working directory (DATA/run/<service>/), logs
// captured to files there, a pid file there naming its current process
// (Status and StatusHandler say the same, with restarts and state, for
// operators and scripts), GOTRACEBACK=crash with RLIMIT_CORE raised so a
// crash leaves a core, and its crash output copied to a file the runtime
// writes even when stderr is gone (all from diag/crashenv). When a child
// dies the supervisor turns what it left into a post-mortem directory in
// the diag/bundle layout (core, copy of the executable, crash output,
// bundle.json, and the report an Analyze hook writes), then
// restarts it with exponential backoff. A watchdog notices a child stuck in
// its crash path (crash output started but the process does not exit),
// captures it through a Capture hook and kills it. Shutdown stops children
// in StopOrder groups, so the gateway stops accepting before the job queues
// drain.
//
// It is hand-written rather than built on a process-manager library because
// the parts that matter here (core pickup, crash-output watchdog, ordered
// drain) are specific to debugging Go services and small.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/wardgate/wardgate/diag/crashenv"
)

// Spec describes one supervised service.
type Spec struct {
	// Name names the service: its working dir is DATA/run/<Name>/ and it
	// appears in logs and post-mortem dir names. Letters, digits, '-', '_', '.'.
	Name string
	// Command builds a fresh, unstarted command for every start. The
	// supervisor sets Dir, Stdout, Stderr and SysProcAttr and adds the crash
	// environment to Env (os.Environ() when Env is nil).
	Command func() *exec.Cmd
	// ReadyLine, when set, is a prefix of the stdout line that means the
	// child is listening.
	ReadyLine string
	// HealthURL, when set, must answer 200 before the child counts as ready.
	HealthURL string
	// StopOrder groups children at Shutdown: lower groups are stopped (and
	// have exited) before higher ones get SIGTERM.
	StopOrder int
	// StopTimeout is how long a child may take to exit after SIGTERM before
	// it is SIGKILLed (default 30s; Shutdown's ctx may cut it shorter).
	StopTimeout time.Duration
	// PublicURL and MetricsURL are only reported (Status, /status): where
	// the service answers and where its metrics are. Optional.
	PublicURL  string
	MetricsURL string
}

// Watchdog configures the stuck-crash detector. Zero fields take defaults.
type Watchdog struct {
	Poll  time.Duration // how often the crash output is checked (1s)
	Stuck time.Duration // crash started this long ago and the process is still alive (30s)
	Idle  time.Duration // crash output has not grown for this long (10s)
}

func (w Watchdog) withDefaults() Watchdog {
	if w.Poll <= 0 {
		w.Poll = time.Second
	}
	if w.Stuck <= 0 {
		w.Stuck = 30 * time.Second
	}
	if w.Idle <= 0 {
		w.Idle = 10 * time.Second
	}
	return w
}

// Postmortem is what a dead (or watchdog-killed) child left, as handed to
// the Analyze hook. Paths are absolute; Core is "" when there is no core.
type Postmortem struct {
	Dir         string
	Service     string
	PID         int
	Core        string
	Exe         string
	CrashOutput string
	// LogTail is the file of the last lines the process logged (from its
	// log ring, buffered lines included), "" if it kept none; LogUnflushed
	// counts the bytes at its end that never reached stderr.log.
	LogTail      string
	LogUnflushed int64
}

// Analysis is what an Analyze hook found, for the one line the
// supervisor logs per post-mortem (the crash output itself stays in the
// post-mortem, not on the terminal).
type Analysis struct {
	// Headline is the report's one-line conclusion ("" to fall back on
	// the first line of the crash output).
	Headline string
	// Report is the path of the report to read ("" for none).
	Report string
}

// Options configures a Supervisor.
type Options struct {
	// DataDir holds run/<service>/ and postmortem/. Required.
	DataDir string
	// Logger receives the supervisor's own structured log (default: discard).
	Logger *slog.Logger
	// Forward, when set, receives every output line of every child,
	// prefixed with "<service> | ".
	Forward io.Writer
	// ForwardFilter, when set, picks which lines go to Forward (true =
	// forward). The per-child log files always get every line; a filter
	// keeps a busy access log from costing the supervisor a core.
	ForwardFilter func(line []byte) bool
	// Analyze writes report.md/report.json into pm.Dir and returns the
	// report's headline and path for the post-mortem's log line. Called
	// once per post-mortem that has a core, in the background; optional.
	Analyze func(ctx context.Context, pm Postmortem) (Analysis, error)
	// Capture writes a core of the live process pid into dir (as dir/core;
	// a bundle.json of its own is kept). Used by the watchdog before it
	// kills a stuck child; optional. It must trace the child from another
	// process (e.g. run `wardgate diag capture`): the supervisor is the
	// child's parent, and its own wait for the child would consume the
	// ptrace stops an in-process tracer waits for.
	Capture func(ctx context.Context, pid int, dir string) error
	// OnEvent observes lifecycle events; it is called synchronously from the
	// supervising goroutines and must not block for long. Optional.
	OnEvent  func(Event)
	Backoff  Backoff
	Watchdog Watchdog
	// KeepPostmortems bounds how many post-mortem dirs DATA/postmortem/
	// keeps: when a new one is made, the oldest beyond this many are
	// removed, so a crash loop cannot fill the disk (each holds a core and a
	// copy of the executable). 0 keeps them all.
	KeepPostmortems int
	// AnalyzeTimeout bounds one Analyze call (default 5m).
	AnalyzeTimeout time.Duration
	// MeterProvider receives the supervisor's metrics (see docs/metrics.md):
	// wardgate.child.restarts, wardgate.child.up, wardgate.postmortems,
	// wardgate.postmortem.analyze.duration, wardgate.watchdog.captures.
	// Nil records nothing.
	MeterProvider metric.MeterProvider
}

// EventKind says what happened to a child.
type EventKind string

// The lifecycle events a Supervisor reports.
const (
	EventStarted    EventKind = "started"    // process started (PID set)
	EventReady      EventKind = "ready"      // ready line seen and health URL answered
	EventExited     EventKind = "exited"     // process exited (Status set)
	EventRestarting EventKind = "restarting" // a restart is scheduled after Delay
	EventWatchdog   EventKind = "watchdog"   // stuck in its crash path: captured into Dir, killed
	EventPostmortem EventKind = "postmortem" // post-mortem complete in Dir (Err: analysis failure)
	EventStopping   EventKind = "stopping"   // SIGTERM sent at Shutdown
	EventKilled     EventKind = "killed"     // SIGKILL sent after StopTimeout
)

// Event is one lifecycle event of a child.
type Event struct {
	Kind    EventKind
	Service string
	PID     int
	Status  string        // exit status, for EventExited
	Delay   time.Duration // for EventRestarting
	Dir     string        // post-mortem dir, for EventWatchdog and EventPostmortem
	Err     error
}

// Supervisor runs children until Shutdown.
type Supervisor struct {
	opts    Options
	log     *slog.Logger
	forward *lockedWriter
	cores   crashenv.CorePattern
	http    *http.Client
	metrics instruments

	mu       sync.Mutex
	children map[string]*child
	order    []string
	closed   bool

	analyses sync.WaitGroup
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// New prepares a supervisor: it raises RLIMIT_CORE (inherited by every
// child) and reads core_pattern, warning when cores cannot be collected.
func New(opts Options) (*Supervisor, error) {
	if opts.DataDir == "" {
		return nil, errors.New("supervisor: DataDir is required")
	}
	abs, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("supervisor: data dir: %w", err)
	}
	opts.DataDir = abs
	opts.Backoff = opts.Backoff.withDefaults()
	opts.Watchdog = opts.Watchdog.withDefaults()
	if opts.AnalyzeTimeout <= 0 {
		opts.AnalyzeTimeout = 5 * time.Minute
	}
	s := &Supervisor{
		opts:     opts,
		log:      opts.Logger,
		http:     &http.Client{Timeout: 2 * time.Second},
		children: map[string]*child{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.metrics, err = newInstruments(opts.MeterProvider, s); err != nil {
		return nil, err
	}
	if opts.Forward != nil {
		s.forward = &lockedWriter{w: opts.Forward, filter: opts.ForwardFilter}
	}
	for _, d := range []string{filepath.Join(abs, "run"), filepath.Join(abs, "postmortem")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("supervisor: %w", err)
		}
	}
	lim, err := crashenv.RaiseCoreLimit()
	switch {
	case err != nil:
		s.log.Warn("cannot raise RLIMIT_CORE; children may not leave cores", "err", err)
	case lim.Cur == 0:
		s.log.Warn("RLIMIT_CORE hard limit is 0: children cannot leave cores; raise it (ulimit -Hc unlimited) or run wardgate diag crash-setup")
	}
	cp, err := crashenv.ReadCorePattern(crashenv.ProcSys)
	if err != nil {
		s.log.Warn("cannot read core_pattern; looking for cores named core/core.PID only", "err", err)
	} else if cp.Piped() {
		s.log.Warn("core_pattern pipes cores to a helper, so they will not appear in the child's working dir; post-mortems will lack a core (see wardgate diag crash-setup)", "core_pattern", cp.Pattern)
	}
	s.cores = cp
	return s, nil
}

func (s *Supervisor) emit(e Event) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(e)
	}
}

// Start starts the child described by spec and waits until it is ready
// (ReadyLine seen, HealthURL answering 200) or ctx ends. On success the child
// is supervised (restarted when it dies) until Shutdown; on failure it is
// killed and the error carries the tail of its stderr.
func (s *Supervisor) Start(ctx context.Context, spec Spec) error {
	if !validName.MatchString(spec.Name) {
		return fmt.Errorf("supervisor: invalid service name %q", spec.Name)
	}
	if spec.Command == nil {
		return fmt.Errorf("supervisor: %s: Command is required", spec.Name)
	}
	if spec.StopTimeout <= 0 {
		spec.StopTimeout = 30 * time.Second
	}
	dir := filepath.Join(s.opts.DataDir, "run", spec.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("supervisor: %s: %w", spec.Name, err)
	}
	c := &child{sup: s, spec: spec, dir: dir, done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("supervisor: shut down")
	}
	if _, dup := s.children[spec.Name]; dup {
		s.mu.Unlock()
		return fmt.Errorf("supervisor: service %q already started", spec.Name)
	}
	s.children[spec.Name] = c
	s.order = append(s.order, spec.Name)
	s.mu.Unlock()

	r, err := c.start(false)
	if err == nil {
		err = c.waitReady(ctx, r)
	}
	if err != nil {
		r.kill()
		c.mu.Lock()
		c.cur = nil
		c.removePIDFile()
		c.mu.Unlock()
		c.cancel()
		close(c.done)
		s.mu.Lock()
		delete(s.children, spec.Name)
		s.order = removeString(s.order, spec.Name)
		s.mu.Unlock()
		return fmt.Errorf("supervisor: %s did not become ready: %w%s", spec.Name, err, c.stderrTail())
	}
	s.metrics.known(spec.Name)
	go c.supervise(r)
	return nil
}

// Shutdown stops every child, group by group in ascending StopOrder: SIGTERM,
// wait up to the child's StopTimeout (or ctx), then SIGKILL. It then waits
// for running post-mortem analyses, bounded by ctx. It returns an error if
// any child had to be killed or ctx ended first.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	groups := map[int][]*child{}
	for _, n := range s.order {
		c := s.children[n]
		groups[c.spec.StopOrder] = append(groups[c.spec.StopOrder], c)
	}
	s.mu.Unlock()
	keys := make([]int, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var errs []error
	for _, k := range keys {
		var wg sync.WaitGroup
		var emu sync.Mutex
		for _, c := range groups[k] {
			wg.Go(func() {
				if err := c.shutdown(ctx); err != nil {
					emu.Lock()
					errs = append(errs, err)
					emu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	done := make(chan struct{})
	go func() { s.analyses.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("supervisor: post-mortem analyses still running: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

func removeString(ss []string, s string) []string {
	out := ss[:0]
	for _, x := range ss {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}
