package main

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUpWritesPrometheusTargets: up writes, under DATA/run/prometheus, a
// file_sd target file naming every process's metrics address (labelled
// job, service, instance) and a prometheus.yml that promtool accepts; a
// second run of up on the same DATA (new ports) rewrites the targets.
// The e2e test of the dashboards runs up --prometheus on these files.
func TestUpWritesPrometheusTargets(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (scripts/install-test-deps.sh installs prometheus, which has it): %v", err)
	}
	data := t.TempDir()
	dir := filepath.Join(data, "run", "prometheus")
	check := func(u *upProc) {
		t.Helper()
		var groups []struct {
			Targets []string          `json:"targets"`
			Labels  map[string]string `json:"labels"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "targets.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &groups); err != nil {
			t.Fatalf("targets.json: %v\n%s", err, b)
		}
		wantJob := map[string]string{"up": "wardgate-up", "gateway": "wardgate-gateway", "jobqueue-1": "wardgate-jobqueue", "jobqueue-2": "wardgate-jobqueue"}
		seen := map[string]bool{}
		for _, g := range groups {
			svc := g.Labels["service"]
			row, ok := u.rows[svc]
			if !ok {
				t.Errorf("targets.json names service %q, not in up's table %v", svc, u.rows)
				continue
			}
			m, err := url.Parse(row.metrics)
			if err != nil {
				t.Fatal(err)
			}
			if len(g.Targets) != 1 || g.Targets[0] != m.Host {
				t.Errorf("%s: targets %v, want [%s] (its metrics URL %s)", svc, g.Targets, m.Host, row.metrics)
			}
			if g.Labels["job"] != wantJob[svc] || g.Labels["instance"] != svc {
				t.Errorf("%s: labels %v, want job %s, instance %s", svc, g.Labels, wantJob[svc], svc)
			}
			seen[svc] = true
		}
		for svc := range wantJob {
			if !seen[svc] {
				t.Errorf("targets.json lacks %s:\n%s", svc, b)
			}
		}
		out, err := exec.Command(promtool, "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check config: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "targets.json.tmp")); !os.IsNotExist(err) {
			t.Errorf("a temp file is left next to targets.json: %v", err)
		}
	}

	first := startUp(t, "--data", data)
	check(first)
	if code := first.stop(); code != 0 {
		t.Fatalf("up exited %d", code)
	}
	second := startUp(t, "--data", data)
	if second.rows["gateway"].metrics == first.rows["gateway"].metrics {
		t.Logf("the gateway's admin port happens to be the same in both runs")
	}
	check(second)
	if code := second.stop(); code != 0 {
		t.Fatalf("up exited %d", code)
	}
}

// TestUpPrometheusErrors: up --prometheus without a prometheus binary
// says so in one line naming the flag, exits 2 and creates nothing; a
// taken --prometheus-listen port is one line naming that flag, before any
// child starts.
func TestUpPrometheusErrors(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	cmd := exec.Command(wardgateBin, "up", "--prometheus", "--listen", "127.0.0.1:0", "--data", data)
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("up --prometheus with an empty PATH: %v, want exit 2\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "--prometheus") || !strings.Contains(lines[0], "PATH") {
		t.Errorf("want one line naming --prometheus and PATH, got:\n%s", out)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("up created %s before failing: %v", data, err)
	}

	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatalf("prometheus not found (scripts/install-test-deps.sh installs it): %v", err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cmd = exec.Command(wardgateBin, "up", "--prometheus", "--prometheus-listen", taken.Addr().String(), "--listen", "127.0.0.1:0", "--data", data)
	out, err = cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("up --prometheus-listen on a taken port: %v, want exit 1\n%s", err, out)
	}
	lines = strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "--prometheus-listen "+taken.Addr().String()) || !strings.Contains(lines[0], "address already in use") {
		t.Errorf("want one line naming --prometheus-listen and the taken address, got:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(data, "run")); !os.IsNotExist(err) {
		t.Errorf("up started the stack before failing on --prometheus-listen: %v", err)
	}
}
