package middleware

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// wait is a generous deadline for events on a loaded machine.
const wait = 30 * time.Second

// signalDone is an outermost layer telling the test that the layers inside
// it (and so the access log line) have finished.
func signalDone(done chan<- string) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() { done <- r.URL.Path }()
			next.ServeHTTP(w, r)
		})
	}
}

func waitFor(t *testing.T, ch <-chan string, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func TestAccessLogLine(t *testing.T) {
	logger, logs := newLogger()
	h := Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetRoute(r.Context(), "/v1/")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "hello")
	}), AccessLog(logger), RequestID())
	req := httptest.NewRequest("PUT", "/v1/things?x=1", nil)
	req.Header.Set("User-Agent", "tester/1.0")
	req.Header.Set(HeaderRequestID, "rid-7")
	h.ServeHTTP(httptest.NewRecorder(), req)

	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1", len(lines))
	}
	l := lines[0]
	want := map[string]any{
		"level": "INFO", "msg": "http request", "method": "PUT", "path": "/v1/things", "route": "/v1/",
		"status": float64(201), "bytes": float64(5), "client_ip": "192.0.2.1", "request_id": "rid-7",
		"user_agent": "tester/1.0",
	}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %#v, want %#v (line %v)", k, l[k], v, l)
		}
	}
	if d, ok := l["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms = %#v, want a non-negative number", l["duration_ms"])
	}
}

func TestAccessLogLevelsAndDefaults(t *testing.T) {
	cases := []struct {
		name   string
		h      http.HandlerFunc
		status float64
		level  string
	}{
		{"wrote nothing", func(http.ResponseWriter, *http.Request) {}, 200, "INFO"},
		{"body only", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("x")) }, 200, "INFO"},
		{"early hints then 204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(103); w.WriteHeader(204) }, 204, "INFO"},
		{"404", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) }, 404, "INFO"},
		{"explicit 499", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(StatusClientClosedRequest) }, 499, "INFO"},
		{"502", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(502) }, 502, "ERROR"},
		{"500", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }, 500, "ERROR"},
	}
	for _, tc := range cases {
		logger, logs := newLogger()
		AccessLog(logger)(tc.h).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
		lines := logs.lines(t)
		if len(lines) != 1 || lines[0]["status"] != tc.status || lines[0]["level"] != tc.level {
			t.Errorf("%s: lines = %v, want status %v at %s", tc.name, lines, tc.status, tc.level)
		}
		if _, ok := lines[0]["route"]; ok {
			t.Errorf("%s: route logged without a route: %v", tc.name, lines[0])
		}
	}
}

func TestAccessLogRouteFromServeMuxPattern(t *testing.T) {
	logger, logs := newLogger()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(http.ResponseWriter, *http.Request) {})
	// The mux sets Pattern on the request accesslog passed in.
	AccessLog(logger)(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/items/9", nil))
	if l := logs.lines(t); len(l) != 1 || l[0]["route"] != "GET /items/{id}" {
		t.Fatalf("lines = %v, want route from the mux pattern", l)
	}
}

func TestAccessLogRouteFromOuterContext(t *testing.T) {
	logger, logs := newLogger()
	h := AccessLog(logger)(okHandler)
	req := httptest.NewRequest("GET", "/v2/x", nil)
	h.ServeHTTP(httptest.NewRecorder(), req.WithContext(WithRoute(req.Context(), "/v2/")))
	if l := logs.lines(t); len(l) != 1 || l[0]["route"] != "/v2/" {
		t.Fatalf("lines = %v, want route /v2/ from WithRoute", l)
	}
}

// A client that hangs up while the handler waits is logged as 499 at info.
func TestAccessLogClientGoneIs499(t *testing.T) {
	logger, logs := newLogger()
	started := make(chan string, 1)
	done := make(chan string, 1)
	srv := httptest.NewServer(Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.URL.Path
		<-r.Context().Done() // like a proxy whose client went away: it writes nothing
	}), signalDone(done), AccessLog(logger)))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/slow", nil)
		resp, err := srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, started, "the handler to start")
	cancel()
	waitFor(t, done, "the handler to finish")
	if err := <-errc; err == nil {
		t.Fatal("canceled request succeeded")
	}
	l := logs.lines(t)
	if len(l) != 1 || l[0]["status"] != float64(499) || l[0]["level"] != "INFO" || l[0]["path"] != "/slow" {
		t.Fatalf("lines = %v, want one 499 at INFO", l)
	}
}

