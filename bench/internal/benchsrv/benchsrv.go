// Package benchsrv is the serving loop the bench helper programs share:
// listen, announce the address on stdout ("listening ADDR", which the bench
// scripts wait for), serve until SIGINT/SIGTERM or ctx ends.
package benchsrv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

// Serve listens on addr, prints "listening ADDR" to stdout and serves h
// until a signal arrives or ctx is done.
func Serve(ctx context.Context, addr string, stdout io.Writer, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "listening %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Handler: h}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
