package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"

	"github.com/wardgate/wardgate/gateway/balancer"
	"github.com/wardgate/wardgate/gateway/middleware"
	"github.com/wardgate/wardgate/internal/listen"
)

// Defaults applied by SetDefaults for fields the file leaves out.
const (
	DefaultListen                = "127.0.0.1:8080"
	DefaultAdmin                 = "127.0.0.1:6061"
	DefaultBalancer              = "round_robin"
	DefaultHealthInterval        = 2 * time.Second
	DefaultHealthTimeout         = time.Second
	DefaultHealthFall            = 2
	DefaultHealthRise            = 1
	DefaultPassiveFailThreshold  = 5
	DefaultPassiveWindow         = 10 * time.Second
	DefaultPassiveEjectFor       = 30 * time.Second
	DefaultRetries               = 1
	DefaultDialTimeout           = 2 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	// DefaultRequestBodyTimeout and DefaultRequestBodyMinRate follow
	// Apache's mod_reqtimeout default (body=20,MinRate=500): a body must
	// start and keep arriving within 20 s, and after those 20 s of grace
	// average at least 500 bytes/s.
	DefaultRequestBodyTimeout = 20 * time.Second
	DefaultRequestBodyMinRate = 500
	// maxRetries bounds `retries`: each retry goes to another target, and a
	// storm of retries multiplies the load on a pool that is already failing.
	maxRetries = 10
)

// Config is the gateway's YAML file (see docs/gateway.md).
type Config struct {
	Listen string `yaml:"listen"`
	Admin  string `yaml:"admin"`
	// AdminToken, when set, is required as a bearer token on the admin
	// listener. The ADMIN_TOKEN environment variable fills it when empty.
	AdminToken string               `yaml:"admin_token"`
	Routes     []Route              `yaml:"routes"`
	Upstreams  map[string]*Upstream `yaml:"upstreams"`
	// Middleware configures the built-in middlewares that routes name.
	Middleware middleware.Config `yaml:"middleware"`
	// RequestBody bounds how slowly clients may send request bodies.
	RequestBody RequestBody `yaml:"request_body"`
}

// RequestBody bounds the reading of request bodies, so that slow clients
// cannot hold upstream connections (and gateway goroutines) without end:
// the proxy streams a body to the upstream as it arrives, so an upload at
// one byte a minute keeps an upstream connection busy for as long. A body
// that falls behind is cut and answered 408.
type RequestBody struct {
	// Timeout is the longest wait for the next bytes of a body, and the
	// grace period before MinRate applies. Default DefaultRequestBodyTimeout.
	Timeout Duration `yaml:"timeout"`
	// MinRate is the average rate, in bytes per second, a body must keep up
	// after Timeout: by Timeout + N/MinRate seconds after the headers, N
	// bytes must have arrived. 0 turns it off (Timeout alone then bounds
	// the wait for each read); nil means DefaultRequestBodyMinRate.
	MinRate *int64 `yaml:"min_rate"`
}

// Route sends requests whose path starts with PathPrefix to Upstream. The
// longest matching prefix wins.
type Route struct {
	PathPrefix      string            `yaml:"path_prefix"`
	Upstream        string            `yaml:"upstream"`
	StripPrefix     string            `yaml:"strip_prefix"`
	AddPrefix       string            `yaml:"add_prefix"`
	RequestHeaders  map[string]string `yaml:"request_headers"`
	ResponseHeaders map[string]string `yaml:"response_headers"`
	Middleware      []string          `yaml:"middleware"`
}

// Upstream is a named pool of targets behind one balancer.
type Upstream struct {
	Balancer string `yaml:"balancer"`
	// HashOn is the consistent_hash key: header:NAME, cookie:NAME,
	// query:NAME, client_ip or path.
	HashOn       string         `yaml:"hash_on"`
	VirtualNodes int            `yaml:"virtual_nodes"`
	BoundedLoad  float64        `yaml:"bounded_load"`
	Targets      []TargetConfig `yaml:"targets"`
	// Discover takes the targets from DNS instead of Targets (see
	// discovery.go); exactly one of the two is set.
	Discover    *Discover   `yaml:"discover"`
	HealthCheck HealthCheck `yaml:"health_check"`
	Passive     Passive     `yaml:"passive"`
	// Retries is how many other targets a failed attempt may be retried
	// on, when that is safe. Nil means DefaultRetries.
	Retries  *int     `yaml:"retries"`
	Timeouts Timeouts `yaml:"timeouts"`
}

