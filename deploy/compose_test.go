// Package deploy holds the configuration files of the docker-compose stack
// (Dockerfile, gateway.yaml, prometheus.yml, otel-collector.yaml, Grafana
// provisioning) and the tests that check them against each other and
// against docker-compose.yml. There is no Docker engine where the tests
// run, so they check what the engine would: the compose file as the
// official loader reads it, every file it mounts, and every address one
// service uses to reach another. The Kubernetes manifests of kubernetes/
// are checked the same way by kubernetes_test.go.
package deploy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/wardgate/wardgate/gateway"
	"github.com/wardgate/wardgate/internal/testutil"
)

// repoRoot is where docker-compose.yml lives, relative to this package.
const repoRoot = ".."

var wantServices = []string{"gateway", "jobqueue-1", "jobqueue-2", "s3", "otel-collector", "jaeger", "prometheus", "grafana"}

// jobqueues are the services running `wardgate jobqueue`.
var jobqueues = []string{"jobqueue-1", "jobqueue-2"}

// loadProject reads docker-compose.yml with compose-go, the loader Docker
// Compose itself uses: interpolation, anchors and merges resolved, the
// compose schema validated, relative paths made absolute.
func loadProject(t *testing.T) *types.Project {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{filepath.Join(repoRoot, "docker-compose.yml")},
		cli.WithWorkingDirectory(repoRoot),
		cli.WithName("wardgate"),
		cli.WithResolvedPaths(true),
		cli.WithInterpolation(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return s
}

func env(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

// port returns the port of a host:port or URL.
func port(t *testing.T, addr string) string {
	t.Helper()
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return p
}

func host(t *testing.T, addr string) string {
	t.Helper()
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	return h
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// mountSource returns the repository file mounted at target in s.
func mountSource(t *testing.T, s types.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source
		}
	}
	t.Fatalf("service %s mounts nothing at %s", s.Name, target)
	return ""
}

// gatewayConfig loads the file the gateway service runs with, through the
// gateway's own loader (unknown fields and bad values are errors there).
func gatewayConfig(t *testing.T, p *types.Project) *gateway.Config {
	t.Helper()
	gw := service(t, p, "gateway")
	i := slices.Index(gw.Command, "--config")
	if i < 0 || i+1 >= len(gw.Command) {
		t.Fatalf("gateway command %q has no --config FILE", gw.Command)
	}
	src := mountSource(t, gw, gw.Command[i+1])
	cfg, err := gateway.Load(src)
	if err != nil {
		t.Fatalf("gateway config %s: %v", src, err)
	}
	return cfg
}

func TestComposeServices(t *testing.T) {
	p := loadProject(t)
	for _, name := range wantServices {
		service(t, p, name)
	}
	for name, s := range p.Services {
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil ||
			s.Deploy.Resources.Limits.MemoryBytes <= 0 || s.Deploy.Resources.Limits.NanoCPUs <= 0 {
			t.Errorf("service %s: no cpus and memory limits (deploy.resources.limits)", name)
		}
		// s3-init is one-shot; the collector image is FROM scratch
		// (nothing inside can probe it; see the compose file's header).
		if name == "s3-init" || name == "otel-collector" {
			continue
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
			t.Errorf("service %s: no healthcheck", name)
		}
		for dep, d := range s.DependsOn {
			if _, err := p.GetService(dep); err != nil {
				t.Errorf("service %s depends on unknown service %s", name, dep)
			}
			if d.Condition == types.ServiceConditionHealthy {
				if ds := p.Services[dep]; ds.HealthCheck == nil {
					t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			}
		}
	}
}

func TestComposeBindMountsExist(t *testing.T) {
	p := loadProject(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			n++
			if !strings.HasPrefix(v.Source, root+string(filepath.Separator)) {
				t.Errorf("service %s mounts %s from outside the repository", name, v.Source)
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s at %s: %v", name, v.Source, v.Target, err)
			}
		}
		if s.Build != nil {
			df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("service %s builds with %s: %v", name, df, err)
			}
		}
	}
	if n < 4 {
		t.Errorf("only %d bind mounts; the gateway config, collector config, prometheus.yml, Grafana provisioning and dashboards should all be mounted", n)
	}
}

