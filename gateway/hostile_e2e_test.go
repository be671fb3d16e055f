package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientCase is one hostile client, written over a raw TCP connection
// because net/http's client cannot send a malformed request.
type clientCase struct {
	name string
	// send writes the request (and misbehaves) on c.
	send func(c *net.TCPConn, path string) error
	// want is the status line's code the client must read ("" to read
	// nothing: the client is gone, or must get no response at all).
	want string
	// nothing: the client must read zero bytes (a half-closed client whose
	// request was aborted: no literal 499, no 200).
	nothing bool
}

func writeAll(c net.Conn, parts ...string) error {
	for _, p := range parts {
		if _, err := io.WriteString(c, p); err != nil {
			return err
		}
	}
	return nil
}

func hostileCases(slowEvery time.Duration) []clientCase {
	post := func(path, hdrs string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: gw\r\nUser-Agent: hostile\r\n" + hdrs + "\r\n"
	}
	return []clientCase{
		{name: "chunked with bare LF", want: "400", send: func(c *net.TCPConn, p string) error {
			return writeAll(c, post(p, "Transfer-Encoding: chunked\r\n"), "4\nabcd\n0\n\n")
		}},
		{name: "chunk size zz", want: "400", send: func(c *net.TCPConn, p string) error {
			return writeAll(c, post(p, "Transfer-Encoding: chunked\r\n"), "zz\r\nabcd\r\n0\r\n\r\n")
		}},
		{name: "body shorter than Content-Length, then half-close", want: "400", send: func(c *net.TCPConn, p string) error {
			if err := writeAll(c, post(p, "Content-Length: 100\r\n"), "0123456789"); err != nil {
				return err
			}
			return c.CloseWrite()
		}},
		{name: "body cut short by a reset", send: func(c *net.TCPConn, p string) error {
			if err := writeAll(c, post(p, "Content-Length: 100\r\n"), "0123456789"); err != nil {
				return err
			}
			time.Sleep(100 * time.Millisecond) // let the gateway start proxying
			_ = c.SetLinger(0)
			return c.Close()
		}},
		{name: "chunked body over the bodylimit", want: "413", send: func(c *net.TCPConn, p string) error {
			return writeAll(c, post(p, "Transfer-Encoding: chunked\r\n"), "800\r\n", strings.Repeat("x", 0x800), "\r\n0\r\n\r\n")
		}},
		{name: "body stalls", want: "408", send: func(c *net.TCPConn, p string) error {
			return writeAll(c, post(p, "Content-Length: 100\r\n"), "01234")
		}},
		{name: "body drips below min_rate", want: "408", send: func(c *net.TCPConn, p string) error {
			if err := writeAll(c, post(p, "Content-Length: 1000\r\n")); err != nil {
				return err
			}
			for range 1000 { // ends when the gateway cuts the connection
				if err := writeAll(c, "x"); err != nil {
					return nil
				}
				time.Sleep(slowEvery)
			}
			return nil
		}},
		{name: "half-closed client while the upstream works", nothing: true, send: func(c *net.TCPConn, p string) error {
			if err := writeAll(c, "GET "+p+"hold HTTP/1.1\r\nHost: gw\r\nUser-Agent: hostile\r\n\r\n"); err != nil {
				return err
			}
			return c.CloseWrite()
		}},
	}
}

var statusLine499 = regexp.MustCompile(`(?m)^HTTP/\d(\.\d)? 499`)

// runHostile runs cc against addr+path and checks what the client reads.
func runHostile(addr, path string, cc clientCase) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	c := conn.(*net.TCPConn)
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return err
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- cc.send(c, path) }()
	if cc.want == "" && !cc.nothing {
		return <-sendErr // gone: nothing to read
	}
	raw, readErr := io.ReadAll(c) // the gateway closes after an error answer
	if err := <-sendErr; err != nil && len(raw) == 0 {
		return fmt.Errorf("send: %w", err)
	}
	if errors.Is(readErr, os.ErrDeadlineExceeded) {
		// The gateway kept the connection after its answer (or never
		// answered), which is what lets slow clients pile up. (A reset
		// after the answer is fine: the gateway closed on a client still
		// sending.)
		return fmt.Errorf("connection not closed by the gateway after %q: %w", raw, readErr)
	}
	if statusLine499.Match(raw) {
		return fmt.Errorf("a 499 went on the wire: %q", raw)
	}
	if cc.nothing {
		if len(raw) != 0 {
			return fmt.Errorf("aborted request: read %q, want nothing (no 200, no 499)", raw)
		}
		return nil
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), nil)
	if err != nil {
		return fmt.Errorf("no HTTP response (read error %v): %q", readErr, raw)
	}
	resp.Body.Close()
	if got := fmt.Sprint(resp.StatusCode); got != cc.want {
		return fmt.Errorf("status %s, want %s: %q", got, cc.want, raw)
	}
	return nil
}

