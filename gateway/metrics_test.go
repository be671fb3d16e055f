package gateway

import (
	"strings"
	"testing"
)

// TestCountersStartAtZero: a gateway that never retried nor reloaded
// already serves every known series of its counters at 0, so a dashboard
// shows "0" rather than "No data"; an upstream added by a reload gets its
// own 0 at once.
func TestCountersStartAtZero(t *testing.T) {
	a := newBackend(t, "a", nil)
	f := newFixture(t, oneUpstream("  - {path_prefix: /v/, upstream: v}\n",
		"  v:\n    targets: [{url: \""+a.URL+"\"}]\n", a.URL))
	want := []string{
		`wardgate_upstream_retries_total{otel_scope_name="github.com/wardgate/wardgate/gateway",otel_scope_schema_url="",otel_scope_version="",upstream="u"} 0`,
		`wardgate_upstream_retries_total{otel_scope_name="github.com/wardgate/wardgate/gateway",otel_scope_schema_url="",otel_scope_version="",upstream="v"} 0`,
		`wardgate_gateway_reloads_total{otel_scope_name="github.com/wardgate/wardgate/gateway",otel_scope_schema_url="",otel_scope_version="",result="ok"} 0`,
		`wardgate_gateway_reloads_total{otel_scope_name="github.com/wardgate/wardgate/gateway",otel_scope_schema_url="",otel_scope_version="",result="error"} 0`,
	}
	_, metrics := get(t, f.admin.URL+"/metrics")
	for _, w := range want {
		if !strings.Contains(metrics, w) {
			t.Errorf("fresh gateway: /metrics lacks\n  %s", w)
		}
	}
	if t.Failed() {
		logSeries(t, metrics)
	}

	next, err := Parse([]byte(oneUpstream("  - {path_prefix: /w/, upstream: w}\n",
		"  w:\n    targets: [{url: \""+a.URL+"\"}]\n", a.URL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.Reload(next); err != nil {
		t.Fatal(err)
	}
	_, metrics = get(t, f.admin.URL+"/metrics")
	for _, w := range []string{
		`upstream="w"} 0`,
		`result="ok"} 1`,
		`result="error"} 0`,
	} {
		if !strings.Contains(metrics, w) {
			t.Errorf("after a reload adding upstream w: /metrics lacks %s", w)
		}
	}
	if t.Failed() {
		logSeries(t, metrics)
	}
}

func logSeries(t *testing.T, metrics string) {
	t.Helper()
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "wardgate_upstream_retries") || strings.HasPrefix(l, "wardgate_gateway_reloads") {
			t.Log(l)
		}
	}
}
