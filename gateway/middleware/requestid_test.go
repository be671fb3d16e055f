package middleware

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// serveID runs the requestid middleware and returns the id seen by the inner
// handler in the context and request header, and the response header.
func serveID(t *testing.T, incoming []string) (ctxID, reqHdr, respHdr string) {
	t.Helper()
	h := RequestID()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctxID = RequestIDFrom(r.Context())
		if vs := r.Header.Values(HeaderRequestID); len(vs) != 1 {
			t.Errorf("request carries %d X-Request-Id values upstream, want 1", len(vs))
		}
		reqHdr = r.Header.Get(HeaderRequestID)
	}))
	req := httptest.NewRequest("GET", "/", nil)
	for _, v := range incoming {
		req.Header.Add(HeaderRequestID, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return ctxID, reqHdr, rec.Header().Get(HeaderRequestID)
}

func TestRequestIDKeepsSaneID(t *testing.T) {
	for _, in := range []string{"abc-123", "0af7651916cd43dd8448eb211c80319c", strings.Repeat("x", 128), "a/b:c=d"} {
		c, q, p := serveID(t, []string{in})
		if c != in || q != in || p != in {
			t.Errorf("incoming %q: ctx %q, request %q, response %q; want it kept", in, c, q, p)
		}
	}
}

func TestRequestIDReplacesHostileID(t *testing.T) {
	hostile := [][]string{
		nil,
		{""},
		{"abc\ndef"},
		{"abc\r\nX-Evil: 1"},
		{strings.Repeat("a", 10*1024)},
		{strings.Repeat("x", 129)},
		{"has space"},
		{"tab\tin"},
		{"nul\x00"},
		{"é-unicode"},
		{"one", "two"},
	}
	seen := map[string]bool{}
	for _, in := range hostile {
		c, q, p := serveID(t, in)
		if !hexID.MatchString(c) || q != c || p != c {
			t.Errorf("incoming %q: ctx %q, request %q, response %q; want one fresh 32-hex id everywhere", in, c, q, p)
		}
		if seen[c] {
			t.Errorf("id %q generated twice", c)
		}
		seen[c] = true
	}
}

func TestRequestIDFromEmptyContext(t *testing.T) {
	if id := RequestIDFrom(httptest.NewRequest("GET", "/", nil).Context()); id != "" {
		t.Fatalf("RequestIDFrom(no id) = %q", id)
	}
}

func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"abc", "", "a\nb", strings.Repeat("z", 200), "\x7f", "ok-1:2/3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h := RequestID()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := RequestIDFrom(r.Context())
			if !ValidRequestID(id) {
				t.Fatalf("incoming %q produced invalid id %q", in, id)
			}
			if ValidRequestID(in) && id != in {
				t.Fatalf("valid incoming %q replaced by %q", in, id)
			}
			if !ValidRequestID(in) && !hexID.MatchString(id) {
				t.Fatalf("invalid incoming %q gave %q, want a generated id", in, id)
			}
			if r.Header.Get(HeaderRequestID) != id || w.Header().Get(HeaderRequestID) != id {
				t.Fatalf("headers disagree with context id %q", id)
			}
		}))
		req := httptest.NewRequest("GET", "/", nil)
		req.Header[HeaderRequestID] = []string{in}
		h.ServeHTTP(httptest.NewRecorder(), req)
	})
}
