package deploy

// The Kubernetes manifests of deploy/kubernetes are checked the way
// compose_test.go checks docker-compose.yml: there is no cluster where the
// tests run, so they check what the API server and kubelet would see. Each
// kustomization is built with the kustomize Go API (what `kubectl apply -k`
// runs), every object of the output is decoded strictly into the real
// Kubernetes API types (an unknown or misspelt field fails), and the ports,
// environment variables, flags and probe paths are checked against the
// wardgate binary: its --help, its config loader, and the binary itself
// started with the manifests' environment and probed the way the kubelet
// would.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	yaml3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/wardgate/wardgate/diag/upload"
	"github.com/wardgate/wardgate/gateway"
	"github.com/wardgate/wardgate/internal/testutil"
	"github.com/wardgate/wardgate/telemetry"
)

// kustomizations are every entry point a user applies with kubectl -k.
var kustomizations = []string{"kubernetes/base", "kubernetes/overlays/example", "kubernetes/overlays/prometheus-operator"}

// built is the decoded output of one kustomization.
type built struct {
	dir         string
	namespaces  []corev1.Namespace
	secrets     map[string]corev1.Secret
	configMaps  map[string]corev1.ConfigMap
	services    []corev1.Service
	deployments map[string]appsv1.Deployment
	podMonitors []monitoringv1.PodMonitor
}

// build runs kustomize on dir and decodes every object strictly.
func build(t *testing.T, dir string) *built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := &built{dir: dir, secrets: map[string]corev1.Secret{}, configMaps: map[string]corev1.ConfigMap{}, deployments: map[string]appsv1.Deployment{}}
	for _, r := range m.Resources() {
		data, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("%s: %s %s", dir, r.GetKind(), r.GetName())
		strict := func(v any) {
			t.Helper()
			if err := yaml.UnmarshalStrict(data, v); err != nil {
				t.Fatalf("%s does not decode strictly: %v", what, err)
			}
		}
		switch gvk := r.GetGvk(); gvk.ApiVersion() + "/" + gvk.Kind {
		case "v1/Namespace":
			var o corev1.Namespace
			strict(&o)
			b.namespaces = append(b.namespaces, o)
		case "v1/Secret":
			var o corev1.Secret
			strict(&o)
			b.secrets[o.Name] = o
		case "v1/ConfigMap":
			var o corev1.ConfigMap
			strict(&o)
			b.configMaps[o.Name] = o
		case "v1/Service":
			var o corev1.Service
			strict(&o)
			b.services = append(b.services, o)
		case "apps/v1/Deployment":
			var o appsv1.Deployment
			strict(&o)
			b.deployments[o.Name] = o
		case "monitoring.coreos.com/v1/PodMonitor":
			var o monitoringv1.PodMonitor
			strict(&o)
			b.podMonitors = append(b.podMonitors, o)
		default:
			t.Fatalf("%s: kind %s is not checked by this test: add it", what, gvk)
		}
	}
	for _, name := range []string{"wardgate-gateway", "wardgate-jobqueue"} {
		if _, ok := b.deployments[name]; !ok {
			t.Fatalf("%s: no Deployment %s", dir, name)
		}
	}
	return b
}

func buildAll(t *testing.T) []*built {
	t.Helper()
	var out []*built
	for _, dir := range kustomizations {
		out = append(out, build(t, dir))
	}
	return out
}

// isBase reports whether b is the base, which leaves Secrets to overlays.
func (b *built) isBase() bool { return strings.HasSuffix(b.dir, "/base") }

func (b *built) container(t *testing.T, deployment string) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d := b.deployments[deployment]
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%s: Deployment %s: want one container, got %d", b.dir, deployment, len(d.Spec.Template.Spec.Containers))
	}
	return &d, d.Spec.Template.Spec.Containers[0]
}

// envValue returns the literal value of name in c ("" and false if it is
// absent or comes from a reference).
func envValue(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

func mustEnv(t *testing.T, c corev1.Container, name string) string {
	t.Helper()
	v, ok := envValue(c, name)
	if !ok {
		t.Fatalf("container %s: no literal %s", c.Name, name)
	}
	return v
}

// containerPort resolves a port by name or number to a declared
// containerPort; it fails if the container declares no such port.
func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s declares no port %s", c.Name, p.String())
	return 0
}

func namedPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	return containerPort(t, c, intstr.FromString(name))
}

func portOf(t *testing.T, hostport string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	return int32(n)
}

// flagValue returns the value after flag in args.
func flagValue(args []string, flag string) (string, bool) {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

// gatewayConfigFlag is the flag of `wardgate up --only gateway` that names
// the gateway's config file.
const gatewayConfigFlag = "--gateway-config"

// gatewayFile is the gateway config file of the gateway Deployment: the
// ConfigMap key mounted at the path of --gateway-config.
func (b *built) gatewayFile(t *testing.T) (path string, data []byte) {
	t.Helper()
	d, c := b.container(t, "wardgate-gateway")
	path, ok := flagValue(c.Args, gatewayConfigFlag)
	if !ok {
		t.Fatalf("%s: gateway args %q have no %s", b.dir, c.Args, gatewayConfigFlag)
	}
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			if v.ConfigMap == nil {
				t.Fatalf("%s: --config %s is on volume %s, not a ConfigMap", b.dir, path, v.Name)
			}
			cm, ok := b.configMaps[v.ConfigMap.Name]
			if !ok {
				t.Fatalf("%s: volume %s names ConfigMap %s, which is not in the build", b.dir, v.Name, v.ConfigMap.Name)
			}
			s, ok := cm.Data[filepath.ToSlash(rel)]
			if !ok {
				t.Fatalf("%s: ConfigMap %s has no key %s (--config %s)", b.dir, cm.Name, rel, path)
			}
			return path, []byte(s)
		}
	}
	t.Fatalf("%s: nothing is mounted at --config %s", b.dir, path)
	return "", nil
}

