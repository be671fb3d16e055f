package main

import (
	"context"
	"fmt"
	"io"
)

func runUp(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wardgate up: not built yet in this version")
	return 2
}
