package middleware

import (
	"bufio"
	"io"
	"net"
	"net/http"

	"github.com/felixge/httpsnoop"
)

// respState records what an inner handler did with its response writer.
type respState struct {
	status   int   // final status written, 0 if none yet
	bytes    int64 // body bytes written
	hijacked bool
}

// started reports whether the response can no longer be replaced.
func (s *respState) started() bool { return s.status != 0 || s.hijacked }

// snoop wraps w to fill a respState. httpsnoop keeps the exact set of
// optional interfaces (Flusher, Hijacker, ReaderFrom, ...) that w has, and
// the wrapper implements Unwrap for http.ResponseController.
func snoop(w http.ResponseWriter) (http.ResponseWriter, *respState) {
	s := &respState{}
	return httpsnoop.Wrap(w, httpsnoop.Hooks{
		WriteHeader: func(next httpsnoop.WriteHeaderFunc) httpsnoop.WriteHeaderFunc {
			return func(code int) {
				// 1xx other than 101 are informational: the final status follows.
				if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
					s.status = code
				}
				next(code)
			}
		},
		Write: func(next httpsnoop.WriteFunc) httpsnoop.WriteFunc {
			return func(b []byte) (int, error) {
				if s.status == 0 {
					s.status = http.StatusOK
				}
				n, err := next(b)
				s.bytes += int64(n)
				return n, err
			}
		},
		ReadFrom: func(next httpsnoop.ReadFromFunc) httpsnoop.ReadFromFunc {
			return func(src io.Reader) (int64, error) {
				if s.status == 0 {
					s.status = http.StatusOK
				}
				n, err := next(src)
				s.bytes += n
				return n, err
			}
		},
		Flush: func(next httpsnoop.FlushFunc) httpsnoop.FlushFunc {
			return func() {
				if s.status == 0 {
					s.status = http.StatusOK
				}
				next()
			}
		},
		Hijack: func(next httpsnoop.HijackFunc) httpsnoop.HijackFunc {
			return func() (net.Conn, *bufio.ReadWriter, error) {
				c, rw, err := next()
				if err == nil {
					s.hijacked = true
				}
				return c, rw, err
			}
		},
	}), s
}