// TestJobqueuesCanSpillOnStop: a job queue stopped with the store down
// drains for DRAIN_TIMEOUT (25s unless set) and then writes what is not
// stored to SPILL_DIR. Compose's default stop grace is 10s, after which it
// SIGKILLs: the grace must outlast the drain, and SPILL_DIR must be on a
// named volume so the next container finds the spill.
func TestJobqueuesCanSpillOnStop(t *testing.T) {
	p := loadProject(t)
	for _, name := range jobqueues {
		s := service(t, p, name)
		drain := 25 * time.Second
		if v := env(s, "DRAIN_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s DRAIN_TIMEOUT %q: %v", name, v, err)
			}
			drain = d
		}
		if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) < drain+3*time.Second {
			t.Errorf("%s: stop_grace_period %v, want at least DRAIN_TIMEOUT (%v) + 3s for the spill", name, s.StopGracePeriod, drain)
		}
		spill := env(s, "SPILL_DIR")
		if !filepath.IsAbs(spill) {
			t.Errorf("%s: SPILL_DIR %q, want an absolute path on a volume", name, spill)
			continue
		}
		onVolume := false
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && (spill == v.Target || strings.HasPrefix(spill, v.Target+"/")) {
				onVolume = true
			}
		}
		if !onVolume {
			t.Errorf("%s: SPILL_DIR %s is not on a named volume: the spill would die with the container", name, spill)
		}
	}
}

// TestPrometheusScrapesEveryAdminListener parses deploy/prometheus.yml
// (mounted into the prometheus service) and checks each scrape target is
// a service and the port that service's admin listener is configured on.
func TestPrometheusScrapesEveryAdminListener(t *testing.T) {
	p := loadProject(t)
	promFile := mountSource(t, service(t, p, "prometheus"), "/etc/prometheus/prometheus.yml")
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, promFile, &cfg)

	// Where each service serves /metrics, from its own configuration.
	adminPort := map[string]string{}
	gw := gatewayConfig(t, p)
	adminPort["gateway"] = port(t, gw.Admin)
	for _, name := range jobqueues {
		s := service(t, p, name)
		al := env(s, "ADMIN_LISTEN")
		if al == "" {
			t.Fatalf("%s: no ADMIN_LISTEN", name)
		}
		if h := host(t, al); h != "0.0.0.0" && h != "" {
			t.Errorf("%s: ADMIN_LISTEN %s is not reachable from the prometheus container", name, al)
		}
		adminPort[name] = port(t, al)
	}
	var col collectorConfig
	readYAML(t, mountSource(t, service(t, p, "otel-collector"), "/etc/otelcol/config.yaml"), &col)
	for _, r := range col.Service.Telemetry.Metrics.Readers {
		if r.Pull.Exporter.Prometheus.Port != 0 {
			adminPort["otel-collector"] = strconv.Itoa(r.Pull.Exporter.Prometheus.Port)
		}
	}

	scraped := map[string]string{} // service -> job
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s; admin listeners serve /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				h, pt := host(t, target), port(t, target)
				if _, err := p.GetService(h); err != nil {
					t.Errorf("job %s scrapes %s: no service %q in docker-compose.yml", sc.JobName, target, h)
					continue
				}
				want, ok := adminPort[h]
				if !ok {
					t.Errorf("job %s scrapes %s, a service with no known metrics port", sc.JobName, target)
					continue
				}
				if pt != want {
					t.Errorf("job %s scrapes %s, but %s serves /metrics on port %s", sc.JobName, target, h, want)
				}
				scraped[h] = sc.JobName
			}
		}
	}
	// The dashboards' job variable defaults to these job names.
	want := map[string]string{"gateway": "wardgate-gateway", "jobqueue-1": "wardgate-jobqueue", "jobqueue-2": "wardgate-jobqueue"}
	for svc, job := range want {
		if scraped[svc] != job {
			t.Errorf("service %s is scraped by job %q, want %q (the dashboards' default job)", svc, scraped[svc], job)
		}
	}
}

// TestGatewayTargetsAreTheJobQueues checks deploy/gateway.yaml, loaded by
// the gateway's own loader, sends to the job-queue services on their
// LISTEN ports, and that the published port is the gateway's listener.
func TestGatewayTargetsAreTheJobQueues(t *testing.T) {
	p := loadProject(t)
	cfg := gatewayConfig(t, p)
	gotTargets := map[string]bool{}
	for upName, up := range cfg.Upstreams {
		for _, tc := range up.Targets {
			h, pt := host(t, tc.URL), port(t, tc.URL)
			s, err := p.GetService(h)
			if err != nil {
				t.Errorf("upstream %s target %s: no service %q", upName, tc.URL, h)
				continue
			}
			if want := port(t, env(s, "LISTEN")); pt != want {
				t.Errorf("upstream %s target %s: %s listens on port %s", upName, tc.URL, h, want)
			}
			gotTargets[h] = true
		}
		if up.HealthCheck.Path != "" && up.HealthCheck.Path != "/healthz" && up.HealthCheck.Path != "/readyz" {
			t.Errorf("upstream %s health checks %s; the job queue serves /healthz and /readyz", upName, up.HealthCheck.Path)
		}
	}
	for _, name := range jobqueues {
		if !gotTargets[name] {
			t.Errorf("the gateway does not send to %s", name)
		}
		if h := host(t, env(service(t, p, name), "LISTEN")); h != "0.0.0.0" && h != "" {
			t.Errorf("%s: LISTEN host %s is not reachable from the gateway container", name, h)
		}
	}
	gw := service(t, p, "gateway")
	published := false
	for _, pc := range gw.Ports {
		published = published || strconv.Itoa(int(pc.Target)) == port(t, cfg.Listen)
	}
	if !published {
		t.Errorf("gateway listens on %s but publishes %v", cfg.Listen, gw.Ports)
	}
	if h := host(t, cfg.Listen); h != "0.0.0.0" && h != "" {
		t.Errorf("gateway listen %s is not reachable through the published port", cfg.Listen)
	}
}

