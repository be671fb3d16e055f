package supervisor

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

func statusOf(t *testing.T, s *Supervisor, name string) Status {
	t.Helper()
	for _, st := range s.Status() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no child %s in %+v", name, s.Status())
	return Status{}
}

func getStatus(t *testing.T, url string) StatusJSON {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %s, Content-Type %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	var doc StatusJSON
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode /status: %v", err)
	}
	return doc
}

func TestStatusFollowsRestartsAndPIDFile(t *testing.T) {
	h := newHarness(t, Options{Backoff: Backoff{Initial: 10 * time.Millisecond}})
	spec := serveSpec(t, "svc")
	spec.PublicURL = "http://127.0.0.1:1"
	spec.MetricsURL = "http://127.0.0.1:2/metrics"
	before := time.Now()
	if err := h.sup.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	st := statusOf(t, h.sup, "svc")
	if st.State != StateRunning || st.PID <= 0 || st.Restarts != 0 || st.PublicURL != spec.PublicURL || st.MetricsURL != spec.MetricsURL {
		t.Fatalf("status after Start: %+v", st)
	}
	if st.StartedAt.Before(before) || st.StartedAt.After(time.Now()) {
		t.Fatalf("StartedAt %v is not between Start's call (%v) and now", st.StartedAt, before)
	}
	if got := testutil.ReadPIDFile(t, filepath.Join(h.data, "run", "svc", PIDFile)); got != st.PID {
		t.Fatalf("pid file holds %d, status says %d", got, st.PID)
	}

	self := Status{Name: "up", PID: os.Getpid(), State: StateRunning, StartedAt: before, MetricsURL: "http://127.0.0.1:3/metrics"}
	srv := httptest.NewServer(h.sup.StatusHandler(self))
	defer srv.Close()
	doc := getStatus(t, srv.URL)
	if len(doc.Services) != 2 {
		t.Fatalf("/status lists %d services, want up and svc: %+v", len(doc.Services), doc)
	}
	if up := doc.Services[0]; up.Service != "up" || up.PID != os.Getpid() || up.State != StateRunning || up.Metrics != self.MetricsURL || up.Public != "" {
		t.Fatalf("/status self row %+v", up)
	}
	svc := doc.Services[1]
	if svc.Service != "svc" || svc.PID != st.PID || svc.State != StateRunning || svc.Restarts != 0 ||
		svc.Public != spec.PublicURL || svc.Metrics != spec.MetricsURL || svc.Dir != filepath.Join(h.data, "run", "svc") {
		t.Fatalf("/status child row %+v, want pid %d", svc, st.PID)
	}
	started, err := time.Parse(time.RFC3339, svc.StartedAt)
	if err != nil {
		t.Fatalf("started_at %q: %v", svc.StartedAt, err)
	}
	if !started.Equal(st.StartedAt.Truncate(time.Millisecond)) {
		t.Fatalf("started_at %v, want %v to the millisecond", started, st.StartedAt)
	}
	if resp, err := http.Post(srv.URL, "application/json", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /status: %v %v, want 405", resp, err)
	} else {
		resp.Body.Close()
	}

	// kill -9: the new process replaces the old one in Status, the pid
	// file and /status, with the restart counted.
	old := st
	if err := syscall.Kill(old.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ready := h.wait("ready again", func(e Event) bool { return e.Kind == EventReady && e.PID != old.PID })
	st = statusOf(t, h.sup, "svc")
	if st.PID != ready.PID || st.Restarts != 1 || st.State != StateRunning || st.StartedAt.Before(old.StartedAt) {
		t.Fatalf("status after restart %+v, want pid %d, 1 restart, running, started after %v", st, ready.PID, old.StartedAt)
	}
	if got := testutil.ReadPIDFile(t, filepath.Join(h.data, "run", "svc", PIDFile)); got != ready.PID {
		t.Fatalf("pid file holds %d after the restart, want %d", got, ready.PID)
	}
	if svc := getStatus(t, srv.URL).Services[1]; svc.PID != ready.PID || svc.Restarts != 1 {
		t.Fatalf("/status after restart %+v, want pid %d and 1 restart", svc, ready.PID)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.sup.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	st = statusOf(t, h.sup, "svc")
	if st.State != StateStopped || st.PID != 0 || !st.StartedAt.IsZero() || st.Restarts != 1 {
		t.Fatalf("status after Shutdown %+v, want stopped, no pid, 1 restart", st)
	}
	if got := testutil.ReadPIDFile(t, filepath.Join(h.data, "run", "svc", PIDFile)); got != 0 {
		t.Fatalf("pid file still holds %d after Shutdown", got)
	}
	doc = getStatus(t, srv.URL)
	if doc.Services[0].State != StateStopping || doc.Services[1].State != StateStopped || doc.Services[1].StartedAt != "" || doc.Services[1].PID != 0 {
		t.Fatalf("/status after Shutdown: %+v", doc)
	}
}

// TestStatusWhileRestarting holds a dead child in its restart backoff: it
// has no pid and no pid file then (the old pid may be reused by anything),
// and Shutdown during the backoff leaves it stopped.
func TestStatusWhileRestarting(t *testing.T) {
	h := newHarness(t, Options{Backoff: Backoff{Initial: time.Hour}})
	if err := h.sup.Start(context.Background(), serveSpec(t, "slow")); err != nil {
		t.Fatal(err)
	}
	pid := pidOf(t, h.sup, "slow")
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.wait("restart scheduled", func(e Event) bool { return e.Kind == EventRestarting && e.Service == "slow" })
	st := statusOf(t, h.sup, "slow")
	if st.State != StateRestarting || st.PID != 0 || !st.StartedAt.IsZero() || st.Restarts != 0 {
		t.Fatalf("status in backoff %+v, want restarting, no pid, 0 restarts", st)
	}
	if got := testutil.ReadPIDFile(t, filepath.Join(h.data, "run", "slow", PIDFile)); got != 0 {
		t.Fatalf("pid file names dead pid %d during the backoff", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.sup.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, h.sup, "slow"); st.State != StateStopped || st.PID != 0 {
		t.Fatalf("status after Shutdown in backoff %+v, want stopped", st)
	}
}

// TestStatusStartingAndFailedStart watches a child that never becomes
// ready: it shows as starting with its pid file, and once Start gives up
// the pid file is gone with the process.
func TestStatusStartingAndFailedStart(t *testing.T) {
	h := newHarness(t, Options{})
	spec := serveSpec(t, "laggard")
	spec.ReadyLine = "never printed "
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startErr := make(chan error, 1)
	go func() { startErr <- h.sup.Start(ctx, spec) }()
	started := h.wait("process started", func(e Event) bool { return e.Kind == EventStarted && e.Service == "laggard" })
	st := statusOf(t, h.sup, "laggard")
	if st.State != StateStarting || st.PID != started.PID || st.StartedAt.IsZero() {
		t.Fatalf("status before ready %+v, want starting with pid %d", st, started.PID)
	}
	if got := testutil.ReadPIDFile(t, filepath.Join(h.data, "run", "laggard", PIDFile)); got != started.PID {
		t.Fatalf("pid file holds %d, want %d", got, started.PID)
	}
	cancel()
	if err := <-startErr; err == nil {
		t.Fatal("Start of a child that never printed its ready line succeeded")
	}
	if got := testutil.ReadPIDFile(t, filepath.Join(h.data, "run", "laggard", PIDFile)); got != 0 {
		t.Fatalf("pid file still holds %d after the failed start", got)
	}
	if syscall.Kill(started.PID, 0) == nil {
		t.Fatalf("pid %d still runs after the failed start", started.PID)
	}
	if n := len(h.sup.Status()); n != 0 {
		t.Fatalf("failed child still listed: %+v", h.sup.Status())
	}
}