// TargetConfig is one upstream endpoint. Weight nil means 1.
type TargetConfig struct {
	URL    string `yaml:"url"`
	Weight *int   `yaml:"weight"`
}

// HealthCheck configures active checks. They run only when Path is set:
// probing a path the backend does not serve would mark every target down.
type HealthCheck struct {
	Path     string   `yaml:"path"`
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	Fall     int      `yaml:"fall"`
	Rise     int      `yaml:"rise"`
}

// Passive configures outlier ejection from live traffic: FailThreshold
// failures within Window eject the target for EjectFor. A FailThreshold of
// 0 turns passive ejection off; nil means DefaultPassiveFailThreshold.
type Passive struct {
	FailThreshold *int     `yaml:"fail_threshold"`
	Window        Duration `yaml:"window"`
	EjectFor      Duration `yaml:"eject_for"`
}

// Timeouts of the upstream transport.
type Timeouts struct {
	Dial           Duration `yaml:"dial"`
	ResponseHeader Duration `yaml:"response_header"`
}

// Duration is a time.Duration written in Go syntax ("1s", "500ms"). The
// text is kept as read and parsed by Validate, so a bad value is reported
// with its field path rather than as a bare decoder error.
type Duration struct {
	D   time.Duration
	raw string
	set bool
}

// Dur returns a Duration of d, for building configs in code.
func Dur(d time.Duration) Duration { return Duration{D: d, set: true} }

// UnmarshalYAML records the scalar; Validate parses it.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: a duration must be a string like \"1s\"", n.Line)
	}
	d.raw, d.set = n.Value, true
	d.D = 0
	if v, err := time.ParseDuration(n.Value); err == nil {
		d.D = v
	}
	return nil
}

// MarshalYAML writes the duration in Go syntax.
func (d Duration) MarshalYAML() (any, error) { return d.D.String(), nil }

// check parses the raw text (if any) and applies def when unset. It
// returns an error naming path for unparsable or non-positive values.
func (d *Duration) check(path string, def time.Duration) error {
	if !d.set {
		d.D, d.set = def, true
		return nil
	}
	if d.raw != "" {
		v, err := time.ParseDuration(d.raw)
		if err != nil {
			return fmt.Errorf("%s: invalid duration %q (use Go syntax like 500ms, 2s, 1m)", path, d.raw)
		}
		d.D = v
	}
	if d.D <= 0 {
		return fmt.Errorf("%s: must be > 0, got %s", path, d.D)
	}
	return nil
}

// Load reads, decodes and validates the config file at path. Unknown
// fields are errors (a typo must not silently fall back to a default).
func Load(path string) (*Config, error) { return LoadWith(path, nil) }

// Parse decodes and validates a YAML config.
func Parse(data []byte) (*Config, error) {
	c, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decode decodes a YAML config without validating it.
func decode(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config is empty")
		}
		return nil, decodeError(data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("config holds more than one YAML document")
	}
	return &c, nil
}

var notFoundRE = regexp.MustCompile(`field (\S+) not found in type (\S+)`)

// typeContext names the config section of a Go type in decoder errors.
var typeContext = map[string]string{
	"gateway.Config":       "top level",
	"gateway.Route":        "routes[]",
	"gateway.Upstream":     "upstreams.<name>",
	"gateway.TargetConfig": "upstreams.<name>.targets[]",
	"gateway.Discover":     "upstreams.<name>.discover",
	"gateway.HealthCheck":  "health_check",
	"gateway.Passive":      "passive",
	"gateway.Timeouts":     "timeouts",
	"gateway.RequestBody":  "request_body",
}

