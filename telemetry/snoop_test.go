package telemetry

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/felixge/httpsnoop"
)

// optionalInterfaces are the interfaces a ResponseWriter wrapper must
// neither add nor hide.
var optionalInterfaces = map[string]reflect.Type{
	"Flusher":          reflect.TypeFor[http.Flusher](),
	"FlushError":       reflect.TypeFor[interface{ FlushError() error }](),
	"CloseNotifier":    reflect.TypeFor[http.CloseNotifier](), //nolint:staticcheck
	"Hijacker":         reflect.TypeFor[http.Hijacker](),
	"ReaderFrom":       reflect.TypeFor[io.ReaderFrom](),
	"StringWriter":     reflect.TypeFor[io.StringWriter](),
	"Pusher":           reflect.TypeFor[http.Pusher](),
	"Deadlines":        reflect.TypeFor[interface{ SetReadDeadline(time.Time) error }](),
	"EnableFullDuplex": reflect.TypeFor[interface{ EnableFullDuplex() error }](),
	"Unwrap":           reflect.TypeFor[interface{ Unwrap() http.ResponseWriter }](),
}

func interfacesOf(w http.ResponseWriter) string {
	var has []string
	for name, it := range optionalInterfaces {
		if reflect.TypeOf(w).Implements(it) {
			has = append(has, name)
		}
	}
	return fmt.Sprint(sortedStrings(has))
}

func sortedStrings(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

// Snoop's wrapper must have exactly the optional interfaces httpsnoop's
// would, for net/http's own writer (the fast path), for a wrapper of a
// wrapper (the gateway nests three), and for a writer of another shape.
func TestSnoopKeepsExactlyTheInterfacesOfTheWriter(t *testing.T) {
	type result struct{ fast, fastNested, want, fastType string }
	got := make(chan result, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s1, _ := Snoop(w)
		s2, _ := Snoop(s1)
		got <- result{
			fast:       interfacesOf(s1),
			fastNested: interfacesOf(s2),
			want:       interfacesOf(httpsnoop.Wrap(w, httpsnoop.Hooks{})),
			fastType:   fmt.Sprintf("%T %T", s1, s2),
		}
	}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	res := <-got
	if res.fast != res.want || res.fastNested != res.want {
		t.Errorf("interfaces: Snoop %s, nested %s, httpsnoop %s", res.fast, res.fastNested, res.want)
	}
	if res.fastType != "*telemetry.fastSnoop *telemetry.fastSnoop" {
		t.Errorf("net/http's writer did not take the fast path: %s", res.fastType)
	}

	// A recorder (Flusher only) and a writer with Push go through httpsnoop.
	for _, w := range []http.ResponseWriter{httptest.NewRecorder(), pushWriter{httptest.NewRecorder()}} {
		sw, _ := Snoop(w)
		if _, fast := sw.(*fastSnoop); fast {
			t.Errorf("%T took the fast path", w)
		}
		if g, want := interfacesOf(sw), interfacesOf(httpsnoop.Wrap(w, httpsnoop.Hooks{})); g != want {
			t.Errorf("%T: interfaces %s, want %s", w, g, want)
		}
	}
}

type pushWriter struct{ *httptest.ResponseRecorder }

func (pushWriter) Push(string, *http.PushOptions) error { return nil }

// The state follows every way a handler can answer, on the fast path (a
// real server) and through httpsnoop (a recorder).
func TestSnoopState(t *testing.T) {
	cases := []struct {
		name       string
		h          func(w http.ResponseWriter)
		status     int
		bytes      int64
		recorderOK bool // the case can run on a ResponseRecorder
	}{
		{"nothing", func(w http.ResponseWriter) {}, 0, 0, true},
		{"write", func(w http.ResponseWriter) { io.WriteString(w, "hello") }, 200, 5, true},
		{"writestring", func(w http.ResponseWriter) { w.(io.StringWriter).WriteString("hey") }, 200, 3, false},
		{"header then write", func(w http.ResponseWriter) { w.WriteHeader(404); w.Write([]byte("no")) }, 404, 2, true},
		{"informational first", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(201) }, 201, 0, true},
		{"flush", func(w http.ResponseWriter) { http.NewResponseController(w).Flush() }, 200, 0, true},
		{"readfrom", func(w http.ResponseWriter) {
			io.Copy(w, struct{ io.Reader }{strings.NewReader("abcdef")})
		}, 200, 6, true},
		{"deadlines and full duplex", func(w http.ResponseWriter) {
			rc := http.NewResponseController(w)
			if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
				panic(err)
			}
			if err := rc.EnableFullDuplex(); err != nil {
				panic(err)
			}
			w.WriteHeader(204)
		}, 204, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan ResponseState, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sw, st := Snoop(w)
				tc.h(sw)
				got <- *st
			}))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if st := <-got; st.Status != tc.status || st.Bytes != tc.bytes || st.Hijacked {
				t.Errorf("real server: state %+v, want status %d bytes %d", st, tc.status, tc.bytes)
			}
			if !tc.recorderOK {
				return
			}
			sw, st := Snoop(httptest.NewRecorder())
			tc.h(sw)
			if st.Status != tc.status || st.Bytes != tc.bytes {
				t.Errorf("recorder: state %+v, want status %d bytes %d", *st, tc.status, tc.bytes)
			}
		})
	}
}

func TestSnoopHijack(t *testing.T) {
	got := make(chan ResponseState, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw, st := Snoop(w)
		sw, _ = Snoop(sw) // through two layers, as in the gateway
		conn, brw, err := http.NewResponseController(sw).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			got <- *st
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		got <- *st
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("response %v, %v", resp, err)
	}
	if st := <-got; !st.Hijacked || !st.Started() {
		t.Errorf("state after hijack: %+v", st)
	}
}
