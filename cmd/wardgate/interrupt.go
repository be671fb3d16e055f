package main

import (
	"context"
	"fmt"
	"io"
)

// exitInterrupted is the exit code of a command stopped by SIGINT or
// SIGTERM before it finished (128 + SIGINT, as a shell reports it).
const exitInterrupted = 130

// reportInterrupted prints one clear line and returns exitInterrupted when
// ctx was cancelled by a signal (see run in main.go), so that a command
// stopped by the user says so instead of printing "context canceled" or
// a half-written result. ok is false when ctx is still live.
func reportInterrupted(ctx context.Context, name string, stderr io.Writer) (code int, ok bool) {
	if ctx.Err() == nil {
		return 0, false
	}
	fmt.Fprintf(stderr, "%s: interrupted by signal; stopped before finishing\n", name)
	return exitInterrupted, true
}