// decodeError turns the YAML decoder's (multi-line) error into one line
// that names the offending field, or for a syntax error the line that
// breaks the document (see syntaxErrorLine).
func decodeError(data []byte, err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := err.Error()
		if m := syntaxErrRE.FindStringSubmatch(msg); m != nil {
			reported, _ := strconv.Atoi(m[1]) // 0: v3 drops "line 1: "
			if line := syntaxErrorLine(data, m[2], reported); line != reported {
				msg = fmt.Sprintf("yaml: line %d: %s", line, m[2])
			}
		}
		return fmt.Errorf("config: %s", strings.ReplaceAll(strings.ReplaceAll(msg, "\r", " "), "\n", " "))
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		m = notFoundRE.ReplaceAllStringFunc(m, func(s string) string {
			sub := notFoundRE.FindStringSubmatch(s)
			where, ok := typeContext[sub[2]]
			if !ok {
				where = strings.TrimPrefix(sub[2], "middleware.")
			}
			return fmt.Sprintf("unknown field %q in %s", sub[1], where)
		})
		msgs = append(msgs, m)
	}
	return fmt.Errorf("config: %s", oneLine(strings.Join(msgs, "; ")))
}

// syntaxErrRE matches a YAML syntax error of go.yaml.in/yaml/v3.
var syntaxErrRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// maxErrorSearchBytes bounds syntaxErrorLine's work (one parse per line,
// of a shorter prefix each time) on a hostile or huge file.
const maxErrorSearchBytes = 8 << 20

// syntaxErrorLine returns the line that breaks data, which fails to parse
// with problem (the message without its line). yaml/v3 reports the line of
// the parser's context mark, where the enclosing block starts, rather than
// the line it could not parse: a mis-indented key on line 5 of a list that
// starts on line 2 was reported on line 2. The parser stops at the first
// error, so every prefix of data (whole lines from line 1) that still holds
// the offending line fails with the same problem, and the prefix one line
// shorter does not: a document cut at a line break parses. Cutting lines
// off the end until that happens finds the line for any kind of syntax
// error (an unterminated quote fails "at the end of the stream" from the
// line it opens on). It returns reported when the search would cost more
// than maxErrorSearchBytes of parsing.
func syntaxErrorLine(data []byte, problem string, reported int) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	size, budget := len(data), maxErrorSearchBytes
	bad := len(lines)
	for n := len(lines) - 1; n >= 1; n-- {
		size -= len(lines[n])
		if budget -= size; budget < 0 {
			return reported
		}
		var node yaml.Node
		err := yaml.Unmarshal(data[:size], &node)
		m := syntaxErrRE.FindStringSubmatch(errString(err))
		if m == nil || m[2] != problem {
			break
		}
		bad = n
	}
	return bad
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// oneLine escapes line breaks that the decoder quotes from the input (a
// scalar holding a newline), so the error stays the one line operators and
// log pipelines expect.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", `\r\n`, "\n", `\n`, "\r", `\r`).Replace(s)
}

