package main

import (
	"context"
	"fmt"
	"io"
)

func runJobqueue(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wardgate jobqueue: not built yet in this version")
	return 2
}