// TestE2EClientFaultsNeverCountAgainstTargets: hostile clients (malformed
// chunking, short bodies, resets, oversized and slow bodies, half-closed
// connections) are answered as client errors (400, 408, 413; 499 only in
// the log) and never count against a target: after many of them on every
// balancer, with a passive threshold of 2, every target is still healthy
// with no failure, nothing was retried, and a good request still works.
func TestE2EClientFaultsNeverCountAgainstTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e")
	}
	handler := func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		if strings.HasSuffix(r.URL.Path, "/hold") {
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		io.WriteString(w, "ok")
	}
	a, b := newBackend(t, "a", handler), newBackend(t, "b", handler)
	balancers := []string{"round_robin", "weighted_round_robin", "random", "consistent_hash", "least_conn", "p2c_ewma"}
	var cfg strings.Builder
	cfg.WriteString(`
request_body: {timeout: 2s, min_rate: 50}
middleware: {bodylimit: {max_bytes: 1024}}
routes:
`)
	for _, bal := range balancers {
		fmt.Fprintf(&cfg, "  - {path_prefix: /%s/, upstream: %s, middleware: [bodylimit]}\n", bal, bal)
	}
	cfg.WriteString("upstreams:\n")
	for _, bal := range balancers {
		hash := ""
		if bal == "consistent_hash" {
			hash = "hash_on: path, "
		}
		fmt.Fprintf(&cfg, "  %s: {balancer: %s, %sretries: 2, passive: {fail_threshold: 2, window: 5m, eject_for: 5m}, targets: [{url: %q}, {url: %q}]}\n",
			bal, bal, hash, a.URL, b.URL)
	}
	p := startGateway(t, cfg.String())
	addr := strings.TrimPrefix(p.public, "http://")

	cases := hostileCases(100 * time.Millisecond) // 10 B/s, below min_rate
	const reps = 3                                // > fail_threshold per target
	for _, bal := range balancers {
		var wg sync.WaitGroup
		errs := make(chan string, reps*len(cases))
		for i := range reps {
			for _, cc := range cases {
				path := fmt.Sprintf("/%s/c%d/", bal, i)
				wg.Go(func() {
					if err := runHostile(addr, path, cc); err != nil {
						errs <- fmt.Sprintf("%s %s: %v", bal, cc.name, err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	}

	for _, bal := range balancers {
		for _, ts := range p.upstreams(t)[bal].Targets {
			if !ts.Healthy || ts.Ejected || ts.Failures != 0 || ts.Ejections != 0 || ts.Inflight != 0 {
				t.Errorf("%s: target %s after hostile clients: %+v", bal, ts.URL, ts)
			}
		}
		req, _ := http.NewRequest(http.MethodPost, p.public+"/"+bal+"/good", strings.NewReader(`{"a":1}`))
		if resp, body := do(t, req); resp.StatusCode != 200 || body != "ok" {
			t.Errorf("%s: good request after hostile clients: %d %q", bal, resp.StatusCode, body)
		}
	}
	_, metrics := get(t, p.admin+"/metrics")
	// The counter may be absent or exported at 0; any other value is a retry.
	for _, l := range strings.Split(grepLines(metrics, "wardgate_upstream_retries_total{"), "\n") {
		if l != "" && !strings.HasSuffix(l, " 0") {
			t.Errorf("client faults were retried: %s", l)
		}
	}
	for _, msg := range []string{"upstream attempt failed", "target ejected after repeated failures"} {
		if l := p.logs.lines(msg); len(l) > 0 {
			t.Errorf("%d %q lines for client faults, first: %v", len(l), msg, l[0])
		}
	}
	statuses := map[float64]int{}
	for _, l := range p.logs.lines("http request") {
		if s, _ := l["status"].(float64); l["user_agent"] == "hostile" {
			statuses[s]++
		}
	}
	for _, want := range []float64{400, 408, 413, 499} {
		if statuses[want] == 0 {
			t.Errorf("no access log line with status %v for the hostile clients (got %v)", want, statuses)
		}
	}
	if statuses[502] != 0 || statuses[503] != 0 || statuses[504] != 0 || statuses[200] != 0 {
		t.Errorf("hostile clients logged as upstream errors or successes: %v", statuses)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
