package main

import (
	"context"
	"fmt"
	"io"
)

func runDiagAnalyze(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wardgate diag: this command is not built yet in this version")
	return 2
}

func runDiagCrashSetup(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "wardgate diag: this command is not built yet in this version")
	return 2
}
