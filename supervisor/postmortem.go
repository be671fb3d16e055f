package supervisor

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/diag/bundle"
	"github.com/wardgate/wardgate/internal/logring"
	"github.com/wardgate/wardgate/internal/redact"
)

// newPostmortemDir creates DATA/postmortem/<UTC time>-<service>-<pid>/.
func (s *Supervisor) newPostmortemDir(service string, pid int, t time.Time) (string, error) {
	name := fmt.Sprintf("%s-%s-%d", t.UTC().Format("20060102T150405Z"), service, pid)
	dir := filepath.Join(s.opts.DataDir, "postmortem", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("post-mortem dir: %w", err)
	}
	if err := prunePostmortems(filepath.Dir(dir), s.opts.KeepPostmortems); err != nil {
		s.log.Warn("pruning old post-mortems", "err", err)
	}
	return dir, nil
}

// prunePostmortems removes the oldest post-mortem dirs of root beyond keep
// (0: keep all). Names start with a UTC timestamp, so name order is age
// order.
func prunePostmortems(root string, keep int) error {
	if keep <= 0 {
		return nil
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) <= keep {
		return nil
	}
	sort.Strings(dirs)
	var errs []error
	for _, d := range dirs[:len(dirs)-keep] {
		if err := os.RemoveAll(filepath.Join(root, d)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// collect turns what a dead process left (a core, crash output, a watchdog
// capture) into a post-mortem dir, then runs Analyze on it in the
// background. A clean exit or a plain SIGKILL leaves nothing and is ignored.
// It reports whether the process left anything (it crashed).
func (s *Supervisor) collect(c *child, r *run) bool {
	<-r.wdDone
	defer func() {
		if r.exe != nil {
			_ = r.exe.Close()
		}
	}()
	core := s.cores.FindCore(c.dir, r.pid, r.comm, r.started)
	crash := c.crashPath()
	crashSize := int64(0)
	if st, err := os.Stat(crash); err == nil {
		crashSize = st.Size()
	}
	if core == "" && r.watchdogDir == "" && crashSize == 0 {
		return false
	}
	now := time.Now()
	dir := r.watchdogDir
	if dir == "" {
		var err error
		if dir, err = s.newPostmortemDir(c.spec.Name, r.pid, now); err != nil {
			s.log.Error("post-mortem failed", "child", c.spec.Name, "pid", r.pid, "err", err)
			return true
		}
	}
	pm := Postmortem{Dir: dir, Service: c.spec.Name, PID: r.pid}
	var errs []error
	if core != "" {
		dst := filepath.Join(dir, bundle.CoreFile)
		if _, err := os.Stat(dst); err == nil {
			dst = filepath.Join(dir, bundle.CoreExitFile) // the watchdog's live capture keeps the name core
		}
		if err := moveFile(core, dst); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, bundle.CoreFile)); err == nil {
		pm.Core = filepath.Join(dir, bundle.CoreFile)
	}
	if crashSize > 0 {
		pm.CrashOutput = filepath.Join(dir, bundle.CrashOutputFile)
		if err := moveFile(crash, pm.CrashOutput); err != nil {
			errs = append(errs, err)
			pm.CrashOutput = ""
		}
	}
	if tail, err := logring.ReadTail(c.logRingPath()); err == nil && len(tail.Lines) > 0 {
		// The lines the child logged last, buffered ones included: they
		// are not in stderr.log. start removes the ring of the run before.
		pm.LogTail = filepath.Join(dir, bundle.LogTailFile)
		if err := os.WriteFile(pm.LogTail, tail.Lines, bundle.FileMode); err != nil {
			errs = append(errs, err)
			pm.LogTail = ""
		}
		pm.LogUnflushed = tail.Unflushed
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	exe := filepath.Join(dir, bundle.ExeFile)
	if _, err := os.Stat(exe); err == nil {
		pm.Exe = exe // Capture copied it already
	} else if r.exe != nil {
		if err := copyFrom(r.exe, exe, 0o700); err != nil {
			errs = append(errs, err)
		} else {
			pm.Exe = exe
		}
	} else {
		errs = append(errs, errors.New("executable of the dead process not available"))
	}
	info := s.postmortemMeta(c, r, pm, now)
	if _, err := bundle.WritePostmortem(dir, &info); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Warn("post-mortem incomplete", "child", c.spec.Name, "pid", r.pid, "postmortem", dir, "err", err)
	}
	switch {
	case pm.Core == "":
		s.logPostmortem(pm, info, ResultNoCore, Analysis{}, nil)
		return true
	case pm.Exe == "":
		s.logPostmortem(pm, info, ResultAnalyzeFailed, Analysis{}, errors.New("not analyzed: the executable of the dead process was not kept"))
		return true
	case s.opts.Analyze == nil:
		s.logPostmortem(pm, info, ResultNotAnalyzed, Analysis{}, nil)
		return true
	}
	s.analyses.Add(1)
	go func() {
		defer s.analyses.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.AnalyzeTimeout)
		defer cancel()
		start := time.Now()
		an, err := s.opts.Analyze(ctx, pm)
		s.metrics.analyzed(pm.Service, time.Since(start).Seconds())
		result := ResultAnalyzed
		if err != nil {
			result = ResultAnalyzeFailed
		}
		s.logPostmortem(pm, info, result, an, err)
	}()
	return true
}

// logPostmortem writes the one line an operator greps for (key
// postmortem): what crashed (child, pid, exit), the headline of its report
// (or the first line of its crash output) and the file to read (the report,
// else the crash output, else the dir); it counts the post-mortem by
// result and reports the event.
func (s *Supervisor) logPostmortem(pm Postmortem, info bundle.Postmortem, result string, an Analysis, analyzeErr error) {
	s.metrics.postmortem(pm.Service, result)
	attrs := []any{"postmortem", pm.Dir, "child", pm.Service, "pid", pm.PID, "exit", info.Exit, "core", pm.Core != ""}
	if info.CrashReason != "" {
		attrs = append(attrs, "reason", info.CrashReason)
	}
	headline, report := an.Headline, an.Report
	if headline == "" {
		headline = info.CrashReason
	}
	if report == "" {
		report = pm.CrashOutput
	}
	if report == "" {
		report = pm.Dir
	}
	if headline != "" {
		attrs = append(attrs, "headline", headline)
	}
	attrs = append(attrs, "report", report)
	if pm.LogTail != "" {
		// log_unflushed: bytes at the end of log_tail that never reached
		// the child's stderr.log (it died with them buffered).
		attrs = append(attrs, "log_tail", pm.LogTail, "log_unflushed", pm.LogUnflushed)
	}
	if analyzeErr != nil {
		s.log.Error("post-mortem written; analysis failed", append(attrs, "err", analyzeErr)...)
	} else {
		s.log.Info("post-mortem written", attrs...)
	}
	s.emit(Event{Kind: EventPostmortem, Service: pm.Service, PID: pm.PID, Dir: pm.Dir, Err: analyzeErr})
}

// postmortemMeta is the bundle metadata of a post-mortem the supervisor
// writes itself.
func (s *Supervisor) postmortemMeta(c *child, r *run, pm Postmortem, now time.Time) bundle.Postmortem {
	info := bundle.Postmortem{
		Service:   c.spec.Name,
		PID:       r.pid,
		Cmdline:   redact.Args(r.cmd.Args),
		Method:    bundle.MethodCrash,
		Time:      now.UTC(),
		StartedAt: r.started.UTC(),
		Exit:      r.state.String(),
	}
	c.mu.Lock()
	info.Restarts = c.restarts
	c.mu.Unlock()
	if r.watchdogDir != "" {
		info.Method = bundle.MethodWatchdog
	}
	if ws, ok := r.state.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			info.Signal = ws.Signal().String()
		}
		info.CoreDumped = ws.CoreDump()
	}
	if pm.Core != "" {
		if st, err := os.Stat(pm.Core); err == nil {
			info.CoreSize = st.Size()
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				info.CoreBytesOnDisk = sys.Blocks * 512
			}
		}
	}
	if pm.Exe != "" {
		if bi, err := buildinfo.ReadFile(pm.Exe); err == nil {
			info.GoVersion = bi.GoVersion
			info.ModulePath = bi.Main.Path
			info.ModuleVersion = bi.Main.Version
			info.BuildSettings = map[string]string{}
			for _, kv := range bi.Settings {
				info.BuildSettings[kv.Key] = kv.Value
			}
		}
	}
	if pm.CrashOutput != "" {
		info.CrashReason = crashReason(pm.CrashOutput)
	}
	return info
}