// Streaming (Flush), WebSocket-style upgrades (Hijack) and sendfile
// (ReadFrom) must survive the accesslog's response writer wrapper.
func TestAccessLogKeepsOptionalInterfaces(t *testing.T) {
	logger, logs := newLogger()
	done := make(chan string, 3)
	clientGotFirst := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("writer lost http.Flusher")
		}
		io.WriteString(w, "first\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		select { // the rest is sent only once the client has seen the flushed part
		case <-clientGotFirst:
		case <-time.After(wait):
			t.Error("client never saw the flushed line")
		}
		io.WriteString(w, "second\n")
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); !ok {
			t.Error("writer lost http.Hijacker")
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		defer conn.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprint(brw, "echo: "+line)
		brw.Flush()
	})
	mux.HandleFunc("/readfrom", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("writer lost io.ReaderFrom")
		}
		// Hide strings.Reader's WriteTo so io.Copy goes through w.ReadFrom.
		io.Copy(w, struct{ io.Reader }{strings.NewReader(strings.Repeat("z", 10000))})
	})
	srv := httptest.NewServer(Chain(mux, signalDone(done), AccessLog(logger)))
	defer srv.Close()

	// Streaming.
	resp, err := srv.Client().Get(srv.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if l, err := br.ReadString('\n'); err != nil || l != "first\n" {
		t.Fatalf("first streamed line = %q, %v", l, err)
	}
	close(clientGotFirst)
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if string(rest) != "second\n" {
		t.Fatalf("rest = %q", rest)
	}
	waitFor(t, done, "/stream")

	// Upgrade.
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wait))
	fmt.Fprint(conn, "GET /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	cr := bufio.NewReader(conn)
	uresp, err := http.ReadResponse(cr, nil)
	if err != nil || uresp.StatusCode != 101 {
		t.Fatalf("upgrade response = %v, %v", uresp, err)
	}
	fmt.Fprint(conn, "ping\n")
	if l, err := cr.ReadString('\n'); err != nil || l != "echo: ping\n" {
		t.Fatalf("after upgrade got %q, %v", l, err)
	}
	waitFor(t, done, "/upgrade")

	// ReadFrom.
	resp, err = srv.Client().Get(srv.URL + "/readfrom")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(body) != 10000 {
		t.Fatalf("readfrom body = %d bytes", len(body))
	}
	waitFor(t, done, "/readfrom")

	want := map[string][2]float64{"/stream": {200, 13}, "/upgrade": {101, 0}, "/readfrom": {200, 10000}}
	lines := logs.lines(t)
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3: %v", len(lines), lines)
	}
	for _, l := range lines {
		w, ok := want[l["path"].(string)]
		if !ok || l["status"] != w[0] || l["bytes"] != w[1] {
			t.Errorf("line %v, want status %v bytes %v", l, w[0], w[1])
		}
	}
}

// A handler that panics still gets its access log line: a real panic is
// logged 500 (what recover answers), and a response aborted with
// http.ErrAbortHandler for a client that went away is logged 499 while
// nothing at all reaches the wire (no 200, no 499 status line).
func TestAccessLogPanickingHandlers(t *testing.T) {
	logger, logs := newLogger()
	done := make(chan string, 2)
	srv := httptest.NewServer(Chain(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/boom":
			panic("boom")
		case "/gone":
			<-r.Context().Done() // the client half-closed: net/http cancels the context
			panic(http.ErrAbortHandler)
		}
	}), signalDone(done), Recover(slog.New(slog.DiscardHandler)), AccessLog(logger)))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, done, "/boom to finish")
	if resp.StatusCode != 500 {
		t.Fatalf("/boom: status %d, want 500", resp.StatusCode)
	}

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(wait))
	raw, err := io.ReadAll(c)
	if err != nil || len(raw) != 0 {
		t.Fatalf("aborted response: read %q (err %v), want nothing and EOF", raw, err)
	}
	waitFor(t, done, "/gone to finish")

	got := map[any]any{}
	for _, l := range logs.lines(t) {
		got[l["path"]] = l["status"]
	}
	if got["/boom"] != float64(500) || got["/gone"] != float64(499) {
		t.Fatalf("access log statuses %v, want /boom 500 and /gone 499", got)
	}
}