// discoverConfig is the `discover:` block of an upstream (issue #15 item
// 1): targets from the A/AAAA or SRV records of a name.
type discoverConfig struct {
	Name     string `yaml:"name"`
	Port     int32  `yaml:"port"`
	Type     string `yaml:"type"`
	Interval string `yaml:"interval"`
}

// staticGatewayConfig parses the gateway config generically and returns
// it with every `discover:` replaced by `targets:` pointing at target, so
// that the gateway's own strict loader checks everything else in it, and
// the discover blocks by upstream name.
func staticGatewayConfig(t *testing.T, data []byte, target string) ([]byte, map[string]discoverConfig) {
	t.Helper()
	var doc map[string]any
	if err := yaml3.Unmarshal(data, &doc); err != nil {
		t.Fatalf("gateway config: %v", err)
	}
	discovers := map[string]discoverConfig{}
	ups, _ := doc["upstreams"].(map[string]any)
	for name, u := range ups {
		um, _ := u.(map[string]any)
		d, ok := um["discover"]
		if !ok {
			continue
		}
		raw, err := yaml3.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var dc discoverConfig
		dec := yaml3.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&dc); err != nil {
			t.Fatalf("upstream %s: discover: %v", name, err)
		}
		discovers[name] = dc
		delete(um, "discover")
		um["targets"] = []any{map[string]any{"url": target}}
	}
	out, err := yaml3.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out, discovers
}

// loaderKnowsDiscover reports whether gateway.Upstream has a discover:
// field, i.e. whether issue #15 item 1 is in this build.
func loaderKnowsDiscover() bool {
	ut := reflect.TypeFor[gateway.Upstream]()
	for i := range ut.NumField() {
		if name, _, _ := strings.Cut(ut.Field(i).Tag.Get("yaml"), ","); name == "discover" {
			return true
		}
	}
	return false
}

func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	for _, b := range buildAll(t) {
		if len(b.services) != 2 || len(b.configMaps) != 1 {
			t.Errorf("%s: want 2 Services and 1 ConfigMap, got %d and %d", b.dir, len(b.services), len(b.configMaps))
		}
		// The base holds no Secret: applying an overlay must never
		// overwrite a real Secret with a placeholder. The overlays bring
		// them.
		if b.isBase() && len(b.secrets) > 0 {
			t.Errorf("%s: the base holds Secrets; keep them in the overlays", b.dir)
		}
		for _, name := range []string{"wardgate-s3", "wardgate-admin"} {
			if _, ok := b.secrets[name]; !ok && !b.isBase() {
				t.Errorf("%s: no Secret %s", b.dir, name)
			}
		}
		wantPM := strings.HasSuffix(b.dir, "prometheus-operator")
		if (len(b.podMonitors) > 0) != wantPM {
			t.Errorf("%s: %d PodMonitors; only the prometheus-operator overlay may have one (its CRD may be absent)", b.dir, len(b.podMonitors))
		}
	}
}