// crashReason is the first non-empty line of the crash output, e.g.
// "panic: boom" or "SIGQUIT: quit".
func crashReason(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<10))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			return l
		}
	}
	return ""
}

// moveFile renames src to dst, copying when they are on different
// filesystems (DATA/run and DATA/postmortem normally are not).
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		if err != nil {
			return fmt.Errorf("move %s: %w", filepath.Base(src), err)
		}
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("move %s: %w", filepath.Base(src), err)
	}
	defer f.Close()
	if err := copyFrom(f, dst, 0o600); err != nil {
		return err
	}
	return os.Remove(src)
}

// copyFrom copies the whole of f (from offset 0) into a new file dst.
func copyFrom(f *os.File, dst string, mode os.FileMode) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", filepath.Base(dst), err)
	}
	if _, err := io.Copy(out, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		_ = out.Close()
		return fmt.Errorf("copy to %s: %w", filepath.Base(dst), err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy to %s: %w", filepath.Base(dst), err)
	}
	return nil
}

// crashPrefixes start the runtime's fatal output: what the crash-output
// file receives when a Go process is dying.
var crashPrefixes = [][]byte{[]byte("panic"), []byte("fatal"), []byte("SIG"), []byte("unexpected"), []byte("runtime:")}

func looksLikeCrash(head []byte) bool {
	head = bytes.TrimLeft(head, " \t\r\n")
	for _, p := range crashPrefixes {
		if bytes.HasPrefix(head, p) {
			return true
		}
	}
	return false
}

