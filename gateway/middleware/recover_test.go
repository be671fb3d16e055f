package middleware

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func panicky(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "3")
	w.Header().Set("Content-Encoding", "gzip")
	panic("boom in handler")
}

func TestRecoverPanicGives500AndLogsStack(t *testing.T) {
	logger, logs := newLogger()
	h := Chain(http.HandlerFunc(panicky), Recover(logger), RequestID())
	req := httptest.NewRequest("POST", "/v1/payloads", nil)
	req.Header.Set(HeaderRequestID, "req-42")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	checkJSONError(t, rec, http.StatusInternalServerError)
	if cl, ce := rec.Header().Get("Content-Length"), rec.Header().Get("Content-Encoding"); cl != "" || ce != "" {
		t.Errorf("500 carries the panicking handler's Content-Length %q / Content-Encoding %q", cl, ce)
	}
	if rec.Header().Get(HeaderRequestID) != "req-42" {
		t.Errorf("500 lost the X-Request-Id response header")
	}
	if strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("panic value leaked to the client: %q", rec.Body.String())
	}
	lines := logs.lines(t)
	if len(lines) != 1 {
		t.Fatalf("got %d log lines, want 1", len(lines))
	}
	l := lines[0]
	if l["level"] != "ERROR" || l["method"] != "POST" || l["path"] != "/v1/payloads" ||
		l["request_id"] != "req-42" || l["panic"] != "boom in handler" {
		t.Errorf("log line = %v", l)
	}
	stack, _ := l["stack"].(string)
	if !strings.Contains(stack, "middleware.panicky") || !strings.Contains(stack, "recover_test.go") {
		t.Errorf("stack does not show the panicking function:\n%s", stack)
	}
}

func TestRecoverRepanicsErrAbortHandler(t *testing.T) {
	logger, logs := newLogger()
	h := Recover(logger)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	got := func() (rec any) {
		defer func() { rec = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		return nil
	}()
	if got != http.ErrAbortHandler {
		t.Fatalf("recovered %v, want http.ErrAbortHandler", got)
	}
	if n := len(logs.lines(t)); n != 0 {
		t.Errorf("ErrAbortHandler was logged (%d lines); net/http treats it as a deliberate abort", n)
	}
}

// A panic after the response started cannot become a 500: the connection
// must be cut so the client sees a truncated response.
func TestRecoverAfterWriteAbortsConnection(t *testing.T) {
	logger, logs := newLogger()
	srv := httptest.NewServer(Recover(logger)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("partial")) // chunked: only the final chunk would mark it complete
		http.NewResponseController(w).Flush()
		panic("late boom")
	})))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("client read a complete response after a mid-response panic")
	}
	lines := logs.lines(t)
	if len(lines) != 1 || lines[0]["panic"] != "late boom" {
		t.Fatalf("log lines = %v, want the late panic logged once", lines)
	}
}
