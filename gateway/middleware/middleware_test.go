package middleware

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// logBuf is a goroutine-safe log sink for handlers running in a server.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines decodes every JSON log line written so far.
func (l *logBuf) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if ln == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatalf("log line is not JSON: %v: %q", err, ln)
		}
		out = append(out, m)
	}
	return out
}

func newLogger() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// checkJSONError asserts the gateway's error shape and status.
func checkJSONError(t *testing.T, rec *httptest.ResponseRecorder, code int) string {
	t.Helper()
	if rec.Code != code {
		t.Fatalf("status = %d, want %d (body %q)", rec.Code, code, rec.Body.String())
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
		t.Fatalf("body %q is not {\"error\": ...}: %v", rec.Body.String(), err)
	}
	return body.Error
}

func TestChainOrder(t *testing.T) {
	var got []string
	layer := func(name string) Middleware {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = append(got, "enter "+name)
				next.ServeHTTP(w, r)
				got = append(got, "exit "+name)
			})
		}
	}
	h := Chain(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got = append(got, "handler") }),
		layer("a"), layer("b"), nil, layer("c"))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	want := []string{"enter a", "enter b", "enter c", "handler", "exit c", "exit b", "exit a"}
	if !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
}

func TestBuild(t *testing.T) {
	var cfg Config
	cfg.SetDefaults()
	cfg.Auth.Tokens = []string{"secret"}
	for _, n := range Names() {
		m, err := Build(n, cfg, nil)
		if err != nil || m == nil {
			t.Fatalf("Build(%q) = %v, %v", n, m, err)
		}
	}
	_, err := Build("gzip", cfg, nil)
	if err == nil {
		t.Fatal("Build(gzip) succeeded")
	}
	for _, n := range Names() {
		if !strings.Contains(err.Error(), n) {
			t.Errorf("error %q does not list %q", err, n)
		}
	}
	cfg.Auth.Tokens = nil
	if _, err := Build("auth", cfg, nil); err == nil || !strings.Contains(err.Error(), "middleware.auth.tokens") {
		t.Fatalf("auth without tokens: err = %v, want one naming middleware.auth.tokens", err)
	}
	ms, err := BuildAll([]string{"recover", "requestid"}, cfg, nil)
	if err != nil || len(ms) != 2 {
		t.Fatalf("BuildAll = %d, %v", len(ms), err)
	}
	if _, err := BuildAll([]string{"recover", "nope"}, cfg, nil); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("BuildAll with unknown name: err = %v", err)
	}
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	var c Config
	c.SetDefaults()
	if c.RateLimit.RPS != DefaultRPS || c.RateLimit.Burst != DefaultBurst ||
		c.RateLimit.MaxClients != DefaultMaxClients || c.BodyLimit.MaxBytes != 1<<20 {
		t.Fatalf("defaults = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	cases := []struct {
		field string
		mod   func(*Config)
	}{
		{"middleware.ratelimit.rps", func(c *Config) { c.RateLimit.RPS = -1 }},
		{"middleware.ratelimit.burst", func(c *Config) { c.RateLimit.Burst = -3 }},
		{"middleware.ratelimit.max_clients", func(c *Config) { c.RateLimit.MaxClients = -1 }},
		{"middleware.bodylimit.max_bytes", func(c *Config) { c.BodyLimit.MaxBytes = -10 }},
		{"middleware.auth.tokens[1]", func(c *Config) { c.Auth.Tokens = []string{"ok", ""} }},
		{"middleware.auth.tokens[0]", func(c *Config) { c.Auth.Tokens = []string{"has space"} }},
	}
	for _, tc := range cases {
		c := Config{}
		c.SetDefaults()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
			t.Errorf("%s: Validate() = %v, want an error starting with %q", tc.field, err, tc.field+":")
		}
	}
}
