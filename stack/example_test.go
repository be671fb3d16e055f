package stack_test

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/wardgate/wardgate/stack"
)

// A program that runs the same stack as `wardgate up --jobqueues 3`: a
// gateway on :8080 in front of three job queues, until Ctrl-C. Exe is
// the wardgate binary the children run.
func ExampleStack_Run() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	s := &stack.Stack{
		Config: stack.Config{
			Listen: "127.0.0.1:8080", Admin: "127.0.0.1:0", Data: "./data", JobQueues: 3,
			StartTimeout: time.Minute, StopTimeout: 2 * time.Minute, KeepPostmortems: 20,
			PrometheusListen: "127.0.0.1:0", ScrapeInterval: 5 * time.Second,
			Exe:    "/usr/local/bin/wardgate",
			Upload: os.Getenv("WARDGATE_UPLOAD"), // post-mortems to a bucket too
		},
		Logger: slog.New(slog.NewJSONHandler(os.Stderr, nil)),
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	}
	if err := s.Run(ctx); err != nil {
		slog.Error("stack", "err", err)
	}
}