// collectorConfig is the part of otel-collector.yaml the tests read.
type collectorConfig struct {
	Receivers struct {
		OTLP struct {
			Protocols struct {
				GRPC struct {
					Endpoint string `yaml:"endpoint"`
				} `yaml:"grpc"`
				HTTP struct {
					Endpoint string `yaml:"endpoint"`
				} `yaml:"http"`
			} `yaml:"protocols"`
		} `yaml:"otlp"`
	} `yaml:"receivers"`
	Exporters map[string]struct {
		Endpoint string `yaml:"endpoint"`
	} `yaml:"exporters"`
	Service struct {
		Telemetry struct {
			Metrics struct {
				Readers []struct {
					Pull struct {
						Exporter struct {
							Prometheus struct {
								Port int `yaml:"port"`
							} `yaml:"prometheus"`
						} `yaml:"exporter"`
					} `yaml:"pull"`
				} `yaml:"readers"`
			} `yaml:"metrics"`
		} `yaml:"telemetry"`
		Pipelines map[string]struct {
			Receivers []string `yaml:"receivers"`
			Exporters []string `yaml:"exporters"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
}

// TestTracesReachJaeger follows a span: each wardgate service exports OTLP
// to the collector's receiver for its protocol, and the collector's traces
// pipeline exports to the jaeger service's OTLP port.
func TestTracesReachJaeger(t *testing.T) {
	p := loadProject(t)
	var col collectorConfig
	readYAML(t, mountSource(t, service(t, p, "otel-collector"), "/etc/otelcol/config.yaml"), &col)
	receiverPort := map[string]string{
		"grpc":          port(t, col.Receivers.OTLP.Protocols.GRPC.Endpoint),
		"http/protobuf": port(t, col.Receivers.OTLP.Protocols.HTTP.Endpoint),
	}
	for _, name := range append([]string{"gateway"}, jobqueues...) {
		s := service(t, p, name)
		if got := env(s, "OTEL_TRACES_EXPORTER"); got != "otlp" {
			t.Errorf("%s: OTEL_TRACES_EXPORTER=%q, want otlp", name, got)
		}
		if env(s, "OTEL_SERVICE_NAME") == "" {
			t.Errorf("%s: no OTEL_SERVICE_NAME", name)
		}
		ep := env(s, "OTEL_EXPORTER_OTLP_ENDPOINT")
		if ep == "" {
			t.Errorf("%s: no OTEL_EXPORTER_OTLP_ENDPOINT", name)
			continue
		}
		if h := host(t, ep); h != "otel-collector" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT %s does not point at the otel-collector service", name, ep)
		}
		proto := env(s, "OTEL_EXPORTER_OTLP_PROTOCOL")
		if proto == "" {
			proto = "http/protobuf" // the OTel SDK default
		}
		if want, ok := receiverPort[proto]; !ok || port(t, ep) != want {
			t.Errorf("%s: sends OTLP %s to port %s; the collector receives %s on port %s", name, proto, port(t, ep), proto, want)
		}
	}
	traces, ok := col.Service.Pipelines["traces"]
	if !ok || !slices.Contains(traces.Receivers, "otlp") {
		t.Fatalf("collector has no traces pipeline receiving otlp: %+v", col.Service.Pipelines)
	}
	toJaeger := false
	for _, name := range traces.Exporters {
		exp, ok := col.Exporters[name]
		if !ok {
			t.Errorf("traces pipeline exports to %s, which is not configured", name)
			continue
		}
		if strings.HasPrefix(name, "otlp") && host(t, exp.Endpoint) == "jaeger" {
			toJaeger = true
			if port(t, exp.Endpoint) != "4317" {
				t.Errorf("exporter %s sends to %s; Jaeger receives OTLP/gRPC on 4317", name, exp.Endpoint)
			}
		}
	}
	if !toJaeger {
		t.Errorf("the collector's traces pipeline does not export to the jaeger service")
	}
	if _, err := p.GetService("jaeger"); err != nil {
		t.Error(err)
	}
}

// TestHealthchecksProbeConfiguredPorts checks the wardgate healthchecks
// use the probe subcommand of the binary the Dockerfile installs, on a
// port the service listens on.
func TestHealthchecksProbeConfiguredPorts(t *testing.T) {
	p := loadProject(t)
	cfg := gatewayConfig(t, p)
	ports := map[string][]string{"gateway": {port(t, cfg.Listen), port(t, cfg.Admin)}}
	for _, name := range jobqueues {
		s := service(t, p, name)
		ports[name] = []string{port(t, env(s, "LISTEN")), port(t, env(s, "ADMIN_LISTEN"))}
	}
	for name, ps := range ports {
		hc := service(t, p, name).HealthCheck
		if hc == nil {
			t.Errorf("%s: no healthcheck", name)
			continue
		}
		test := []string(hc.Test)
		if len(test) != 4 || test[0] != "CMD" || test[1] != "/usr/local/bin/wardgate" || test[2] != "probe" {
			t.Errorf("%s: healthcheck %q, want [CMD /usr/local/bin/wardgate probe URL] (the image is distroless: no shell, no curl)", name, test)
			continue
		}
		if !slices.Contains(ps, port(t, test[3])) {
			t.Errorf("%s: healthcheck probes %s; the service listens on ports %v", name, test[3], ps)
		}
	}
}

func TestDockerfileBuildsStaticBinary(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var build, installed bool
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "RUN" && slices.Contains(f, "CGO_ENABLED=0") && slices.Contains(f, "build") && slices.Contains(f, "./cmd/wardgate") {
			build = true
		}
		if len(f) > 1 && f[0] == "COPY" && strings.HasPrefix(line, "COPY --from=") && slices.Contains(f, "/usr/local/bin/wardgate") {
			installed = true
		}
	}
	if !build {
		t.Errorf("Dockerfile has no RUN CGO_ENABLED=0 go build ... ./cmd/wardgate: the distroless static image needs a static binary")
	}
	if !installed {
		t.Errorf("Dockerfile does not install the binary at /usr/local/bin/wardgate, where the healthchecks run it")
	}
}

func TestPromtoolChecksPrometheusConfig(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (scripts/install-test-deps.sh installs it): %v", err)
	}
	out, err := exec.Command(promtool, "check", "config", "prometheus.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config deploy/prometheus.yml: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool did not report SUCCESS:\n%s", out)
	}
}

// TestGrafanaProvisioning checks the datasources point at the prometheus
// and jaeger services, exemplars link to the Jaeger datasource, and the
// dashboard provider reads the folder where docker-compose.yml mounts the
// repository's dashboards/.
func TestGrafanaProvisioning(t *testing.T) {
	p := loadProject(t)
	gf := service(t, p, "grafana")
	prov := mountSource(t, gf, "/etc/grafana/provisioning")

	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name     string `yaml:"name"`
			UID      string `yaml:"uid"`
			Type     string `yaml:"type"`
			URL      string `yaml:"url"`
			JSONData struct {
				ExemplarTraceIDDestinations []struct {
					Name          string `yaml:"name"`
					DatasourceUID string `yaml:"datasourceUid"`
				} `yaml:"exemplarTraceIdDestinations"`
			} `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(prov, "datasources", "datasources.yaml"), &ds)
	if ds.APIVersion != 1 {
		t.Errorf("datasources apiVersion %d, want 1", ds.APIVersion)
	}
	uids := map[string]string{}
	for _, d := range ds.Datasources {
		uids[d.UID] = d.Type
	}
	var prom, jaeger bool
	for _, d := range ds.Datasources {
		switch d.Type {
		case "prometheus":
			prom = true
			if host(t, d.URL) != "prometheus" || port(t, d.URL) != "9090" {
				t.Errorf("prometheus datasource url %s is not the prometheus service on 9090", d.URL)
			}
			if len(d.JSONData.ExemplarTraceIDDestinations) == 0 {
				t.Errorf("prometheus datasource has no exemplarTraceIdDestinations: exemplars would not link to traces")
			}
			for _, e := range d.JSONData.ExemplarTraceIDDestinations {
				if e.Name != "trace_id" {
					t.Errorf("exemplar label %q; the OTel Prometheus exporter labels exemplars trace_id", e.Name)
				}
				if uids[e.DatasourceUID] != "jaeger" {
					t.Errorf("exemplars link to datasource uid %q, which is not the Jaeger datasource", e.DatasourceUID)
				}
			}
		case "jaeger":
			jaeger = true
			if host(t, d.URL) != "jaeger" || port(t, d.URL) != "16686" {
				t.Errorf("jaeger datasource url %s is not the jaeger service on 16686", d.URL)
			}
		}
	}
	if !prom || !jaeger {
		t.Errorf("provisioned datasources: prometheus %v, jaeger %v; want both", prom, jaeger)
	}

	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name    string `yaml:"name"`
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(prov, "dashboards", "dashboards.yaml"), &dp)
	if dp.APIVersion != 1 || len(dp.Providers) == 0 {
		t.Fatalf("dashboard provisioning: apiVersion %d, %d providers", dp.APIVersion, len(dp.Providers))
	}
	for _, pr := range dp.Providers {
		if pr.Type != "file" {
			t.Errorf("provider %s type %q, want file", pr.Name, pr.Type)
			continue
		}
		src := mountSource(t, gf, pr.Options.Path)
		want, _ := filepath.Abs(filepath.Join(repoRoot, "dashboards"))
		if src != want {
			t.Errorf("provider %s reads %s, mounted from %s; want the repository's dashboards/", pr.Name, pr.Options.Path, src)
		}
		files, _ := filepath.Glob(filepath.Join(src, "*.json"))
		for _, name := range []string{"gateway.json", "jobqueue.json", "go-runtime.json", "diagnostics.json"} {
			if !slices.Contains(files, filepath.Join(src, name)) {
				t.Errorf("provider %s: %s is not in %s", pr.Name, name, src)
			}
		}
	}
}

