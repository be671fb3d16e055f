package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wardgate/wardgate/supervisor"
)

// Everything a local Prometheus needs to scrape the stack lives in
// DATA/run/prometheus/ (docs/dashboards.md): up writes it at every start
// whether or not --prometheus runs one, so the user's own Prometheus can
// use it too.
const (
	promDirName     = "prometheus"
	promConfigName  = "prometheus.yml"
	promTargetsName = "targets.json"
)

// promTargetGroup is one entry of a Prometheus file_sd file.
type promTargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// promJob is the Prometheus job label of a service: the job names the
// dashboards default to (deploy/prometheus.yml), one per kind of process,
// so every job queue is in wardgate-jobqueue.
func promJob(service string) string {
	switch {
	case service == "up", service == "gateway":
		return "wardgate-" + service
	case strings.HasPrefix(service, "jobqueue"):
		return "wardgate-jobqueue"
	}
	return "wardgate-" + service
}

// promTargets builds the file_sd groups of rows: one group per process,
// labelled job (its kind), service and instance (both the service name,
// which stays the same across restarts of up while its ports may not).
// Rows without a metrics URL of the form http://HOST:PORT/metrics are left
// out (Prometheus's own row: it is not one of the stack's processes).
func promTargets(rows []supervisor.Status) ([]promTargetGroup, error) {
	groups := []promTargetGroup{}
	for _, r := range rows {
		if r.Name == promDirName {
			continue
		}
		u, err := url.Parse(r.MetricsURL)
		if err != nil || u.Scheme != "http" || u.Path != "/metrics" || u.Host == "" {
			return nil, fmt.Errorf("prometheus targets: %s: metrics URL %q is not http://HOST:PORT/metrics", r.Name, r.MetricsURL)
		}
		groups = append(groups, promTargetGroup{
			Targets: []string{u.Host},
			Labels:  map[string]string{"job": promJob(r.Name), "service": r.Name, "instance": r.Name},
		})
	}
	return groups, nil
}

// writePromFiles writes dir/targets.json (atomically: Prometheus watches
// it and must never read half a file) and dir/prometheus.yml scraping the
// targets every interval. Both are rewritten at every start of up, so
// they always name the ports of the stack that runs now.
func writePromFiles(dir string, rows []supervisor.Status, interval time.Duration) error {
	groups, err := promTargets(rows)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("prometheus dir: %w", err)
	}
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return fmt.Errorf("prometheus targets: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, promTargetsName), append(b, '\n')); err != nil {
		return fmt.Errorf("prometheus targets: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, promConfigName), []byte(promConfig(interval))); err != nil {
		return fmt.Errorf("prometheus config: %w", err)
	}
	return nil
}

// promConfig is the prometheus.yml up writes. The file_sd path is
// relative, so Prometheus resolves it next to the config and DATA can be
// moved. The job label comes from the target file (a target's own labels
// win over job_name).
func promConfig(interval time.Duration) string {
	iv := promDuration(interval)
	return fmt.Sprintf(`# Written by wardgate up; rewritten at every start. Reference: docs/dashboards.md.
# Scrapes every process of the stack (targets.json next to this file, kept
# current by up; Prometheus re-reads it when it changes). Run it with:
#   prometheus --config.file=%s --enable-feature=exemplar-storage
# or let up run it: wardgate up --prometheus.
global:
  scrape_interval: %s
  scrape_timeout: %s
  evaluation_interval: %s
scrape_configs:
  - job_name: wardgate
    file_sd_configs:
      - files: [%s]
`, promConfigName, iv, iv, iv, promTargetsName)
}

// promDuration formats d as a Prometheus duration (whole milliseconds at least).
func promDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// promSpec is the supervised Prometheus of `up --prometheus`: bin on
// addr, its TSDB under DATA/prometheus (kept across runs of up, so the
// boards show history), stopped after the job queues so it scrapes the
// drain to the end.
func promSpec(bin, dir, tsdb, addr string, stopWait time.Duration) supervisor.Spec {
	return supervisor.Spec{
		Name: promDirName,
		Command: func() *exec.Cmd {
			return exec.Command(bin,
				"--config.file="+filepath.Join(dir, promConfigName),
				"--storage.tsdb.path="+tsdb,
				"--web.listen-address="+addr,
				"--enable-feature=exemplar-storage",
				"--log.level=warn")
		},
		HealthURL:   "http://" + addr + "/-/ready",
		StopOrder:   2,
		StopTimeout: stopWait,
		PublicURL:   "http://" + addr,
		MetricsURL:  "http://" + addr + "/metrics",
	}
}

// checkPromListen makes sure a pinned --prometheus-listen port is free
// (port 0 is reserved later; without --prometheus nothing listens there).
// Prometheus binds it itself, so this only narrows the window in which
// another process can take it.
func checkPromListen(ctx context.Context, cfg Config) error {
	if cfg.Prometheus == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(cfg.PrometheusListen); err != nil || port == "0" {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.PrometheusListen)
	if err != nil {
		return fmt.Errorf("--prometheus-listen %s: %w (pick another port, or port 0 for a free one)", cfg.PrometheusListen, err)
	}
	return ln.Close()
}

// promAddr is where the supervised Prometheus listens: --prometheus-listen,
// or with port 0 a loopback port up reserves for it (like a job queue's).
func promAddr(socks *heldSockets, listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--prometheus-listen: %w", err)
	}
	if port != "0" {
		return listen, nil
	}
	if host == "" || host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil {
		return "", fmt.Errorf("--prometheus-listen %s: port 0 needs an IPv4 address", listen)
	}
	addr, err := socks.reserveOn(host)
	if err != nil {
		return "", fmt.Errorf("--prometheus-listen %s: %w", listen, err)
	}
	return addr, nil
}