// coreDumping reports whether the kernel is writing pid's core right now
// (/proc/PID/status CoreDumping, Linux 4.15+). The crash output is quiet
// then, yet the process must not be killed or the core is lost.
func coreDumping(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "CoreDumping:"); ok {
			return strings.TrimSpace(v) == "1"
		}
	}
	return false
}

// watchdog watches one run's crash output. A process whose crash output
// has started but which neither exits within Stuck nor writes for Idle is
// stuck in its crash path (a deadlock while printing, a wedged signal
// handler): it is captured live into a post-mortem dir and SIGKILLed, and
// collect completes that dir when the exit is seen.
func (s *Supervisor) watchdog(c *child, r *run) {
	defer close(r.wdDone)
	wd := s.opts.Watchdog
	t := time.NewTicker(wd.Poll)
	defer t.Stop()
	var started, lastGrowth time.Time
	var lastSize int64
	for {
		var now time.Time
		select {
		case <-r.exited:
			return
		case now = <-t.C:
		}
		st, err := os.Stat(c.crashPath())
		if err != nil || st.Size() == 0 {
			continue
		}
		if started.IsZero() {
			head := make([]byte, 64)
			f, err := os.Open(c.crashPath())
			if err != nil {
				continue
			}
			n, _ := f.Read(head)
			_ = f.Close()
			if !looksLikeCrash(head[:n]) {
				continue
			}
			started, lastGrowth, lastSize = now, now, st.Size()
			continue
		}
		if st.Size() != lastSize {
			lastSize, lastGrowth = st.Size(), now
		}
		if coreDumping(r.pid) {
			lastGrowth = now
			continue
		}
		if now.Sub(started) < wd.Stuck && now.Sub(lastGrowth) < wd.Idle {
			continue
		}
		select {
		case <-r.exited:
			return
		default:
		}
		s.fireWatchdog(c, r, now.Sub(started))
		return
	}
}

func (s *Supervisor) fireWatchdog(c *child, r *run, crashing time.Duration) {
	dir, err := s.newPostmortemDir(c.spec.Name, r.pid, time.Now())
	if err != nil {
		s.log.Error("watchdog: cannot create post-mortem dir; killing anyway", "child", c.spec.Name, "pid", r.pid, "err", err)
		_ = r.cmd.Process.Kill()
		return
	}
	r.watchdogDir = dir
	s.log.Warn("child stuck in its crash path; capturing and killing it", "child", c.spec.Name, "pid", r.pid, "crashing_for", crashing.Round(time.Millisecond).String(), "capture_dir", dir)
	if s.opts.Capture != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err = s.opts.Capture(ctx, r.pid, dir)
		cancel()
		if err != nil {
			s.log.Error("watchdog capture failed", "child", c.spec.Name, "pid", r.pid, "err", err)
		}
	}
	s.metrics.captured(c.spec.Name)
	s.emit(Event{Kind: EventWatchdog, Service: c.spec.Name, PID: r.pid, Dir: dir, Err: err})
	_ = r.cmd.Process.Kill()
}
