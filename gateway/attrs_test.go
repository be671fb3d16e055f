package gateway

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// The cached metric options must give each (method, status or error type,
// route or target) its own series with the right labels, whatever order
// the combinations arrive in.
func TestDurationSeriesPerMethodStatusAndError(t *testing.T) {
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			w.WriteHeader(http.StatusNotFound)
		}
	})
	dead := deadURL(t)
	f := newFixture(t, "routes:\n  - path_prefix: /\n    upstream: u\n  - path_prefix: /dead/\n    upstream: d\n"+
		"upstreams:\n  u:\n    targets:\n      - {url: \""+be.URL+"\"}\n"+
		"  d:\n    retries: 0\n    targets:\n      - {url: \""+dead+"\"}\n")
	for i := 0; i < 3; i++ { // repeat: the second and third hit the cache
		for _, c := range []struct{ method, path string }{
			{"GET", "/ok"}, {"GET", "/missing"}, {"PUT", "/ok"}, {"BREW", "/ok"}, {"GET", "/dead/x"},
		} {
			req, _ := http.NewRequest(c.method, f.public.URL+c.path, nil)
			do(t, req)
		}
	}
	_, metrics := get(t, f.admin.URL+"/metrics")
	count := func(re string) string {
		m := regexp.MustCompile(re + `[^}]*} (\d+)`).FindStringSubmatch(metrics)
		if m == nil {
			return "none"
		}
		return m[1]
	}
	for re, want := range map[string]string{
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/"`:         "3",
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route="/"`:         "3",
		`http_server_request_duration_seconds_count{http_request_method="PUT",http_response_status_code="200",http_route="/"`:         "3",
		`http_server_request_duration_seconds_count{http_request_method="_OTHER",http_response_status_code="200",http_route="/"`:      "3",
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="502",http_route="/dead/"`:    "3",
		`http_client_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",*wardgate_upstream="u"`: "3",
		`http_client_request_duration_seconds_count{error_type="connection_refused",http_request_method="GET",*wardgate_upstream="d"`: "3",
	} {
		// "*" in a key stands for the labels in between.
		if got := count(strings.ReplaceAll(regexp.QuoteMeta(re), `\*`, `[^}]*`)); got != want {
			t.Errorf("%s: count %s, want %s", re, got, want)
		}
	}
	if t.Failed() {
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, "http_") && strings.Contains(l, "_count") {
				t.Log(l)
			}
		}
	}
}

func TestMeasureKeyDistinct(t *testing.T) {
	if got := fmt.Sprint(measureKey(3, 404, 0) != measureKey(3, 404, 1), measureKey(1, 200, 0) != measureKey(2, 200, 0)); got != "true true" {
		t.Errorf("measureKey collisions: %s", got)
	}
}

// The gateway passes Accept-Encoding through: it never asks a backend for
// gzip on a client's behalf (and gunzips), and a client's gzip answer comes
// back compressed, untouched.
func TestAcceptEncodingPassesThrough(t *testing.T) {
	be := newBackend(t, "a", func(w http.ResponseWriter, r *http.Request) {
		ae := r.Header.Get("Accept-Encoding")
		w.Header().Set("X-Got-Accept-Encoding", ae)
		if ae == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write([]byte("pretend-gzip"))
			return
		}
		w.Write([]byte("plain"))
	})
	f := newFixture(t, oneUpstream("", "", be.URL))
	// A client that adds no Accept-Encoding of its own.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()
	for _, ae := range []string{"", "gzip"} {
		req, _ := http.NewRequest("GET", f.public.URL+"/x", nil)
		if ae != "" {
			req.Header.Set("Accept-Encoding", ae)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, 64)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Got-Accept-Encoding"); got != ae {
			t.Errorf("client Accept-Encoding %q: backend got %q", ae, got)
		}
		want, wantCE := "plain", ""
		if ae == "gzip" {
			want, wantCE = "pretend-gzip", "gzip"
		}
		if string(body[:n]) != want || resp.Header.Get("Content-Encoding") != wantCE {
			t.Errorf("client Accept-Encoding %q: body %q, Content-Encoding %q", ae, body[:n], resp.Header.Get("Content-Encoding"))
		}
	}
}
