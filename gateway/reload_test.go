package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestReloadSwapsTableKeepsTargetState(t *testing.T) {
	release := make(chan struct{})
	a := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "a")
	})
	b := newBackend(t, "b", nil)
	f := newFixture(t, oneUpstream("", "", a.URL))
	if resp, _ := get(t, f.public.URL+"/warm"); resp.StatusCode != 200 {
		t.Fatal("warm-up failed")
	}
	oldTarget := f.g.table.Load().upstreams["u"].set.Load().targets[0]

	// A long request in flight on the old table.
	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(f.public.URL + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(body)
	}()
	waitFor(t, "slow request in flight", func() bool { return oldTarget.Inflight() == 1 })

	// New config: a keeps its URL, b is added, a new route goes to a new upstream.
	next, err := Parse([]byte(`
routes:
  - {path_prefix: /, upstream: u}
  - {path_prefix: /b/, upstream: onlyb}
upstreams:
  u:
    targets: [{url: "` + a.URL + `"}, {url: "` + b.URL + `"}]
  onlyb:
    targets: [{url: "` + b.URL + `"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.g.Reload(next); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, f.public.URL+"/b/x"); resp.Header.Get("X-Backend") != "b" {
		t.Errorf("new route not applied: backend %q", resp.Header.Get("X-Backend"))
	}
	nt := f.g.table.Load().upstreams["u"].set.Load().targets[0]
	if nt != oldTarget {
		t.Errorf("target with unchanged URL was rebuilt; its state is lost")
	}
	if nt.Requests() != 1 || nt.Inflight() != 1 {
		t.Errorf("kept target: requests %d inflight %d, want 1 and 1", nt.Requests(), nt.Inflight())
	}
	close(release)
	select {
	case got := <-slow:
		if got != "a" {
			t.Errorf("in-flight request across reload got %q", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight request did not finish")
	}

	// An invalid config is refused and the current one keeps serving.
	bad, _ := decode([]byte(strings.Replace(`
routes: [{path_prefix: /, upstream: nope}]
upstreams: {u: {targets: [{url: "`+a.URL+`"}]}}`, "\t", "", -1)))
	err = f.g.Reload(bad)
	if err == nil || !strings.Contains(err.Error(), `routes[0].upstream: unknown upstream "nope"`) {
		t.Fatalf("bad reload: %v", err)
	}
	if resp, _ := get(t, f.public.URL+"/b/x"); resp.Header.Get("X-Backend") != "b" {
		t.Errorf("after a refused reload the previous routes must keep serving")
	}
}

func TestAdminUpstreamsAndMetrics(t *testing.T) {
	a := newBackend(t, "a", nil)
	f := newFixture(t, oneUpstream("", "    balancer: weighted_round_robin\n", a.URL, deadURL(t)))
	for range 4 {
		get(t, f.public.URL+"/v1/x", "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	}
	resp, body := get(t, f.admin.URL+"/admin/upstreams")
	if resp.StatusCode != 200 {
		t.Fatalf("admin status %d", resp.StatusCode)
	}
	var st map[string]UpstreamStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	u := st["u"]
	if u.Balancer != "weighted_round_robin" || len(u.Targets) != 2 || u.Targets[0].URL != a.URL || u.Targets[0].Weight != 1 || !u.Targets[0].Healthy {
		t.Errorf("admin upstreams: %s", body)
	}
	if u.Targets[0].Requests == 0 || u.Targets[1].Failures == 0 || u.Targets[0].EWMAMillis <= 0 {
		t.Errorf("counters not reported: %s", body)
	}
	for _, key := range []string{`"ejected"`, `"inflight"`, `"ewma_ms"`} {
		if !strings.Contains(body, key) {
			t.Errorf("admin upstreams lacks %s", key)
		}
	}

	_, metrics := get(t, f.admin.URL+"/metrics")
	for _, want := range []string{
		`http_server_request_duration_seconds_bucket{http_request_method="GET",http_response_status_code="200",http_route="/"`,
		`http_client_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",`,
		`server_address="127.0.0.1",server_port="`,
		`wardgate_upstream="u"`,
		`wardgate_upstream_requests_total{`,
		`wardgate_upstream_failures_total{`,
		`wardgate_upstream_inflight{`,
		`wardgate_upstream_healthy{`,
		`wardgate_upstream_ejections_total{`,
		`wardgate_upstream_retries_total{`,
		`target="` + a.URL + `",upstream="u"`,
		`go_goroutines`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		for _, l := range strings.Split(metrics, "\n") {
			if strings.Contains(l, "wardgate") || strings.HasPrefix(l, "http_") {
				t.Log(l)
			}
		}
	}
}
