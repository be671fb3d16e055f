package middleware

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echoLen answers with the body length it read, or 413 when the body limit
// cut the read (what the proxy does with IsBodyTooLarge).
func echoLen(called *bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*called = true
		b, err := io.ReadAll(r.Body)
		if IsBodyTooLarge(err) {
			writeError(w, http.StatusRequestEntityTooLarge, "too large")
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		fmt.Fprint(w, len(b))
	})
}

func TestBodyLimitContentLength(t *testing.T) {
	var called bool
	h := BodyLimit(10)(echoLen(&called))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("a", 11))))
	if msg := checkJSONError(t, rec, http.StatusRequestEntityTooLarge); !strings.Contains(msg, "10") {
		t.Errorf("error %q does not state the limit", msg)
	}
	if called {
		t.Error("inner handler ran for a declared oversize body")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("a", 10))))
	if rec.Code != 200 || rec.Body.String() != "10" {
		t.Fatalf("body at the limit: %d %q", rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || rec.Body.String() != "0" {
		t.Fatalf("no body: %d %q", rec.Code, rec.Body.String())
	}
}

// A chunked body has no Content-Length: the limit must bite while reading.
// This runs through a real server and client so the body really is chunked.
func TestBodyLimitChunked(t *testing.T) {
	var called bool
	inner := echoLen(&called)
	srv := httptest.NewServer(BodyLimit(1000)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != -1 || len(r.TransferEncoding) == 0 || r.TransferEncoding[0] != "chunked" {
			t.Errorf("server saw ContentLength %d TransferEncoding %v, want a chunked body", r.ContentLength, r.TransferEncoding)
		}
		inner.ServeHTTP(w, r)
	})))
	defer srv.Close()
	post := func(n int) (*http.Response, string) {
		t.Helper()
		// io.MultiReader hides the length, so the client sends chunked.
		body := io.MultiReader(strings.NewReader(strings.Repeat("b", n)))
		req, _ := http.NewRequest("POST", srv.URL, body)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := post(1000); resp.StatusCode != 200 || body != "1000" {
		t.Fatalf("chunked body at the limit: %d %q", resp.StatusCode, body)
	}
	resp, body := post(5000)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"error"`) {
		t.Fatalf("chunked body over the limit: %d %q", resp.StatusCode, body)
	}
}

func TestIsBodyTooLarge(t *testing.T) {
	err := fmt.Errorf("proxy: %w", &http.MaxBytesError{Limit: 5})
	if !IsBodyTooLarge(err) {
		t.Error("wrapped *http.MaxBytesError not recognised")
	}
	if IsBodyTooLarge(errors.New("connection reset")) || IsBodyTooLarge(nil) {
		t.Error("unrelated error reported as too large")
	}
}
