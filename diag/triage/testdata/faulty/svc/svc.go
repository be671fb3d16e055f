// Package svc runs a job-queue service the way a user's program embeds
// wardgate: telemetry, the queue with its handler on a public listener and
// the admin listener on loopback. It prints "api=URL admin=URL" once both
// listen, and drains on SIGTERM.
package svc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wardgate/wardgate/jobqueue"
	"github.com/wardgate/wardgate/telemetry"
)

// Service is what differs between the faulty services.
type Service struct {
	Name   string
	Sink   jobqueue.Sink // nil: Discard
	Kinds  map[string]any
	Config func(*jobqueue.Config)
}

// Discard is a sink that keeps nothing.
type Discard struct{}

// Put implements jobqueue.Sink.
func (Discard) Put(context.Context, string, []byte, string) error { return nil }

// Run serves s until SIGTERM or SIGINT.
func Run(s Service) {
	if err := run(s); err != nil {
		fmt.Fprintln(os.Stderr, s.Name+":", err)
		os.Exit(1)
	}
}

func run(s Service) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	tel, err := telemetry.Setup(ctx, s.Name)
	if err != nil {
		return err
	}
	cfg := jobqueue.DefaultConfig()
	cfg.MaxWorkers = 4
	cfg.MaxQueue = 1000
	cfg.BatchMaxPayloads = 1
	cfg.BatchMaxWait = 5 * time.Millisecond
	if s.Config != nil {
		s.Config(&cfg)
	}
	sink := s.Sink
	if sink == nil {
		sink = Discard{}
	}
	q, err := jobqueue.New(cfg, sink, jobqueue.WithTelemetry(tel))
	if err != nil {
		return err
	}
	for kind, fn := range s.Kinds {
		if err := q.Register(kind, fn); err != nil {
			return err
		}
	}
	q.Start(ctx)
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go http.Serve(api, q.Handle())
	go http.Serve(admin, tel.AdminHandler("", nil))
	fmt.Printf("api=http://%s admin=http://%s\n", api.Addr(), admin.Addr())
	<-ctx.Done()
	return nil
}
