package main

import (
	"context"
	"fmt"
	"io"
)

func runDiag(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wardgate diag: not built yet in this version")
	return 2
}
