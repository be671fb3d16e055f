package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/diag/crashenv"
	"github.com/wardgate/wardgate/internal/logring"
)

var errStopping = errors.New("supervisor: stopping")

// child is one supervised service across its restarts.
type child struct {
	sup    *Supervisor
	spec   Spec
	dir    string
	ctx    context.Context // cancelled at Shutdown: no more restarts
	cancel context.CancelFunc
	done   chan struct{} // closed when supervision ends

	mu       sync.Mutex
	cur      *run // nil between an exit and the restart
	restarts int
	stopping bool
}

// run is one process of a child.
type run struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	comm    string
	exe     *os.File // the child's own executable, opened via /proc/PID/exe
	logs    []*os.File

	readyOnce sync.Once
	readyLine chan struct{}

	exited chan struct{} // closed once Wait returned; state is then set
	state  *os.ProcessState
	stderr *lineWriter // its crashLine is settled once exited is closed

	ready bool // passed waitReady; guarded by the child's mu

	wdDone      chan struct{} // closed when the watchdog goroutine returned
	watchdogDir string        // set by the watchdog before wdDone closes
}

func (r *run) kill() {
	if r == nil {
		return
	}
	_ = r.cmd.Process.Kill() // ErrProcessDone is fine: it is already gone
	<-r.exited
}

func (c *child) crashPath() string { return filepath.Join(c.dir, "crash.txt") }