// UpstreamNames returns the upstream names in sorted order.
func (c *Config) UpstreamNames() []string {
	names := make([]string, 0, len(c.Upstreams))
	for n := range c.Upstreams {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validate applies defaults and checks the config. The error is one line;
// each problem starts with the path of the field, e.g.
// "upstreams.jobqueue.targets[1].weight: must be >= 1".
func (c *Config) Validate() error {
	var errs []string
	add := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Admin == "" {
		c.Admin = DefaultAdmin
	}
	if c.AdminToken == "" {
		c.AdminToken = os.Getenv("ADMIN_TOKEN")
	}
	add(checkAddr("listen", c.Listen))
	add(checkAddr("admin", c.Admin))

	if len(c.Upstreams) == 0 {
		add(errors.New("upstreams: at least one upstream is required"))
	}
	for _, name := range c.UpstreamNames() {
		u := c.Upstreams[name]
		p := "upstreams." + name
		if u == nil {
			add(fmt.Errorf("%s: empty upstream", p))
			continue
		}
		for _, e := range u.validate(p) {
			add(e)
		}
	}

	add(c.RequestBody.Timeout.check("request_body.timeout", DefaultRequestBodyTimeout))
	if c.RequestBody.MinRate == nil {
		v := int64(DefaultRequestBodyMinRate)
		c.RequestBody.MinRate = &v
	} else if *c.RequestBody.MinRate < 0 {
		add(fmt.Errorf("request_body.min_rate: must be >= 0 bytes/s (0 turns it off), got %d", *c.RequestBody.MinRate))
	}

	c.Middleware.SetDefaults()
	if err := c.Middleware.Validate(); err != nil {
		add(err) // already names its field (middleware.ratelimit.rps: ...)
	}
	known := middleware.Names()
	if len(c.Routes) == 0 {
		add(errors.New("routes: at least one route is required"))
	}
	seen := map[string]int{}
	for i := range c.Routes {
		r := &c.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.PathPrefix == "":
			add(fmt.Errorf("%s.path_prefix: required", p))
		case !strings.HasPrefix(r.PathPrefix, "/"):
			add(fmt.Errorf("%s.path_prefix: must start with \"/\", got %q", p, r.PathPrefix))
		default:
			if j, dup := seen[r.PathPrefix]; dup {
				add(fmt.Errorf("%s.path_prefix: %q is already used by routes[%d]", p, r.PathPrefix, j))
			}
			seen[r.PathPrefix] = i
		}
		if r.Upstream == "" {
			add(fmt.Errorf("%s.upstream: required", p))
		} else if _, ok := c.Upstreams[r.Upstream]; !ok {
			add(fmt.Errorf("%s.upstream: unknown upstream %q", p, r.Upstream))
		}
		if r.StripPrefix != "" && !strings.HasPrefix(r.StripPrefix, "/") {
			add(fmt.Errorf("%s.strip_prefix: must start with \"/\", got %q", p, r.StripPrefix))
		}
		if r.AddPrefix != "" && !strings.HasPrefix(r.AddPrefix, "/") {
			add(fmt.Errorf("%s.add_prefix: must start with \"/\", got %q", p, r.AddPrefix))
		}
		add(checkHeaders(p+".request_headers", r.RequestHeaders))
		add(checkHeaders(p+".response_headers", r.ResponseHeaders))
		for j, m := range r.Middleware {
			switch {
			case slices.Contains(alwaysOn, m):
				add(fmt.Errorf("%s.middleware[%d]: %q is always on; remove it from the list", p, j, m))
			case !slices.Contains(known, m):
				add(fmt.Errorf("%s.middleware[%d]: unknown middleware %q (known: %s)", p, j, m, strings.Join(known, ", ")))
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// alwaysOn are the middlewares every route gets, outermost, in this order.
var alwaysOn = []string{"recover", "requestid", "accesslog"}

func (u *Upstream) validate(p string) []error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if u.Balancer == "" {
		u.Balancer = DefaultBalancer
	}
	if names := balancer.Names(); !slices.Contains(names, u.Balancer) {
		add(fmt.Errorf("%s.balancer: unknown balancer %q (known: %s)", p, u.Balancer, strings.Join(names, ", ")))
	}
	if u.HashOn != "" {
		if _, _, err := balancer.ParseHashOn(u.HashOn); err != nil {
			add(fmt.Errorf("%s.hash_on: %s", p, strings.TrimPrefix(err.Error(), "balancer: ")))
		}
	} else if u.Balancer == "consistent_hash" {
		add(fmt.Errorf("%s.hash_on: required by consistent_hash (header:NAME, cookie:NAME, query:NAME, client_ip or path)", p))
	}
	if u.VirtualNodes < 0 {
		add(fmt.Errorf("%s.virtual_nodes: must be >= 0", p))
	}
	if u.BoundedLoad != 0 && !(u.BoundedLoad > 1) {
		add(fmt.Errorf("%s.bounded_load: must be 0 (off) or > 1 (e.g. 1.25), got %g", p, u.BoundedLoad))
	}
	switch {
	case u.Discover != nil && len(u.Targets) > 0:
		add(fmt.Errorf("%s: set either targets or discover, not both", p))
	case u.Discover != nil:
		errs = append(errs, u.Discover.validate(p+".discover")...)
	case len(u.Targets) == 0:
		add(fmt.Errorf("%s.targets: at least one target is required (or discover: to take them from DNS)", p))
	}
	seen := map[string]int{}
	for i, t := range u.Targets {
		tp := fmt.Sprintf("%s.targets[%d]", p, i)
		if err := checkTargetURL(t.URL); err != nil {
			add(fmt.Errorf("%s.url: %w", tp, err))
		} else {
			if j, dup := seen[t.URL]; dup {
				add(fmt.Errorf("%s.url: %q is already targets[%d]", tp, t.URL, j))
			}
			seen[t.URL] = i
		}
		if t.Weight != nil && *t.Weight < 1 {
			add(fmt.Errorf("%s.weight: must be >= 1, got %d", tp, *t.Weight))
		}
	}
	hc := &u.HealthCheck
	if hc.Path != "" && !strings.HasPrefix(hc.Path, "/") {
		add(fmt.Errorf("%s.health_check.path: must start with \"/\", got %q", p, hc.Path))
	}
	add(hc.Interval.check(p+".health_check.interval", DefaultHealthInterval))
	add(hc.Timeout.check(p+".health_check.timeout", DefaultHealthTimeout))
	if hc.Fall == 0 {
		hc.Fall = DefaultHealthFall
	}
	if hc.Rise == 0 {
		hc.Rise = DefaultHealthRise
	}
	if hc.Fall < 0 {
		add(fmt.Errorf("%s.health_check.fall: must be >= 1, got %d", p, hc.Fall))
	}
	if hc.Rise < 0 {
		add(fmt.Errorf("%s.health_check.rise: must be >= 1, got %d", p, hc.Rise))
	}
	ps := &u.Passive
	if ps.FailThreshold == nil {
		v := DefaultPassiveFailThreshold
		ps.FailThreshold = &v
	} else if *ps.FailThreshold < 0 {
		add(fmt.Errorf("%s.passive.fail_threshold: must be >= 0 (0 turns passive ejection off), got %d", p, *ps.FailThreshold))
	}
	add(ps.Window.check(p+".passive.window", DefaultPassiveWindow))
	add(ps.EjectFor.check(p+".passive.eject_for", DefaultPassiveEjectFor))
	if u.Retries == nil {
		v := DefaultRetries
		u.Retries = &v
	} else if *u.Retries < 0 || *u.Retries > maxRetries {
		add(fmt.Errorf("%s.retries: must be between 0 and %d, got %d", p, maxRetries, *u.Retries))
	}
	add(u.Timeouts.Dial.check(p+".timeouts.dial", DefaultDialTimeout))
	add(u.Timeouts.ResponseHeader.check(p+".timeouts.response_header", DefaultResponseHeaderTimeout))
	return errs
}

func checkAddr(path, addr string) error {
	if err := listen.Check(addr); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func checkTargetURL(s string) error {
	if s == "" {
		return errors.New("required")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("bad URL %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("bad URL %q: scheme must be http or https", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("bad URL %q: no host", s)
	}
	if port := u.Port(); port != "" {
		if _, err := net.LookupPort("tcp", port); err != nil {
			return fmt.Errorf("bad URL %q: bad port", s)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("bad URL %q: a target URL has no query, fragment or user info", s)
	}
	return nil
}

func checkHeaders(path string, h map[string]string) error {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("%s: invalid header name %q", path, k)
		}
		if !httpguts.ValidHeaderFieldValue(h[k]) {
			return fmt.Errorf("%s.%s: invalid header value", path, k)
		}
		if httpguts.HeaderValuesContainsToken([]string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer", "Host", "Content-Length"}, k) {
			return fmt.Errorf("%s: header %q is managed by the proxy and cannot be set", path, k)
		}
	}
	return nil
}
