package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wardgate/wardgate/internal/testutil"
)

// upStatusRow is one service of up's GET /status, as a script reads it.
type upStatusRow struct {
	Service   string `json:"service"`
	PID       int    `json:"pid"`
	State     string `json:"state"`
	Restarts  int    `json:"restarts"`
	Public    string `json:"public"`
	Metrics   string `json:"metrics"`
	StartedAt string `json:"started_at"`
	Dir       string `json:"dir"`
}

// upStatus fetches up's /status; on failure it returns the reason.
func upStatus(url string) (map[string]upStatusRow, []string, error) {
	code, body := testutil.Get(context.Background(), &http.Client{Timeout: 10 * time.Second}, url)
	if code != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: %d %.300s", url, code, body)
	}
	var doc struct {
		Services []upStatusRow `json:"services"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w in %.300s", url, err, body)
	}
	rows := map[string]upStatusRow{}
	var order []string
	for _, r := range doc.Services {
		rows[r.Service] = r
		order = append(order, r.Service)
	}
	return rows, order, nil
}

// TestUpStatusAndPIDFilesFollowRestarts is the 3 a.m. question: which pid
// is each service now? /status on up's admin listener and the pid files
// must name the restarted job queue's new process, not the one the table
// printed, and the pid files go away when up stops.
func TestUpStatusAndPIDFilesFollowRestarts(t *testing.T) {
	u := startUp(t, "--jobqueues", "1")
	statusURL := strings.TrimSuffix(u.rows["up"].metrics, "/metrics") + "/status"
	rows, order, err := upStatus(statusURL)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "up,gateway,jobqueue-1" {
		t.Fatalf("/status lists %v, want up, gateway, jobqueue-1", order)
	}
	for _, name := range order {
		r, tr := rows[name], u.rows[name]
		public := r.Public
		if public == "" {
			public = "-"
		}
		if r.PID != tr.pid || r.State != "running" || r.Restarts != 0 || public != tr.public || r.Metrics != tr.metrics {
			t.Fatalf("/status %s: %+v, want what the table printed: %+v, running, 0 restarts", name, r, tr)
		}
		if _, err := time.Parse(time.RFC3339, r.StartedAt); err != nil {
			t.Fatalf("/status %s started_at: %v", name, err)
		}
	}
	if rows["up"].PID != u.cmd.Process.Pid {
		t.Fatalf("/status up pid %d, want %d", rows["up"].PID, u.cmd.Process.Pid)
	}
	for _, name := range []string{"gateway", "jobqueue-1"} {
		if got := testutil.ReadPIDFile(t, filepath.Join(u.data, "run", name, "pid")); got != rows[name].PID {
			t.Fatalf("%s pid file holds %d, /status says %d", name, got, rows[name].PID)
		}
	}

	old := rows["jobqueue-1"].PID
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var now upStatusRow
	testutil.Eventually(context.Background(), t, upWait, 100*time.Millisecond, "jobqueue-1 restarted in /status and its pid file", func() (bool, string) {
		rows, _, err := upStatus(statusURL)
		if err != nil {
			return false, err.Error()
		}
		now = rows["jobqueue-1"]
		if now.PID == 0 || now.PID == old || now.Restarts != 1 || now.State != "running" {
			return false, fmt.Sprintf("/status jobqueue-1 %+v", now)
		}
		if got := testutil.ReadPIDFile(t, filepath.Join(u.data, "run", "jobqueue-1", "pid")); got != now.PID {
			return false, fmt.Sprintf("pid file holds %d, /status says %d", got, now.PID)
		}
		return true, ""
	})
	if !alive(now.PID) {
		t.Fatalf("jobqueue-1 pid %d from /status is not running", now.PID)
	}
	if r, _, err := upStatus(statusURL); err != nil || r["gateway"].PID != rows["gateway"].PID || r["gateway"].Restarts != 0 {
		t.Fatalf("gateway in /status after the job queue's restart: %+v (%v), want pid %d, 0 restarts", r["gateway"], err, rows["gateway"].PID)
	}

	if code := u.stop(); code != 0 {
		t.Fatalf("up exited %d after SIGTERM, want 0", code)
	}
	for _, name := range []string{"gateway", "jobqueue-1"} {
		if got := testutil.ReadPIDFile(t, filepath.Join(u.data, "run", name, "pid")); got != 0 {
			t.Errorf("%s pid file still holds %d after up stopped", name, got)
		}
	}
	if alive(now.PID) {
		t.Errorf("restarted jobqueue-1 (pid %d) still running after up exited", now.PID)
	}
}
