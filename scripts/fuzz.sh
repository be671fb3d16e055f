#!/usr/bin/env bash
# Fuzzes every fuzz target (10000 executions each by default: a smoke run;
# FUZZTIME=10m for a real hunt). Not part of scripts/test.sh: building the
# coverage-instrumented test binary recompiles the whole dependency tree
# (about 20 minutes on a loaded 2-core machine for the first target), while
# the inputs under testdata/fuzz already run as ordinary tests there. Run it
# after changing a parser. go test allows one -fuzz target per run, so each
# gets its own invocation. New targets: add a line below.
#
# FUZZTIME is an execution count (Nx), not a duration: with a duration, Go
# 1.26's coordinator can report a spurious "context deadline exceeded" when
# the clock runs out while a worker is mid-input on a loaded machine
# (golang/go#75804, fixed in Go 1.27). A real finding still fails the run and
# writes its input under testdata/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10000x}"

fuzz() { # package target
  echo ">> fuzz $2 ($1, $FUZZTIME)"
  go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" "$1"
}

fuzz ./jobqueue/ FuzzDecodeCollection
fuzz ./jobqueue/ FuzzReadBody
fuzz ./gateway/ FuzzLoadConfig
fuzz ./gateway/middleware/ FuzzRequestID
fuzz ./diag/analyze/ FuzzParseCrashOutput
fuzz ./diag/analyze/ FuzzReadCoreNotes
fuzz ./diag/capture/ FuzzParseMapsLine