// TestJobqueueRunsWithComposeEnvironment starts the real binary with the
// environment docker-compose.yml gives jobqueue-1, so a value the job
// queue refuses (exit 2 naming the variable) fails here rather than in a
// user's container, then runs the service's healthcheck command against
// it. Only what cannot work outside the compose network is replaced: the
// listen addresses (free loopback ports), the S3 endpoint (mem://) and
// the collector address (a closed loopback port).
func TestJobqueueRunsWithComposeEnvironment(t *testing.T) {
	p := loadProject(t)
	s := service(t, p, "jobqueue-1")
	bin := buildWardgate(t)

	envv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range s.Environment {
		if v != nil {
			envv = append(envv, k+"="+*v)
		}
	}
	envv = append(envv,
		"LISTEN=127.0.0.1:0", "ADMIN_LISTEN=127.0.0.1:0", "BLOB_URL=mem://",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:"+closedPort(t))
	cmd := exec.Command(bin, s.Command...)
	cmd.Env = envv
	cmd.Dir = t.TempDir()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "listening ") {
				lines <- sc.Text()
			}
		}
	}()
	go func() { exited <- cmd.Wait() }()
	var public, admin string
	select {
	case l := <-lines:
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, "public="); ok {
				public = v
			}
			if v, ok := strings.CutPrefix(f, "admin="); ok {
				admin = v
			}
		}
	case err := <-exited:
		t.Fatalf("wardgate %v with the compose environment of jobqueue-1 exited: %v\n%s", s.Command, err, stderr.String())
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("no \"listening\" line within 60s\n%s", stderr.String())
	}

	// The healthcheck, with the binary and addresses of this run.
	test := []string(s.HealthCheck.Test)
	u, err := url.Parse(test[len(test)-1])
	if err != nil {
		t.Fatal(err)
	}
	switch u.Port() {
	case port(t, env(s, "LISTEN")):
		u.Host = public
	case port(t, env(s, "ADMIN_LISTEN")):
		u.Host = admin
	default:
		t.Fatalf("healthcheck %s probes neither LISTEN nor ADMIN_LISTEN", u)
	}
	args := append(append([]string(nil), test[2:len(test)-1]...), u.String())
	testutil.Eventually(context.Background(), t, 30*time.Second, 200*time.Millisecond, fmt.Sprintf("healthcheck %v", args), func() (bool, string) {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			return false, fmt.Sprintf("%v\n%s", err, out)
		}
		return true, ""
	})

	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("jobqueue did not exit 0 on SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Errorf("jobqueue did not stop within 60s of SIGTERM")
	}
}

// buildWardgate builds ./cmd/wardgate into a temporary directory.
func buildWardgate(t *testing.T) string {
	t.Helper()
	return testutil.BuildT(context.Background(), t, "wardgate", testutil.WardgatePkg)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	return strconv.Itoa(testutil.FreePort(t))
}
