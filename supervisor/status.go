package supervisor

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// State is where a child is in its life, as Status reports it.
type State string

// The states of a child.
const (
	// StateStarting: a process runs but has not passed its readiness
	// check (ready line, health URL) yet.
	StateStarting State = "starting"
	// StateRunning: a process runs and passed its readiness check.
	StateRunning State = "running"
	// StateRestarting: no process runs; the last one died and a new one
	// is due after the backoff (and the post-mortem pickup).
	StateRestarting State = "restarting"
	// StateStopping: Shutdown sent SIGTERM; the process is still running.
	StateStopping State = "stopping"
	// StateStopped: stopped by Shutdown; it will not be restarted.
	StateStopped State = "stopped"
)

// Status is a snapshot of one child (or, in StatusHandler, of the
// supervising process itself).
type Status struct {
	Name  string
	PID   int // of the current process; 0 while none runs
	State State
	// Restarts counts processes started after the first one.
	Restarts int
	// StartedAt is when the current process started; zero while none runs.
	StartedAt time.Time
	// PublicURL and MetricsURL are the Spec's.
	PublicURL  string
	MetricsURL string
	// Dir is the child's working dir: logs, crash.txt and the pid file.
	Dir string
}

// Status returns a snapshot of every child in the order Shutdown stops
// them: by StopOrder (the front door first), then in start order.
func (s *Supervisor) Status() []Status {
	s.mu.Lock()
	cs := make([]*child, 0, len(s.order))
	for _, n := range s.order {
		cs = append(cs, s.children[n])
	}
	s.mu.Unlock()
	slices.SortStableFunc(cs, func(a, b *child) int { return cmp.Compare(a.spec.StopOrder, b.spec.StopOrder) })
	out := make([]Status, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.status())
	}
	return out
}

func (c *child) status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{
		Name:       c.spec.Name,
		Restarts:   c.restarts,
		PublicURL:  c.spec.PublicURL,
		MetricsURL: c.spec.MetricsURL,
		Dir:        c.dir,
	}
	switch r := c.cur; {
	case r != nil && c.stopping:
		st.State = StateStopping
	case r != nil && r.ready:
		st.State = StateRunning
	case r != nil:
		st.State = StateStarting
	case c.stopping:
		st.State = StateStopped
	default:
		st.State = StateRestarting
	}
	if r := c.cur; r != nil {
		st.PID = r.pid
		st.StartedAt = r.started
	}
	return st
}

// PIDFile is the name of the pid file in each child's working dir
// (DATA/run/<service>/pid). It holds the decimal pid of the child's current
// process and a newline while that process runs: it is replaced atomically
// at every (re)start and removed once the process has exited, whether it
// died or Shutdown stopped it, so it never names a dead process for longer
// than the supervisor takes to notice the exit.
const PIDFile = "pid"

func (c *child) pidPath() string { return filepath.Join(c.dir, PIDFile) }

// removePIDFile removes the pid file; a missing one is fine. It runs once
// the process has been reaped, when the pid may already be reused, so a
// failure is logged: a stale pid file is worth an operator's attention.
func (c *child) removePIDFile() {
	if err := os.Remove(c.pidPath()); err != nil && !os.IsNotExist(err) {
		c.sup.log.Warn("cannot remove pid file", "child", c.spec.Name, "err", err)
	}
}

// writePIDFile writes pid to path through a temporary file in the same dir
// and a rename, so a reader sees the old content or the new, never a
// partial one.
func writePIDFile(path string, pid int) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("pid file: %w", err)
	}
	tmp := f.Name()
	_, werr := f.WriteString(strconv.Itoa(pid) + "\n")
	cerr := f.Close()
	if err := firstErr(werr, cerr, os.Chmod(tmp, 0o644)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("pid file: %w", err)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// statusTimeFormat is RFC 3339 in UTC with milliseconds, enough to line a
// start up with log records.
const statusTimeFormat = "2006-01-02T15:04:05.000Z07:00"

// ServiceJSON is one service in the /status document.
type ServiceJSON struct {
	Service  string `json:"service"`
	PID      int    `json:"pid"` // 0 while no process runs
	State    State  `json:"state"`
	Restarts int    `json:"restarts"`
	Public   string `json:"public"`  // "" when the service has no public listener
	Metrics  string `json:"metrics"` // full URL of its /metrics
	// StartedAt is when the current process started (RFC 3339, UTC);
	// "" while no process runs.
	StartedAt string `json:"started_at"`
	Dir       string `json:"dir,omitempty"` // working dir: logs, pid file
}

// StatusJSON is the document StatusHandler serves.
type StatusJSON struct {
	Services []ServiceJSON `json:"services"`
}

func serviceJSON(st Status) ServiceJSON {
	out := ServiceJSON{
		Service:  st.Name,
		PID:      st.PID,
		State:    st.State,
		Restarts: st.Restarts,
		Public:   st.PublicURL,
		Metrics:  st.MetricsURL,
		Dir:      st.Dir,
	}
	if !st.StartedAt.IsZero() {
		out.StartedAt = st.StartedAt.UTC().Format(statusTimeFormat)
	}
	return out
}

// Snapshot returns the /status document: self (the supervising process,
// reported as given except that its State turns to stopping once Shutdown
// has begun) and then every child in Status order, read at the time of the
// call.
func (s *Supervisor) Snapshot(self Status) StatusJSON {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		self.State = StateStopping
	}
	children := s.Status()
	doc := StatusJSON{Services: make([]ServiceJSON, 0, 1+len(children))}
	doc.Services = append(doc.Services, serviceJSON(self))
	for _, st := range children {
		doc.Services = append(doc.Services, serviceJSON(st))
	}
	return doc
}

// StatusHandler serves Snapshot(self) as JSON on GET (and HEAD), so an
// operator or a script can ask which pid each service has now, after any
// restarts, without reading logs. Mount it on an admin listener: it tells
// pids and paths.
func (s *Supervisor) StatusHandler(self Status) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, `{"error":"method not allowed"}`, http.StatusMethodNotAllowed)
			return
		}
		b, err := json.MarshalIndent(s.Snapshot(self), "", "  ")
		if err != nil {
			http.Error(w, fmt.Sprintf(`{"error":%q}`, err.Error()), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(append(b, '\n'))
	})
}
