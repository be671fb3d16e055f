package main

import (
	"context"
	"fmt"
	"io"
)

func runDiagCapture(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wardgate diag: this command is not built yet in this version")
	return 2
}
