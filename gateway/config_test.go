package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const validYAML = `
listen: 127.0.0.1:18080
admin: 127.0.0.1:16061
routes:
  - path_prefix: /v1/
    upstream: jobqueue
    middleware: [ratelimit]
upstreams:
  jobqueue:
    balancer: weighted_round_robin
    targets:
      - {url: "http://127.0.0.1:9001", weight: 5}
      - {url: "http://127.0.0.1:9002"}
`

func TestConfigDefaults(t *testing.T) {
	c, err := Parse([]byte(validYAML))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstreams["jobqueue"]
	if got := *u.Targets[0].Weight; got != 5 {
		t.Errorf("weight = %d, want 5", got)
	}
	if u.Targets[1].Weight != nil {
		t.Errorf("omitted weight should stay nil (means 1)")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"health_check.interval", u.HealthCheck.Interval.D, 2 * time.Second},
		{"health_check.timeout", u.HealthCheck.Timeout.D, time.Second},
		{"health_check.fall", u.HealthCheck.Fall, 2},
		{"health_check.rise", u.HealthCheck.Rise, 1},
		{"passive.fail_threshold", *u.Passive.FailThreshold, 5},
		{"passive.window", u.Passive.Window.D, 10 * time.Second},
		{"passive.eject_for", u.Passive.EjectFor.D, 30 * time.Second},
		{"retries", *u.Retries, 1},
		{"timeouts.dial", u.Timeouts.Dial.D, 2 * time.Second},
		{"timeouts.response_header", u.Timeouts.ResponseHeader.D, 30 * time.Second},
		{"middleware.ratelimit.rps", c.Middleware.RateLimit.RPS, 100.0},
		{"request_body.timeout", c.RequestBody.Timeout.D, 20 * time.Second},
		{"request_body.min_rate", *c.RequestBody.MinRate, int64(500)},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// Validate is idempotent: the gateway validates again on New/Reload.
	if err := c.Validate(); err != nil {
		t.Fatalf("second Validate: %v", err)
	}
	if c.Upstreams["jobqueue"].Timeouts.Dial.D != 2*time.Second {
		t.Errorf("second Validate changed dial timeout")
	}
}