// start starts one process of the child; it refuses once Shutdown began.
// c.mu is held across cmd.Start so Shutdown either sees the new process or
// start sees stopping: no process can slip through unsignalled. A restart
// is counted, and the pid file written, under the same lock as the new
// process becomes current, so Status never shows a new pid with the old
// restart count or a pid the pid file does not hold.
func (c *child) start(restart bool) (*run, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil, errStopping
	}
	crash := c.crashPath()
	// Crash output from an earlier up run that was never collected: keep it
	// aside rather than appending this run's crash to it.
	if st, err := os.Stat(crash); err == nil && st.Size() > 0 {
		_ = os.Rename(crash, crash+".prev")
	}
	cmd := c.spec.Command()
	if cmd == nil {
		return nil, errors.New("Command returned nil")
	}
	cmd.Dir = c.dir
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	// The child's log ring (internal/logring), read by collect after a
	// crash: a child that buffers its log creates the file there. The
	// previous run's ring was collected already; removed so that a child
	// dying before it opens its own is not given the old lines.
	_ = os.Remove(c.logRingPath())
	env = append(env[:len(env):len(env)], logring.EnvPath+"="+c.logRingPath())
	cmd.Env = crashenv.ChildEnv(env, crash)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Own process group: a Ctrl-C on the terminal reaches only up, which
	// then stops the children in order. Pdeathsig: if up itself is killed,
	// children get SIGTERM and drain instead of lingering on their ports.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	cmd.WaitDelay = 5 * time.Second

	r := &run{cmd: cmd, readyLine: make(chan struct{}), exited: make(chan struct{}), wdDone: make(chan struct{})}
	for _, name := range []string{"stdout.log", "stderr.log"} {
		f, err := os.OpenFile(filepath.Join(c.dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			closeAll(r.logs)
			return nil, fmt.Errorf("log file: %w", err)
		}
		r.logs = append(r.logs, f)
	}
	prefix := []byte(c.spec.Name + " | ")
	cmd.Stdout = &lineWriter{file: r.logs[0], forward: c.sup.forward, prefix: prefix, onLine: func(line string) {
		if c.spec.ReadyLine != "" && strings.HasPrefix(line, c.spec.ReadyLine) {
			r.readyOnce.Do(func() { close(r.readyLine) })
		}
	}}
	r.stderr = &lineWriter{file: r.logs[1], forward: c.sup.forward, prefix: prefix, muteCrash: true}
	cmd.Stderr = r.stderr
	if err := cmd.Start(); err != nil {
		closeAll(r.logs)
		return nil, fmt.Errorf("start: %w", err)
	}
	r.pid = cmd.Process.Pid
	r.started = time.Now()
	// After Start returns the exec has happened, so /proc/PID/exe is the
	// child's binary. Holding it open keeps that exact inode for the
	// post-mortem even if the file on disk is rebuilt meanwhile.
	if f, err := os.Open("/proc/" + strconv.Itoa(r.pid) + "/exe"); err == nil {
		r.exe = f
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(r.pid) + "/comm"); err == nil {
		r.comm = strings.TrimSpace(string(b))
	}
	if err := writePIDFile(c.pidPath(), r.pid); err != nil {
		// The child runs fine without it; failing the (re)start over a
		// convenience file would turn a full disk into an outage.
		c.sup.log.Warn("cannot write pid file", "child", c.spec.Name, "pid", r.pid, "err", err)
	}
	if restart {
		c.restarts++
	}
	c.cur = r
	go func() {
		_ = cmd.Wait() // the exit is described by ProcessState
		r.state = cmd.ProcessState
		c.recoverUnflushedLog(r)
		closeAll(r.logs)
		close(r.exited)
	}()
	go c.sup.watchdog(c, r)
	c.sup.log.Info("child started", "child", c.spec.Name, "pid", r.pid, "dir", c.dir)
	c.sup.emit(Event{Kind: EventStarted, Service: c.spec.Name, PID: r.pid})
	return r, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

// waitReady waits for the ready line, then for HealthURL to answer 200.
func (c *child) waitReady(ctx context.Context, r *run) error {
	if c.spec.ReadyLine != "" {
		select {
		case <-r.readyLine:
		case <-r.exited:
			return fmt.Errorf("exited (%v) before printing %q", r.state, c.spec.ReadyLine)
		case <-ctx.Done():
			return fmt.Errorf("no %q line: %w", c.spec.ReadyLine, ctx.Err())
		}
	}
	if c.spec.HealthURL != "" {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		var last error
		for {
			if last = c.sup.healthy(ctx, c.spec.HealthURL); last == nil {
				break
			}
			select {
			case <-tick.C:
			case <-r.exited:
				return fmt.Errorf("exited (%v) before %s answered", r.state, c.spec.HealthURL)
			case <-ctx.Done():
				return fmt.Errorf("%s: %w (last error: %v)", c.spec.HealthURL, ctx.Err(), last)
			}
		}
	}
	c.mu.Lock()
	r.ready = true
	c.mu.Unlock()
	c.sup.emit(Event{Kind: EventReady, Service: c.spec.Name, PID: r.pid})
	return nil
}

func (s *Supervisor) healthy(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// supervise owns the child from its first ready run until Shutdown: it
// collects what each dead process left and restarts it with backoff.
func (c *child) supervise(r *run) {
	defer close(c.done)
	failures := 0
	for {
		<-r.exited
		ran := time.Since(r.started)
		c.mu.Lock()
		c.cur = nil
		c.removePIDFile()
		stopping := c.stopping
		c.mu.Unlock()
		lvl := "child exited"
		if !stopping {
			lvl = "child died"
		}
		attrs := []any{"child", c.spec.Name, "pid", r.pid, "status", r.state.String(), "ran", ran.Round(time.Millisecond).String()}
		if r.stderr.crashLine != "" {
			// Its crash output was not forwarded (see lineWriter): say
			// where it is; the post-mortem line follows when one is made.
			attrs = append(attrs, "crash", r.stderr.crashLine, "output", filepath.Join(c.dir, "stderr.log"))
		}
		c.sup.log.Info(lvl, attrs...)
		c.sup.emit(Event{Kind: EventExited, Service: c.spec.Name, PID: r.pid, Status: r.state.String()})
		crashed := c.sup.collect(c, r)
		if stopping {
			return
		}
		reason := restartReason(r, crashed)
		var delay time.Duration
		delay, failures = c.sup.opts.Backoff.Delay(failures, ran)
		for {
			c.sup.log.Info("restarting child", "child", c.spec.Name, "after", delay.String())
			c.sup.emit(Event{Kind: EventRestarting, Service: c.spec.Name, Delay: delay})
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
				return
			}
			nr, err := c.start(true)
			if errors.Is(err, errStopping) {
				return
			}
			if err == nil {
				r = nr
				break
			}
			c.sup.log.Error("restart failed", "child", c.spec.Name, "err", err)
			delay, failures = c.sup.opts.Backoff.Delay(failures, 0)
		}
		c.sup.metrics.restarted(c.spec.Name, reason)
		go func(r *run) {
			if err := c.waitReady(c.ctx, r); err != nil && c.ctx.Err() == nil {
				c.sup.log.Warn("restarted child not ready", "child", c.spec.Name, "pid", r.pid, "err", err)
			}
		}(r)
	}
}

// restartReason says why run r died, for the restarts metric: the
// watchdog killed it, it crashed (a core or crash output), a signal
// killed it, or it exited. It needs collect to have returned (which waits
// for the watchdog, so watchdogDir is settled).
func restartReason(r *run, crashed bool) string {
	if r.watchdogDir != "" {
		return ReasonWatchdog
	}
	ws, ok := r.state.Sys().(syscall.WaitStatus)
	switch {
	case crashed || (ok && ws.CoreDump()):
		return ReasonCrash
	case ok && ws.Signaled():
		return ReasonSignal
	}
	return ReasonExit
}

// shutdown sends SIGTERM, waits up to StopTimeout (or ctx), then SIGKILLs.
func (c *child) shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.stopping = true
	r := c.cur
	c.mu.Unlock()
	c.cancel()
	if r != nil {
		c.sup.log.Info("stopping child", "child", c.spec.Name, "pid", r.pid)
		c.sup.emit(Event{Kind: EventStopping, Service: c.spec.Name, PID: r.pid})
		_ = r.cmd.Process.Signal(syscall.SIGTERM) // ErrProcessDone: already exiting
	}
	t := time.NewTimer(c.spec.StopTimeout)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	if r == nil {
		<-c.done
		return nil
	}
	c.sup.log.Warn("child did not stop in time; killing it", "child", c.spec.Name, "pid", r.pid, "timeout", c.spec.StopTimeout.String())
	c.sup.emit(Event{Kind: EventKilled, Service: c.spec.Name, PID: r.pid})
	_ = r.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("supervisor: %s (pid %d) killed: did not exit after SIGTERM", c.spec.Name, r.pid)
}

