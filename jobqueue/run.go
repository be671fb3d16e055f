package jobqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/wardgate/wardgate/internal/ratelog"
)

// RunOptions configures Run.
type RunOptions struct {
	// Public serves Handle (POST /v1/payloads, /healthz, /readyz) and
	// Admin serves AdminHandler; the caller opens both, so a taken port
	// fails before it opens the blob store. Nil: not served (an embedder
	// that mounts Handle on its own server).
	Public, Admin net.Listener
	// AdminHandler is served on Admin (telemetry's /metrics, /debug/pprof/,
	// /healthz).
	AdminHandler http.Handler
	// DrainTimeout bounds the drain once ctx ends: past it, what is not
	// stored is spilled to SpillDir (Drain). 0 waits for every upload.
	DrainTimeout time.Duration
	// Ready, if set, is called once both listeners are served: `wardgate
	// jobqueue` prints its "listening" line there.
	Ready func()
}

// Run is the whole lifecycle of a job-queue process, the counterpart of
// gateway's Run: it starts the workers, serves the listeners until ctx ends
// (or a listener fails), then drains: the public listener stays up
// meanwhile so clients get a clear 503 and durable-mode requests get their
// 202 once stored, and only then are the listeners shut down.
//
// A drain that ended in a spill (ErrSpilled: every acked payload is stored
// or on disk for the next start) is logged and not an error; a failed
// listener or payloads lost are.
func (q *Queue) Run(ctx context.Context, opts RunOptions) error {
	// Workers are not tied to ctx: its end starts a drain, not a hard stop.
	q.Start(context.WithoutCancel(ctx))
	// net/http writes some errors to ErrorLog once per connection or
	// request: summarized, never a flood.
	srvLog := ratelog.NewHandler(q.log.Handler(), ratelog.Options{})
	defer srvLog.Flush()
	var servers []*http.Server
	serveErr := make(chan error, 2)
	serve := func(ln net.Listener, srv *http.Server) {
		if ln == nil {
			return
		}
		servers = append(servers, srv)
		go func() { serveErr <- srv.Serve(ln) }()
	}
	serve(opts.Public, &http.Server{
		Handler:           q.Handle(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(srvLog, slog.LevelWarn),
	})
	admin := opts.AdminHandler
	if admin == nil {
		admin = http.NotFoundHandler() // never http.DefaultServeMux
	}
	serve(opts.Admin, &http.Server{
		Handler:           admin,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(q.log.Handler(), slog.LevelWarn),
	})
	if opts.Ready != nil {
		opts.Ready()
	}

	var runErr error
	select {
	case <-ctx.Done():
		q.log.Info("signal: draining (readyz 503, new posts 503)")
	case err := <-serveErr:
		q.log.Error("listener failed; draining", "err", err)
		runErr = fmt.Errorf("jobqueue: serve: %w", err)
	}
	dctx := context.WithoutCancel(ctx)
	if opts.DrainTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(dctx, opts.DrainTimeout)
		defer cancel()
	}
	switch err := q.Drain(dctx); {
	case errors.Is(err, ErrSpilled):
		q.log.Warn("drain deadline passed: every acked payload is stored or spilled to SPILL_DIR", "err", err)
	case err != nil:
		q.log.Error("drain incomplete", "err", err)
		runErr = errors.Join(runErr, err)
	default:
		q.log.Info("drained: every acked payload is stored")
	}
	// Every request has its answer by now (durable ones included): only
	// idle connections are left, so this is quick; bounded all the same.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(sctx)
	}
	return runErr
}