func TestConfigDefaultBalancer(t *testing.T) {
	c, err := Parse([]byte(strings.Replace(validYAML, "    balancer: weighted_round_robin\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Upstreams["jobqueue"].Balancer; got != "round_robin" {
		t.Errorf("default balancer = %q, want round_robin", got)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "example.yaml"))
	if err != nil {
		t.Fatalf("testdata/example.yaml: %v", err)
	}
	if len(c.Routes) == 0 || len(c.Upstreams) == 0 {
		t.Fatalf("example has no routes or upstreams")
	}
}

// TestConfigErrors checks that each mistake is refused with an error on
// one line that starts with (or contains) the path of the field.
func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"weight < 1", `weight: 5`, `weight: 0`, "upstreams.jobqueue.targets[0].weight: must be >= 1"},
		{"unknown upstream", `upstream: jobqueue`, `upstream: x`, `routes[0].upstream: unknown upstream "x"`},
		{"unknown balancer", `balancer: weighted_round_robin`, `balancer: fastest`, `upstreams.jobqueue.balancer: unknown balancer "fastest"`},
		{"bad url scheme", `"http://127.0.0.1:9002"`, `"ftp://127.0.0.1:9002"`, `upstreams.jobqueue.targets[1].url: bad URL "ftp://127.0.0.1:9002"`},
		{"url without host", `"http://127.0.0.1:9002"`, `"http://"`, `upstreams.jobqueue.targets[1].url: bad URL`},
		{"unparsable url", `"http://127.0.0.1:9002"`, `"http://[::1"`, `upstreams.jobqueue.targets[1].url: bad URL`},
		{"duplicate url", `"http://127.0.0.1:9002"`, `"http://127.0.0.1:9001"`, `upstreams.jobqueue.targets[1].url: "http://127.0.0.1:9001" is already targets[0]`},
		{"bad hash_on", `balancer: weighted_round_robin`, "balancer: consistent_hash\n    hash_on: header", `upstreams.jobqueue.hash_on: hash_on "header"`},
		{"hash_on missing name", `balancer: weighted_round_robin`, "balancer: consistent_hash\n    hash_on: \"cookie:\"", `upstreams.jobqueue.hash_on: hash_on "cookie:": missing name`},
		{"bad duration", `balancer: weighted_round_robin`, "health_check: {path: /healthz, interval: 2 seconds}", `upstreams.jobqueue.health_check.interval: invalid duration "2 seconds"`},
		{"negative duration", `balancer: weighted_round_robin`, "timeouts: {dial: -1s}", `upstreams.jobqueue.timeouts.dial: must be > 0`},
		{"zero window", `balancer: weighted_round_robin`, "passive: {window: 0s}", `upstreams.jobqueue.passive.window: must be > 0`},
		{"negative retries", `balancer: weighted_round_robin`, "retries: -1", `upstreams.jobqueue.retries: must be between 0 and 10`},
		{"unknown middleware", `middleware: [ratelimit]`, `middleware: [ratelimt]`, `routes[0].middleware[0]: unknown middleware "ratelimt"`},
		{"always-on middleware listed", `middleware: [ratelimit]`, `middleware: [recover]`, `routes[0].middleware[0]: "recover" is always on`},
		{"path_prefix without slash", `path_prefix: /v1/`, `path_prefix: v1`, `routes[0].path_prefix: must start with "/"`},
		{"bad listen", `listen: 127.0.0.1:18080`, `listen: 18080`, `listen: want host:port or fd/N, got "18080"`},
		{"typo in field", `balancer: weighted_round_robin`, `balancr: weighted_round_robin`, `unknown field "balancr" in upstreams.<name>`},
		{"typo in target", `weight: 5`, `wieght: 5`, `unknown field "wieght" in upstreams.<name>.targets[]`},
		{"bad header name", `middleware: [ratelimit]`, "middleware: [ratelimit]\n    request_headers: {\"Bad Header\": x}", `routes[0].request_headers: invalid header name "Bad Header"`},
		{"managed header", `middleware: [ratelimit]`, "middleware: [ratelimit]\n    response_headers: {Connection: close}", `routes[0].response_headers: header "Connection" is managed by the proxy`},
		{"no targets", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    targets: []\n", `upstreams.jobqueue.targets: at least one target is required`},
		{"middleware config", `listen: 127.0.0.1:18080`, "listen: 127.0.0.1:18080\nmiddleware: {ratelimit: {rps: -1}}", `middleware.ratelimit.rps: must be > 0`},
		{"duration not a string", `balancer: weighted_round_robin`, "timeouts: {dial: [1]}", `a duration must be a string`},
		{"bounded_load", `balancer: weighted_round_robin`, "bounded_load: 0.5", `upstreams.jobqueue.bounded_load: must be 0 (off) or > 1`},
		{"request_body.timeout", `listen: 127.0.0.1:18080`, "listen: 127.0.0.1:18080\nrequest_body: {timeout: 0s}", `request_body.timeout: must be > 0`},
		{"request_body.timeout syntax", `listen: 127.0.0.1:18080`, "listen: 127.0.0.1:18080\nrequest_body: {timeout: 20}", `request_body.timeout: invalid duration "20"`},
		{"request_body.min_rate", `listen: 127.0.0.1:18080`, "listen: 127.0.0.1:18080\nrequest_body: {min_rate: -1}", `request_body.min_rate: must be >= 0`},
		{"request_body typo", `listen: 127.0.0.1:18080`, "listen: 127.0.0.1:18080\nrequest_body: {min_rte: 1}", `unknown field "min_rte" in request_body`},
		{"discover and targets", `balancer: weighted_round_robin`, "balancer: weighted_round_robin\n    discover: {name: jq.local, port: 9001}", `upstreams.jobqueue: set either targets or discover, not both`},
		{"discover without name", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    discover: {port: 9001}\n", `upstreams.jobqueue.discover.name: required`},
		{"discover bad name", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    discover: {name: \"jq local\", port: 9001}\n", `upstreams.jobqueue.discover.name: "jq local" is not a DNS name`},
		{"discover a without port", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    discover: {name: jq.local}\n", `upstreams.jobqueue.discover.port: required for type a`},
		{"discover srv with port", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    discover: {name: _http._tcp.jq.local, type: srv, port: 9001}\n", `upstreams.jobqueue.discover.port: must be unset for type srv`},
		{"discover bad type", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    discover: {name: jq.local, type: cname, port: 1}\n", `upstreams.jobqueue.discover.type: unknown type "cname" (known: a, srv)`},
		{"discover bad resolver", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    discover: {name: jq.local, port: 1, resolver: 10.0.0.1}\n", `upstreams.jobqueue.discover.resolver: want host:port`},
		{"discover bad interval", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    discover: {name: jq.local, port: 1, interval: 0s}\n", `upstreams.jobqueue.discover.interval: must be > 0`},
		{"discover bad scheme", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    discover: {name: jq.local, port: 1, scheme: ftp}\n", `upstreams.jobqueue.discover.scheme: must be http or https`},
		{"discover typo", "    targets:\n      - {url: \"http://127.0.0.1:9001\", weight: 5}\n      - {url: \"http://127.0.0.1:9002\"}\n", "    discover: {name: jq.local, port: 1, allow_emtpy: true}\n", `unknown field "allow_emtpy" in upstreams.<name>.discover`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(validYAML, tt.old) {
				t.Fatalf("test bug: %q not in the base config", tt.old)
			}
			_, err := Parse([]byte(strings.Replace(validYAML, tt.old, tt.new, 1)))
			if err == nil {
				t.Fatalf("accepted; want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

func TestConfigEmptyAndMultiDoc(t *testing.T) {
	if _, err := Parse(nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty config: err = %v", err)
	}
	if _, err := Parse([]byte(validYAML + "\n---\nlisten: x\n")); err == nil {
		t.Errorf("two YAML documents accepted")
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("err = %v, want a not-exist error", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// FuzzLoadConfig: the parser and validator never panic, and whatever they
// accept can be built into a gateway table.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(validYAML))
	if b, err := os.ReadFile(filepath.Join("testdata", "example.yaml")); err == nil {
		f.Add(b)
	}
	f.Add([]byte("routes: [{path_prefix: /, upstream: a}]\nupstreams: {a: {targets: [{url: 'http://x:1', weight: -1}]}}"))
	f.Add([]byte("upstreams: {a: {balancer: consistent_hash, hash_on: 'header:', timeouts: {dial: 1}}}"))
	f.Add([]byte("upstreams: {a: ~}\nroutes: [~]"))
	f.Add([]byte("health_check: &a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error: %q", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails a second Validate: %v", err)
		}
	})
}