// recoverUnflushedLog appends to the child's stderr.log the lines it had
// logged but not yet written out when it exited: after a fatal error or a
// SIGKILL (the OOM killer) no flush ran, and they are only in its log ring
// (internal/logring). So stderr.log misses no line however the child died;
// they come after whatever the child wrote last (a crash dump). A flush cut
// short by the death may leave its lines there twice.
func (c *child) recoverUnflushedLog(r *run) {
	tail, err := logring.ReadTail(c.logRingPath())
	if err != nil || tail.Unflushed == 0 {
		return // no ring (a child that does not buffer), or nothing pending
	}
	lost := tail.Lines[max(0, len(tail.Lines)-int(tail.Unflushed)):]
	if _, err := r.logs[1].Write(lost); err != nil {
		c.sup.log.Warn("cannot append the child's unwritten log lines to stderr.log", "child", c.spec.Name, "pid", r.pid, "err", err)
	}
}

// logRingFile is the name of a child's log ring in its run directory.
const logRingFile = "log.ring"

func (c *child) logRingPath() string { return filepath.Join(c.dir, logRingFile) }

// stderrTail is the end of the child's stderr log, for start errors.
func (c *child) stderrTail() string {
	f, err := os.Open(filepath.Join(c.dir, "stderr.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	const n = 2048
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return ""
	}
	off := max(st.Size()-n, 0)
	b := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	return "\nstderr tail:\n" + strings.TrimRight(string(b), "\n")
}
