package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/wardgate/wardgate/internal/listen"
)

// RunOptions configures Run.
type RunOptions struct {
	// ConfigPath is the YAML file to watch and reload. Empty: no watching.
	ConfigPath string
	// Reload triggers a reload of ConfigPath (SIGHUP, wired by the caller).
	Reload <-chan struct{}
	// Override is applied to every config read from ConfigPath before it
	// is validated (command-line flags beat the file).
	Override func(*Config)
	// ShutdownTimeout bounds the graceful drain on ctx cancel (default 15s).
	ShutdownTimeout time.Duration
	// Debounce groups the burst of file events an editor's save makes
	// (default 200ms).
	Debounce time.Duration
}

// Run serves the public and admin listeners of the current config until
// ctx is canceled, then shuts down gracefully: listeners close, in-flight
// requests get up to ShutdownTimeout to finish, health checks stop. It
// reloads the config on opts.Reload and when the file changes on disk.
// The listen addresses are fixed for the life of Run; a reload that
// changes them is applied otherwise and logged as needing a restart.
func (g *Gateway) Run(ctx context.Context, opts RunOptions) error {
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 200 * time.Millisecond
	}
	defer g.Close()
	cfg := g.Config()
	pub, err := listen.Listen(ctx, cfg.Listen)
	if err != nil {
		return &ListenError{Field: "listen", Addr: cfg.Listen, Err: err}
	}
	adm, err := listen.Listen(ctx, cfg.Admin)
	if err != nil {
		pub.Close()
		return &ListenError{Field: "admin", Addr: cfg.Admin, Err: err}
	}
	// Summarized: net/http logs some errors once per connection or request.
	errLog := slog.NewLogLogger(g.summary, slog.LevelWarn)
	public := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          errLog,
	}
	admin := &http.Server{
		Handler:           g.AdminHandler(cfg.AdminToken),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          errLog,
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- public.Serve(pub) }()
	go func() { serveErr <- admin.Serve(adm) }()
	g.logger.LogAttrs(ctx, slog.LevelInfo, "gateway listening",
		slog.String("listen", pub.Addr().String()), slog.String("admin", adm.Addr().String()),
		slog.String("config", opts.ConfigPath), slog.Int("routes", len(cfg.Routes)), slog.Int("upstreams", len(cfg.Upstreams)))

	watchDone := make(chan struct{})
	watchCtx, stopWatch := context.WithCancel(ctx)
	go func() {
		defer close(watchDone)
		g.watch(watchCtx, opts)
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("gateway: serve: %w", err)
	}
	stopWatch()
	<-watchDone
	g.logger.LogAttrs(context.Background(), slog.LevelInfo, "gateway shutting down", slog.Duration("timeout", opts.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownTimeout)
	defer cancel()
	if err := public.Shutdown(sctx); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("gateway: shutdown: %w", err))
		public.Close()
	}
	if err := admin.Shutdown(sctx); err != nil {
		admin.Close()
	}
	return runErr
}

// watch reloads the config on opts.Reload and on changes of the file. It
// watches the directory, not the file: editors save by writing a new file
// and renaming it over the old one, and Kubernetes swaps a symlink, both
// of which end a watch on the file itself. Events are debounced and a
// reload happens only when the content changed, so one save gives one
// reload (or one refusal log line).
func (g *Gateway) watch(ctx context.Context, opts RunOptions) {
	if opts.ConfigPath == "" {
		<-ctx.Done()
		return
	}
	path, err := filepath.Abs(opts.ConfigPath)
	if err != nil {
		path = opts.ConfigPath
	}
	last := fileSum(path)
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(filepath.Dir(path))
	}
	if err != nil {
		g.logger.LogAttrs(ctx, slog.LevelWarn, "config file watch unavailable; reload with SIGHUP",
			slog.String("config", path), slog.String("error", err.Error()))
	} else {
		defer w.Close()
		events, watchErrs = w.Events, w.Errors
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-opts.Reload:
			last = fileSum(path)
			g.reloadFile(ctx, path, "signal", opts.Override)
		case ev := <-events:
			// Any event in the directory may be the file (rename, symlink
			// swap); the content check below sorts it out.
			_ = ev
			debounce.Reset(opts.Debounce)
		case err := <-watchErrs:
			g.logger.LogAttrs(ctx, slog.LevelWarn, "config file watch error", slog.String("error", err.Error()))
		case <-debounce.C:
			sum := fileSum(path)
			if sum == nil || bytes.Equal(sum, last) {
				continue // unchanged, or mid-rename: the next event retries
			}
			last = sum
			g.reloadFile(ctx, path, "file change", opts.Override)
		}
	}
}

func fileSum(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := sha256.Sum256(data)
	return s[:]
}

// reloadFile loads path and reloads. A refused config gives exactly one
// log line naming the field; the previous config keeps serving.
func (g *Gateway) reloadFile(ctx context.Context, path, trigger string, override func(*Config)) {
	cfg, err := LoadWith(path, override)
	if err == nil {
		old := g.Config()
		err = g.Reload(cfg)
		if err == nil {
			g.logger.LogAttrs(ctx, slog.LevelInfo, "config reloaded",
				slog.String("config", path), slog.String("trigger", trigger),
				slog.Int("routes", len(cfg.Routes)), slog.Int("upstreams", len(cfg.Upstreams)))
			if cfg.Listen != old.Listen || cfg.Admin != old.Admin || cfg.AdminToken != old.AdminToken {
				g.logger.LogAttrs(ctx, slog.LevelWarn, "listen, admin and admin_token changes take effect on restart",
					slog.String("config", path))
			}
			return
		}
	} else {
		g.m.reloads.Add(ctx, 1, metric.WithAttributes(attribute.String("result", reloadError)))
	}
	g.logger.LogAttrs(ctx, slog.LevelError, "config reload refused; previous config still serving",
		slog.String("config", path), slog.String("trigger", trigger), slog.String("error", err.Error()))
}

// LoadWith reads and validates path after applying override (which may be
// nil) to the decoded config: command-line flags beat the file.
func LoadWith(path string, override func(*Config)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := decode(data)
	if err != nil {
		return nil, err
	}
	if override != nil {
		override(cfg)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ListenError is a listener Run could not open. Field is the config key
// that sets it ("listen" or "admin", also the command's flag), so a caller
// can tell the user what to change.
type ListenError struct {
	Field string
	Addr  string
	Err   error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("gateway: %s %s: %v", e.Field, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }
