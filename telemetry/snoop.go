package telemetry

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/felixge/httpsnoop"
)

// ResponseState records what the handlers inside a [Snoop] wrapper did
// with the response writer. It is written by the goroutine serving the
// request only, and read by it (no locking).
type ResponseState struct {
	// Status is the final status written (>= 200, or 101), 0 if none yet.
	// A body write or flush without WriteHeader counts as 200, as net/http
	// sends it.
	Status int
	// Bytes counts the body bytes written.
	Bytes int64
	// Hijacked is set once the connection was taken over (WebSocket).
	Hijacked bool
}

// Started reports whether the response can no longer be replaced.
func (s *ResponseState) Started() bool { return s.Status != 0 || s.Hijacked }

func (s *ResponseState) writeHeader(code int) {
	// 1xx other than 101 are informational: the final status follows.
	if s.Status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.Status = code
	}
}

func (s *ResponseState) implicitOK() {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
}

// Snoop wraps w so that the returned state follows the status, body bytes
// and hijack of the response. The wrapper has exactly the optional
// interfaces of w (http.Flusher, http.Hijacker, io.ReaderFrom, ...) and
// implements Unwrap for [http.ResponseController], so streaming and
// WebSocket upgrades pass through. Not safe for concurrent writes, like
// any ResponseWriter.
//
// Why two implementations: github.com/felixge/httpsnoop handles every
// combination of optional interfaces, but builds its hooks as closures at
// each wrap (about fifteen allocations), on every request. The writer of
// net/http's HTTP/1.x server (and this package's own wrapper, which has the
// same method set) gets a hand-written wrapper with one allocation; only
// when w has exactly that method set, so no interface is ever added or
// hidden. Anything else (an HTTP/2 writer with Push, a test recorder) goes
// through httpsnoop.
//
// [NewHTTPServer] wraps once per request and puts the state in the request
// context ([ResponseStateFrom]); layers further in (an access log, a
// recover) read it there instead of wrapping again.
func Snoop(w http.ResponseWriter) (http.ResponseWriter, *ResponseState) {
	if sw, ok := w.(serverWriter); ok {
		if _, push := w.(http.Pusher); !push {
			f := &fastSnoop{w: sw}
			return f, &f.state
		}
	}
	return slowSnoop(w)
}

// serverWriter is the method set of net/http's HTTP/1.x response writer
// (Go 1.21+), minus Push, which it does not have.
type serverWriter interface {
	http.ResponseWriter
	http.Flusher
	FlushError() error
	http.CloseNotifier //nolint:staticcheck // part of the method set to keep
	http.Hijacker
	io.ReaderFrom
	io.StringWriter
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	EnableFullDuplex() error
}

// fastSnoop wraps a serverWriter; see Snoop.
type fastSnoop struct {
	w     serverWriter
	state ResponseState
}

var _ serverWriter = (*fastSnoop)(nil)

func (f *fastSnoop) Header() http.Header { return f.w.Header() }

func (f *fastSnoop) Unwrap() http.ResponseWriter { return f.w }

func (f *fastSnoop) WriteHeader(code int) {
	f.state.writeHeader(code)
	f.w.WriteHeader(code)
}

func (f *fastSnoop) Write(b []byte) (int, error) {
	f.state.implicitOK()
	n, err := f.w.Write(b)
	f.state.Bytes += int64(n)
	return n, err
}

func (f *fastSnoop) WriteString(s string) (int, error) {
	f.state.implicitOK()
	n, err := f.w.WriteString(s)
	f.state.Bytes += int64(n)
	return n, err
}

func (f *fastSnoop) ReadFrom(src io.Reader) (int64, error) {
	f.state.implicitOK()
	n, err := f.w.ReadFrom(src)
	f.state.Bytes += n
	return n, err
}

func (f *fastSnoop) Flush() {
	f.state.implicitOK()
	f.w.Flush()
}

func (f *fastSnoop) FlushError() error {
	f.state.implicitOK()
	return f.w.FlushError()
}

func (f *fastSnoop) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := f.w.Hijack()
	if err == nil {
		f.state.Hijacked = true
	}
	return c, rw, err
}

func (f *fastSnoop) CloseNotify() <-chan bool { return f.w.CloseNotify() } //nolint:staticcheck

func (f *fastSnoop) SetReadDeadline(t time.Time) error  { return f.w.SetReadDeadline(t) }
func (f *fastSnoop) SetWriteDeadline(t time.Time) error { return f.w.SetWriteDeadline(t) }
func (f *fastSnoop) EnableFullDuplex() error            { return f.w.EnableFullDuplex() }

// slowSnoop is Snoop for any writer, through httpsnoop.
func slowSnoop(w http.ResponseWriter) (http.ResponseWriter, *ResponseState) {
	s := &ResponseState{}
	return httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) {
				s.writeHeader(code)
				next(code)
			}
		},
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(b []byte) (int, error) {
				s.implicitOK()
				n, err := next(b)
				s.Bytes += int64(n)
				return n, err
			}
		},
		ReadFrom: func(next httpsnoop.ReadFromFunc) httpsnoop.ReadFromFunc {
			return func(src io.Reader) (int64, error) {
				s.implicitOK()
				n, err := next(src)
				s.Bytes += n
				return n, err
			}
		},
		Flush: func(next httpsnoop.FlushFunc) httpsnoop.FlushFunc {
			return func() {
				s.implicitOK()
				next()
			}
		},
		Hijack: func(next httpsnoop.HijackFunc) httpsnoop.HijackFunc {
			return func() (net.Conn, *bufio.ReadWriter, error) {
				c, rw, err := next()
				if err == nil {
					s.Hijacked = true
				}
				return c, rw, err
			}
		},
	}), s
}
