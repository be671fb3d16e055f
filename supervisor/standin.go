package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// StandIn answers HTTP on a listening socket the caller holds for a child
// (passed to it as an inherited fd) while that child is down for a while.
// Connections to a held socket are queued by the kernel while no process
// accepts them: right through a short restart, wrong through a crash loop's
// long backoff, where clients would hang for seconds. Between Start and Stop
// the stand-in accepts them itself and answers every request 503 with
// Retry-After and Connection: close; it never closes the socket.
type StandIn struct {
	ln      *net.TCPListener
	service string
	log     *slog.Logger

	mu      sync.Mutex
	srv     *http.Server
	stopped chan struct{} // closed by Stop: Accept errors end Serve
	served  chan struct{} // closed when Serve returned
	until   time.Time     // when the child is expected back
}

// NewStandIn returns a stand-in for service on ln, which must be a TCP
// listener (the caller's copy of the child's socket).
func NewStandIn(ln net.Listener, service string, log *slog.Logger) (*StandIn, error) {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, fmt.Errorf("supervisor: stand-in for %s: listener on %s is not TCP", service, ln.Addr())
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StandIn{ln: tl, service: service, log: log}, nil
}

// Start begins answering; the child is expected back after d (the
// Retry-After). Start while started only moves that time.
func (s *StandIn) Start(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.until = time.Now().Add(d)
	if s.srv != nil {
		return
	}
	_ = s.ln.SetDeadline(time.Time{})
	s.stopped, s.served = make(chan struct{}), make(chan struct{})
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	srv, l := s.srv, &standInListener{TCPListener: s.ln, stopped: s.stopped}
	served := s.served
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	s.log.Info("answering 503 for a child in restart backoff", "child", s.service, "retry_after", d.String())
}

// Stop stops accepting (connections queue for the child again) and
// returns once no more will be accepted; requests being answered finish
// on their own.
func (s *StandIn) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	close(s.stopped)
	_ = s.ln.SetDeadline(time.Now()) // wakes the Accept in progress
	<-s.served
	_ = s.ln.SetDeadline(time.Time{})
	s.srv = nil
}

func (s *StandIn) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	left := time.Until(s.until)
	s.mu.Unlock()
	retry := max(1, int(math.Ceil(left.Seconds())))
	body := fmt.Sprintf(`{"error":"%s restarting","retry_after_seconds":%d}`+"\n", s.service, retry)
	h := w.Header()
	h.Set("Retry-After", strconv.Itoa(retry))
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("Connection", "close")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(body))
}

// standInListener is the held socket as the stand-in's server sees it:
// Close does not close it, and once stopped, Accept fails for good (the
// deadline Stop sets would otherwise be retried as a temporary error).
type standInListener struct {
	*net.TCPListener
	stopped chan struct{}
}

func (l *standInListener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.Accept()
	select {
	case <-l.stopped:
		if c != nil {
			// Accepted as Stop ran: the child was about to take it; this
			// one gets the 503 rather than a reset.
			return c, nil
		}
		return nil, net.ErrClosed
	default:
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, net.ErrClosed
	}
	return c, err
}

func (l *standInListener) Close() error { return nil }