// TestKubernetesServicesExposeOnlyPublicPorts: the gateway's Service
// reaches its public listener, the job queue's is headless on the port the
// gateway discovers, and no Service reaches an admin listener.
func TestKubernetesServicesExposeOnlyPublicPorts(t *testing.T) {
	for _, b := range buildAll(t) {
		_, data := b.gatewayFile(t)
		var gw struct{ Listen, Admin string }
		if err := yaml3.Unmarshal(data, &gw); err != nil {
			t.Fatal(err)
		}
		_, gc := b.container(t, "wardgate-gateway")
		_, jc := b.container(t, "wardgate-jobqueue")
		if got, want := namedPort(t, gc, "http"), portOf(t, gw.Listen); got != want {
			t.Errorf("%s: gateway containerPort http %d, config listen %s", b.dir, got, gw.Listen)
		}
		if got, want := namedPort(t, gc, "admin"), portOf(t, gw.Admin); got != want {
			t.Errorf("%s: gateway containerPort admin %d, config admin %s", b.dir, got, gw.Admin)
		}
		if got, want := namedPort(t, jc, "http"), portOf(t, mustEnv(t, jc, "LISTEN")); got != want {
			t.Errorf("%s: jobqueue containerPort http %d, LISTEN port %d", b.dir, got, want)
		}
		if got, want := namedPort(t, jc, "admin"), portOf(t, mustEnv(t, jc, "ADMIN_LISTEN")); got != want {
			t.Errorf("%s: jobqueue containerPort admin %d, ADMIN_LISTEN port %d", b.dir, got, want)
		}
		// Probes and scrapes come from outside the pod: every listener
		// binds all interfaces.
		for what, addr := range map[string]string{"gateway listen": gw.Listen, "gateway admin": gw.Admin,
			"LISTEN": mustEnv(t, jc, "LISTEN"), "ADMIN_LISTEN": mustEnv(t, jc, "ADMIN_LISTEN")} {
			if h, _, _ := net.SplitHostPort(addr); h != "0.0.0.0" && h != "" && h != "::" {
				t.Errorf("%s: %s %s is not reachable on the pod IP", b.dir, what, addr)
			}
		}

		selected := map[string]bool{}
		for _, s := range b.services {
			var d *appsv1.Deployment
			for name := range b.deployments {
				dd := b.deployments[name]
				if len(s.Spec.Selector) > 0 && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(dd.Spec.Template.Labels)) {
					if d != nil {
						t.Errorf("%s: Service %s selects both %s and %s", b.dir, s.Name, d.Name, dd.Name)
					}
					d = &dd
				}
			}
			if d == nil {
				t.Errorf("%s: Service %s selects no pods", b.dir, s.Name)
				continue
			}
			selected[d.Name] = true
			c := d.Spec.Template.Spec.Containers[0]
			for _, sp := range s.Spec.Ports {
				if cp := containerPort(t, c, sp.TargetPort); cp == namedPort(t, c, "admin") {
					t.Errorf("%s: Service %s exposes the admin port %d of %s", b.dir, s.Name, cp, d.Name)
				}
				if cp := containerPort(t, c, sp.TargetPort); cp != namedPort(t, c, "http") {
					t.Errorf("%s: Service %s port %d reaches %d, not the public listener", b.dir, s.Name, sp.Port, cp)
				}
			}
			if d.Name == "wardgate-jobqueue" && s.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("%s: the job queue's Service %s is not headless (clusterIP: None): DNS would answer one virtual IP, hiding the pods from the gateway's balancer", b.dir, s.Name)
			}
		}
		for name := range b.deployments {
			if !selected[name] {
				t.Errorf("%s: no Service selects %s", b.dir, name)
			}
		}
	}
}

// TestKubernetesGatewayDiscoversJobqueues: the gateway's config is valid
// for the gateway's own loader, and its discover: block names the job
// queue's headless Service, in the namespace the build puts it in, on the
// job queue's public port. The discover: block itself is parsed here
// (issue #15 item 1 adds it to the loader), the rest by gateway.Load.
func TestKubernetesGatewayDiscoversJobqueues(t *testing.T) {
	for _, b := range buildAll(t) {
		_, data := b.gatewayFile(t)
		static, discovers := staticGatewayConfig(t, data, "http://127.0.0.1:9001")
		path := filepath.Join(t.TempDir(), "gateway.yaml")
		if err := os.WriteFile(path, static, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := gateway.Load(path)
		if err != nil {
			t.Fatalf("%s: gateway config (discover: replaced by targets:): %v", b.dir, err)
		}
		// Once the loader knows discover: (issue #15 item 1), the file
		// as shipped must load too.
		if loaderKnowsDiscover() {
			orig := filepath.Join(t.TempDir(), "gateway.yaml")
			if err := os.WriteFile(orig, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := gateway.Load(orig); err != nil {
				t.Errorf("%s: the gateway refuses the shipped config: %v", b.dir, err)
			}
		}
		if cfg.AdminToken != "" {
			t.Errorf("%s: the gateway config holds an admin_token: it belongs in the wardgate-admin Secret", b.dir)
		}
		dc, ok := discovers["jobqueue"]
		if !ok {
			t.Fatalf("%s: upstream jobqueue has no discover: block", b.dir)
		}
		jq := b.deployments["wardgate-jobqueue"]
		_, jc := b.container(t, "wardgate-jobqueue")
		var svc *corev1.Service
		for i, s := range b.services {
			if s.Spec.ClusterIP == corev1.ClusterIPNone && labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(jq.Spec.Template.Labels)) {
				svc = &b.services[i]
			}
		}
		if svc == nil {
			t.Fatalf("%s: no headless Service selects the job queue", b.dir)
		}
		if want := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace); dc.Name != want && dc.Name != want+"." {
			t.Errorf("%s: discover name %q, want the headless Service %q", b.dir, dc.Name, want)
		}
		if dc.Port != namedPort(t, jc, "http") {
			t.Errorf("%s: discover port %d, the job queue listens on %d", b.dir, dc.Port, namedPort(t, jc, "http"))
		}
		if dc.Type != "a" {
			t.Errorf("%s: discover type %q: a headless Service's A records carry no port, SRV needs a named port query; want a", b.dir, dc.Type)
		}
		if d, err := time.ParseDuration(dc.Interval); err != nil || d <= 0 {
			t.Errorf("%s: discover interval %q: %v", b.dir, dc.Interval, err)
		}
		for _, route := range cfg.Routes {
			if _, ok := cfg.Upstreams[route.Upstream]; !ok {
				t.Errorf("%s: route %s names unknown upstream %s", b.dir, route.PathPrefix, route.Upstream)
			}
		}
	}
}

