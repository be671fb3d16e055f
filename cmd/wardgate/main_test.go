package main

import (
	"os"
	"testing"

	"github.com/wardgate/wardgate/internal/testutil"
)

// wardgateBin is the wardgate binary the end-to-end tests run as real
// processes. TestMain builds it once; tests in this package share it. It is
// built without -race even under go test -race: a race-enabled process
// reserves terabytes of shadow memory, and the kernel then takes far too long
// to dump the cores the post-mortem tests provoke.
var wardgateBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	return testutil.RunMain(m, &wardgateBin, "wardgate-e2e", "wardgate", testutil.WardgatePkg)
}
