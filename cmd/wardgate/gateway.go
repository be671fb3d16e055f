package main

import (
	"context"
	"fmt"
	"io"
)

func runGateway(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wardgate gateway: not built yet in this version")
	return 2
}