// helpEnvNames returns the environment variables `wardgate jobqueue
// --help` documents.
func helpEnvNames(t *testing.T, bin string) map[string]bool {
	t.Helper()
	out, err := exec.Command(bin, "jobqueue", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("wardgate jobqueue --help: %v\n%s", err, out)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  (?:--[a-z-]+ / )?([A-Z][A-Z0-9_]+)`).FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	if !names["LISTEN"] || !names["ADMIN_TOKEN"] || !names["DRAIN_TIMEOUT"] {
		t.Fatalf("could not read the settings from wardgate jobqueue --help:\n%s", out)
	}
	return names
}

// outsideEnv are variables the binary reads through libraries or the Go
// runtime, or that only feed $(VAR) references in the manifests.
func outsideEnv(name string) bool {
	return strings.HasPrefix(name, "OTEL_") || strings.HasPrefix(name, "AWS_") ||
		name == telemetry.AdminTokenFileEnv || // telemetry.Setup reads it
		name == upload.Env || // `wardgate up` reads it (checked against up --help)
		name == "GOTRACEBACK" || name == "POD_NAME" || name == "POD_NAMESPACE"
}

// TestKubernetesEnvAndFlagsMatchTheBinary: every variable and flag the
// manifests set is one the binary reads; references resolve to objects of
// the build; the pods are set up for crashes and tracing.
func TestKubernetesEnvAndFlagsMatchTheBinary(t *testing.T) {
	bin := buildWardgate(t)
	settings := helpEnvNames(t, bin)
	upHelp, _ := exec.Command(bin, "up", "--help").CombinedOutput()
	out, _ := exec.Command(bin, "jobqueue", "--help").CombinedOutput()
	jqHelp := string(out)
	if !strings.Contains(string(upHelp), upload.Env) {
		t.Fatalf("`wardgate up --help` does not name %s", upload.Env)
	}
	for _, b := range buildAll(t) {
		for _, name := range []string{"wardgate-gateway", "wardgate-jobqueue"} {
			_, c := b.container(t, name)
			defined := map[string]bool{}
			for _, e := range c.Env {
				if name == "wardgate-jobqueue" && !settings[e.Name] && !outsideEnv(e.Name) {
					t.Errorf("%s: %s sets %s, which `wardgate jobqueue --help` does not know", b.dir, name, e.Name)
				}
				if name == "wardgate-gateway" && !outsideEnv(e.Name) {
					t.Errorf("%s: %s sets %s, which the gateway does not read", b.dir, name, e.Name)
				}
				for _, ref := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(e.Value, -1) {
					if !defined[ref[1]] {
						t.Errorf("%s: %s: %s uses $(%s) before it is defined (the kubelet would pass it literally)", b.dir, name, e.Name, ref[1])
					}
				}
				defined[e.Name] = true
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef
					s, ok := b.secrets[ref.Name]
					if _, has := s.StringData[ref.Key]; !b.isBase() && (!ok || (!has && s.Data[ref.Key] == nil)) {
						t.Errorf("%s: %s: %s names key %s of Secret %s, not in the build", b.dir, name, e.Name, ref.Key, ref.Name)
					}
				}
			}
			// ADMIN_TOKEN (or admin_token) would close /metrics and
			// /healthz too; the token file closes only /debug/pprof/.
			if slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "ADMIN_TOKEN" }) {
				t.Errorf("%s: %s sets ADMIN_TOKEN: the kubelet's probes and Prometheus would get 401", b.dir, name)
			}
			b.adminTokenFile(t, name)
			if v, _ := envValue(c, "GOTRACEBACK"); v != "crash" {
				t.Errorf("%s: %s: GOTRACEBACK=%q, want crash", b.dir, name, v)
			}
			for _, k := range []string{"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER"} {
				if v, _ := envValue(c, k); v == "" {
					t.Errorf("%s: %s: no %s", b.dir, name, k)
				}
			}
			if u, err := url.Parse(mustEnv(t, c, "OTEL_EXPORTER_OTLP_ENDPOINT")); err != nil || u.Port() != "4318" || mustEnv(t, c, "OTEL_EXPORTER_OTLP_PROTOCOL") != "http/protobuf" {
				t.Errorf("%s: %s: OTEL_EXPORTER_OTLP_ENDPOINT %q is not the collector's OTLP/HTTP port 4318", b.dir, name, mustEnv(t, c, "OTEL_EXPORTER_OTLP_ENDPOINT"))
			}
			// The entrypoint is up supervising the one service, so a
			// crash leaves a post-mortem that is uploaded.
			only, _ := flagValue(c.Args, "--only")
			if len(c.Args) == 0 || c.Args[0] != "up" || "wardgate-"+only != name {
				t.Errorf("%s: %s runs %q, want up --only %s", b.dir, name, c.Args, strings.TrimPrefix(name, "wardgate-"))
			}
			for _, a := range c.Args[1:] {
				if f, ok := strings.CutPrefix(a, "--"); ok && !strings.Contains(string(upHelp), "-"+strings.SplitN(f, "=", 2)[0]+" ") {
					t.Errorf("%s: %s: flag %s is not in `wardgate up --help`", b.dir, name, a)
				}
			}
			// up's own metrics (restarts, post-mortems of the service) are
			// where a crash shows: its admin must be on the pod IP at the
			// up-admin port the PodMonitor scrapes.
			if v, ok := flagValue(c.Args, "--admin"); !ok || !strings.HasPrefix(v, "0.0.0.0:") || portOf(t, v) != namedPort(t, c, "up-admin") {
				t.Errorf("%s: %s: up's --admin %q is not 0.0.0.0 on the up-admin port", b.dir, name, v)
			}
			if v, _ := envValue(c, upload.Env); !strings.HasPrefix(v, "s3://") {
				t.Errorf("%s: %s: %s=%q: post-mortems would stay in the pod", b.dir, name, upload.Env, v)
			}
		}
		// The job queue's readiness must be the endpoint that turns 503 on
		// SIGTERM, so the pod leaves the headless Service's answers (and
		// the gateway's health checks) while it drains.
		_, jc := b.container(t, "wardgate-jobqueue")
		if !strings.Contains(jqHelp, "/readyz") {
			t.Fatalf("`wardgate jobqueue --help` no longer names /readyz")
		}
		if p := jc.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || containerPort(t, jc, p.HTTPGet.Port) != namedPort(t, jc, "http") {
			t.Errorf("%s: the job queue's readiness probe is not /readyz on its public port", b.dir)
		}
	}
}

// adminTokenFile checks that WARDGATE_ADMIN_TOKEN_FILE of a Deployment
// names a key of a Secret in the build, mounted read-only, and returns
// that Secret's value.
func (b *built) adminTokenFile(t *testing.T, deployment string) string {
	t.Helper()
	d, c := b.container(t, deployment)
	path, ok := envValue(c, telemetry.AdminTokenFileEnv)
	if !ok {
		t.Fatalf("%s: %s: no %s: /debug/pprof/ would be open on the pod IP", b.dir, deployment, telemetry.AdminTokenFileEnv)
	}
	for _, m := range c.VolumeMounts {
		if filepath.Dir(path) != m.MountPath {
			continue
		}
		i := slices.IndexFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 || d.Spec.Template.Spec.Volumes[i].Secret == nil || !m.ReadOnly {
			t.Fatalf("%s: %s: %s is not on a read-only Secret volume", b.dir, deployment, path)
		}
		name := d.Spec.Template.Spec.Volumes[i].Secret.SecretName
		if b.isBase() {
			if name != "wardgate-admin" {
				t.Errorf("%s: %s: the token comes from Secret %s; the runbook and the overlays make wardgate-admin", b.dir, deployment, name)
			}
			return ""
		}
		sec, ok := b.secrets[name]
		tok := sec.StringData[filepath.Base(path)]
		if !ok || tok == "" {
			t.Fatalf("%s: %s: %s: the Secret has no key %s", b.dir, deployment, path, filepath.Base(path))
		}
		return tok
	}
	t.Fatalf("%s: %s: nothing is mounted at the directory of %s", b.dir, deployment, path)
	return ""
}

// TestKubernetesStopIsGracefulEnough: SIGKILL must not come before the
// job queue has drained (DRAIN_TIMEOUT) and spilled, nor before the
// gateway's in-flight requests have finished (--shutdown-timeout); preStop
// runs first and counts against the grace period.
func TestKubernetesStopIsGracefulEnough(t *testing.T) {
	const margin = 5 * time.Second // spill fsync, telemetry flush, a loaded node
	bin := buildWardgate(t)
	for _, b := range buildAll(t) {
		for name, budget := range map[string]string{"wardgate-jobqueue": "DRAIN_TIMEOUT", "wardgate-gateway": "--shutdown-timeout"} {
			d, c := b.container(t, name)
			var stop time.Duration
			if strings.HasPrefix(budget, "--") {
				v, ok := flagValue(c.Args, budget)
				if !ok {
					v = "15s" // the flag's default, checked below against --help
					if help, _ := exec.Command(bin, "gateway", "--help").CombinedOutput(); !strings.Contains(string(help), "(default 15s)") {
						t.Fatalf("%s: the gateway's --shutdown-timeout default changed; set it in the manifest", b.dir)
					}
				}
				stop, _ = time.ParseDuration(v)
			} else {
				v, ok := envValue(c, budget)
				if !ok {
					t.Fatalf("%s: %s: set %s explicitly so the grace period can be checked against it", b.dir, name, budget)
				}
				stop, _ = time.ParseDuration(v)
			}
			if stop <= 0 {
				t.Fatalf("%s: %s: %s is 0 or invalid: the process could wait forever, past any grace period", b.dir, name, budget)
			}
			var preStop time.Duration
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
				t.Errorf("%s: %s: no preStop: endpoints are removed while the process already refuses work", b.dir, name)
			} else if s := c.Lifecycle.PreStop.Sleep; s != nil {
				preStop = time.Duration(s.Seconds) * time.Second
			} else {
				t.Errorf("%s: %s: preStop is not a sleep action (the distroless image has no shell or sleep binary)", b.dir, name)
			}
			g := d.Spec.Template.Spec.TerminationGracePeriodSeconds
			if g == nil {
				t.Fatalf("%s: %s: no terminationGracePeriodSeconds", b.dir, name)
			}
			if grace := time.Duration(*g) * time.Second; grace < preStop+stop+margin {
				t.Errorf("%s: %s: terminationGracePeriodSeconds %s < preStop %s + %s %s + %s", b.dir, name, grace, preStop, budget, stop, margin)
			}
		}
	}
}

// TestKubernetesPodsAreRestricted: the "restricted" Pod Security Standard
// (the namespace enforces it), writable paths only on emptyDirs, and
// requests and limits on every container.
func TestKubernetesPodsAreRestricted(t *testing.T) {
	for _, b := range buildAll(t) {
		for _, ns := range b.namespaces {
			if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("%s: namespace %s does not enforce the restricted Pod Security Standard", b.dir, ns.Name)
			}
		}
		for name, d := range b.deployments {
			ps := d.Spec.Template.Spec
			what := b.dir + ": " + name
			if why := admitted(t, psaapi.LevelRestricted, &d.Spec.Template.ObjectMeta, &ps); why != "" {
				t.Errorf("%s: the restricted Pod Security Standard refuses the pod: %s", what, why)
			}
			if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
				t.Errorf("%s: runAsNonRoot is not set", what)
			}
			if ps.SecurityContext == nil || ps.SecurityContext.RunAsUser == nil || *ps.SecurityContext.RunAsUser == 0 {
				t.Errorf("%s: no non-zero runAsUser (the image's nonroot is 65532)", what)
			}
			if ps.SecurityContext == nil || ps.SecurityContext.SeccompProfile == nil || ps.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccompProfile is not RuntimeDefault", what)
			}
			if ps.HostNetwork || ps.HostPID || ps.HostIPC {
				t.Errorf("%s: uses a host namespace", what)
			}
			if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
				t.Errorf("%s: mounts a service account token it never uses", what)
			}
			c := ps.Containers[0]
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 ||
				(sc.Privileged != nil && *sc.Privileged) {
				t.Errorf("%s: container securityContext is not restricted (no privilege escalation, read-only root, drop ALL, add none): %+v", what, sc)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
				if req.IsZero() || lim.IsZero() || req.Cmp(lim) > 0 {
					t.Errorf("%s: %s request %s / limit %s", what, r, req.String(), lim.String())
				}
			}
			// Every directory the process writes is a writable emptyDir.
			writes := []string{"/tmp"}
			if v, ok := envValue(c, "SPILL_DIR"); ok && v != "off" {
				writes = append(writes, v)
			}
			for _, dir := range writes {
				ok := false
				for _, m := range c.VolumeMounts {
					if rel, err := filepath.Rel(m.MountPath, dir); err == nil && !strings.HasPrefix(rel, "..") && !m.ReadOnly {
						i := slices.IndexFunc(ps.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
						ok = i >= 0 && ps.Volumes[i].EmptyDir != nil
					}
				}
				if !ok {
					t.Errorf("%s: %s is not on a writable emptyDir (the root filesystem is read-only)", what, dir)
				}
			}
		}
	}
}

// admitted evaluates a pod against a Pod Security Standard level with the
// API server's own admission checks (k8s.io/pod-security-admission); ""
// means allowed, else the reasons.
func admitted(t *testing.T, level psaapi.Level, meta *metav1.ObjectMeta, spec *corev1.PodSpec) string {
	t.Helper()
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := policy.AggregateCheckResults(e.EvaluatePod(psaapi.LevelVersion{Level: level, Version: psaapi.LatestVersion()}, meta, spec))
	if r.Allowed {
		return ""
	}
	return r.ForbiddenReason() + ": " + r.ForbiddenDetail()
}

// TestKubernetesDebugContainersAgainstPodSecurity checks what the runbook
// says about ephemeral containers in the restricted namespace: the
// restricted profile of kubectl debug (for goroutines, profile, triage) is
// admitted; a root container adding SYS_PTRACE (for capture) is refused
// until the namespace is relabelled privileged, and baseline is not enough.
func TestKubernetesDebugContainersAgainstPodSecurity(t *testing.T) {
	b := build(t, "kubernetes/overlays/example")
	d := b.deployments["wardgate-jobqueue"]
	no, yes := false, true
	root := int64(0)
	withDebug := func(sc *corev1.SecurityContext) *corev1.PodSpec {
		ps := d.Spec.Template.Spec.DeepCopy()
		ps.EphemeralContainers = []corev1.EphemeralContainer{{
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: "wardgate", SecurityContext: sc},
			TargetContainerName:      "jobqueue",
		}}
		return ps
	}
	// What kubectl debug --profile=restricted sets.
	restricted := withDebug(&corev1.SecurityContext{
		RunAsNonRoot: &yes, AllowPrivilegeEscalation: &no,
		Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	})
	if why := admitted(t, psaapi.LevelRestricted, &d.Spec.Template.ObjectMeta, restricted); why != "" {
		t.Errorf("kubectl debug --profile=restricted would be refused: %s", why)
	}
	// The runbook's --custom for capture.
	ptrace := withDebug(&corev1.SecurityContext{
		RunAsUser: &root, RunAsNonRoot: &no,
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_PTRACE"}},
	})
	for _, level := range []psaapi.Level{psaapi.LevelRestricted, psaapi.LevelBaseline} {
		if why := admitted(t, level, &d.Spec.Template.ObjectMeta, ptrace); why == "" {
			t.Errorf("a root debug container with SYS_PTRACE is admitted at %s: the runbook says to relabel the namespace privileged", level)
		}
	}
	if why := admitted(t, psaapi.LevelPrivileged, &d.Spec.Template.ObjectMeta, ptrace); why != "" {
		t.Errorf("privileged refuses the capture container: %s", why)
	}
}

// TestKubernetesPrometheusScrapesAdminMetrics: the scrape annotations and
// the PodMonitor name the admin port, where /metrics is served.
func TestKubernetesPrometheusScrapesAdminMetrics(t *testing.T) {
	for _, b := range buildAll(t) {
		for name, d := range b.deployments {
			a := d.Spec.Template.Annotations
			_, c := b.container(t, name)
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" ||
				a["prometheus.io/port"] != strconv.Itoa(int(namedPort(t, c, "admin"))) {
				t.Errorf("%s: %s: scrape annotations %v do not name the admin port %d and /metrics", b.dir, name, a, namedPort(t, c, "admin"))
			}
		}
		for _, pm := range b.podMonitors {
			sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
			if err != nil {
				t.Fatalf("%s: PodMonitor %s: %v", b.dir, pm.Name, err)
			}
			if pm.Namespace == "" {
				t.Errorf("%s: PodMonitor %s has no namespace", b.dir, pm.Name)
			}
			for name, d := range b.deployments {
				if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("%s: PodMonitor %s does not select %s", b.dir, pm.Name, name)
				}
				if len(pm.Spec.PodMetricsEndpoints) == 0 {
					t.Errorf("%s: PodMonitor %s has no podMetricsEndpoints", b.dir, pm.Name)
				}
				for _, ep := range pm.Spec.PodMetricsEndpoints {
					if ep.Port == nil {
						t.Fatalf("%s: PodMonitor %s: an endpoint without a named port", b.dir, pm.Name)
					}
					namedPort(t, d.Spec.Template.Spec.Containers[0], *ep.Port)
					if ep.Path != "/metrics" {
						t.Errorf("%s: PodMonitor %s scrapes %s", b.dir, pm.Name, ep.Path)
					}
				}
			}
		}
	}
}

// start runs the binary with a container's args and environment, as the
// kubelet would, with what cannot work outside a cluster replaced.
func start(t *testing.T, b *built, bin string, c corev1.Container, args []string, replace map[string]string) *testutil.Proc {
	t.Helper()
	envv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for _, e := range c.Env {
		v := e.Value
		if ref := e.ValueFrom; ref != nil {
			switch {
			case ref.SecretKeyRef != nil:
				v = b.secrets[ref.SecretKeyRef.Name].StringData[ref.SecretKeyRef.Key]
			case ref.FieldRef != nil:
				v = "pod-" + ref.FieldRef.FieldPath
			}
		}
		if r, ok := replace[e.Name]; ok {
			v = r
		}
		envv = append(envv, e.Name+"="+v)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = envv
	cmd.Dir = t.TempDir()
	p := &testutil.Proc{Cmd: cmd, Stderr: &testutil.SyncBuffer{}, Exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.Stderr, p.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.Err = cmd.Wait(); close(p.Exited) }()
	t.Cleanup(func() {
		select {
		case <-p.Exited:
		default:
			_ = cmd.Process.Kill()
			<-p.Exited
		}
		if t.Failed() {
			t.Logf("wardgate %s output:\n%s", args[0], p.Stderr.String())
		}
	})
	return p
}

// withData is args with the value of --data (a volume in the pod) replaced
// by a temporary directory, and up's --admin (a fixed port in the pod) by a
// free loopback address.
func withData(t *testing.T, args []string) []string {
	t.Helper()
	args = slices.Clone(args)
	i := slices.Index(args, "--data")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("args %q have no --data (up's state must be on a writable volume)", args)
	}
	args[i+1] = t.TempDir()
	if i := slices.Index(args, "--admin"); i >= 0 && i+1 < len(args) {
		args[i+1] = testutil.FreeAddr(t)
	}
	return args
}

// probe checks every probe of c answers 2xx, with the manifest's port
// mapped to where this run listens.
func probe(t *testing.T, what string, c corev1.Container, where map[int32]string) {
	t.Helper()
	for kind, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if p == nil {
			if kind != "startup" {
				t.Errorf("%s: no %s probe", what, kind)
			}
			continue
		}
		if p.HTTPGet == nil {
			t.Errorf("%s: %s probe is not httpGet", what, kind)
			continue
		}
		addr, ok := where[containerPort(t, c, p.HTTPGet.Port)]
		if !ok {
			t.Fatalf("%s: %s probe port %s is not a listener of this run", what, kind, p.HTTPGet.Port.String())
		}
		testutil.WaitHTTPOK(context.Background(), t, "http://"+addr+p.HTTPGet.Path, 60*time.Second)
	}
}

// TestKubernetesPodsRunAndAnswerTheirProbes starts the job queue and the
// gateway with the example overlay's args and environment and runs their
// probes against them; /debug/pprof/ on the admin listeners wants the
// Secret's ADMIN_TOKEN, and the gateway proxies to the job queue.
func TestKubernetesPodsRunAndAnswerTheirProbes(t *testing.T) {
	bin := buildWardgate(t)
	b := build(t, "kubernetes/overlays/example")
	token := b.adminTokenFile(t, "wardgate-jobqueue")
	if b.adminTokenFile(t, "wardgate-gateway") != token {
		t.Fatal("the gateway and the job queue use different admin tokens")
	}
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	closed := "http://127.0.0.1:" + closedPort(t)

	_, jc := b.container(t, "wardgate-jobqueue")
	jqPub, jqAdm := testutil.FreeAddr(t), testutil.FreeAddr(t)
	spill := filepath.Join(t.TempDir(), "spill")
	jq := start(t, b, bin, jc, withData(t, jc.Args), map[string]string{
		"LISTEN": jqPub, "ADMIN_LISTEN": jqAdm, "BLOB_URL": "mem://", "SPILL_DIR": spill,
		"OTEL_EXPORTER_OTLP_ENDPOINT": closed, telemetry.AdminTokenFileEnv: tokenFile,
	})
	probe(t, "jobqueue", jc, map[int32]string{namedPort(t, jc, "http"): jqPub, namedPort(t, jc, "admin"): jqAdm})

	_, gc := b.container(t, "wardgate-gateway")
	_, data := b.gatewayFile(t)
	static, _ := staticGatewayConfig(t, data, "http://"+jqPub)
	// Under up the addresses are the file's (up holds those sockets).
	gwPub, gwAdm := testutil.FreeAddr(t), testutil.FreeAddr(t)
	var doc map[string]any
	if err := yaml3.Unmarshal(static, &doc); err != nil {
		t.Fatal(err)
	}
	doc["listen"], doc["admin"] = gwPub, gwAdm
	static, err := yaml3.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(t.TempDir(), "gateway.yaml")
	if err := os.WriteFile(cfgPath, static, 0o644); err != nil {
		t.Fatal(err)
	}
	args := withData(t, gc.Args)
	args[slices.Index(args, gatewayConfigFlag)+1] = cfgPath
	gw := start(t, b, bin, gc, args, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": closed, telemetry.AdminTokenFileEnv: tokenFile})
	probe(t, "gateway", gc, map[int32]string{namedPort(t, gc, "http"): gwPub, namedPort(t, gc, "admin"): gwAdm})

	for name, adm := range map[string]string{"jobqueue": jqAdm, "gateway": gwAdm} {
		for _, tok := range []string{"", "wrong", token} {
			req, _ := http.NewRequest(http.MethodGet, "http://"+adm+"/debug/pprof/cmdline", nil)
			if tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s admin: %v", name, err)
			}
			resp.Body.Close()
			if ok := resp.StatusCode == http.StatusOK; ok != (tok == token) {
				t.Errorf("%s: /debug/pprof/ with token %q answered %d", name, tok, resp.StatusCode)
			}
		}
		if code, body := testutil.Get(context.Background(), http.DefaultClient, "http://"+adm+"/metrics"); code != http.StatusOK || !strings.Contains(body, "go_goroutines") {
			t.Errorf("%s: /metrics without a token answered %d: Prometheus could not scrape it", name, code)
		}
	}

	resp, err := http.Post("http://"+gwPub+"/v1/payloads", "application/json", strings.NewReader(`{"version":"10.0.19045","token":"","data":[{"kind":"scan","n":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Served-By") != "wardgate" {
		t.Errorf("POST /v1/payloads through the gateway: %d (X-Served-By %q), want 202 from the job queue", resp.StatusCode, resp.Header.Get("X-Served-By"))
	}

	for name, p := range map[string]*testutil.Proc{"gateway": gw, "jobqueue": jq} {
		if err := testutil.Terminate(p.Cmd.Process, p.Exited, 60*time.Second); err != nil {
			t.Errorf("%s did not stop on SIGTERM: %v\n%s", name, err, p.Stderr.String())
		}
	}
}

// TestKubernetesRunbookMatchesManifests: the commands of
// docs/runbooks/kubernetes.md name the token file, Secret key, admin ports,
// container names and labels the manifests use.
func TestKubernetesRunbookMatchesManifests(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot, "docs", "runbooks", "kubernetes.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	b := build(t, "kubernetes/overlays/example")
	want := []string{}
	for _, name := range []string{"wardgate-gateway", "wardgate-jobqueue"} {
		d, c := b.container(t, name)
		path := mustEnv(t, c, telemetry.AdminTokenFileEnv)
		want = append(want,
			"/proc/1/root"+path,                          // the token file seen from a --target debug container
			"--target="+c.Name,                           // kubectl debug --target
			fmt.Sprintf(":%d", namedPort(t, c, "admin")), // port-forward to the admin port
			"{.data."+filepath.Base(path)+"}",            // the Secret key
			"app.kubernetes.io/name="+d.Spec.Template.Labels["app.kubernetes.io/name"], // kubectl -l
		)
	}
	_, jc := b.container(t, "wardgate-jobqueue")
	for _, m := range jc.VolumeMounts {
		if m.Name == "home" {
			want = append(want, "/proc/1/root"+m.MountPath+"/cap") // where capture writes
		}
	}
	for _, w := range want {
		if !strings.Contains(doc, w) {
			t.Errorf("docs/runbooks/kubernetes.md does not mention %q, which the manifests use", w)
		}
	}
}
