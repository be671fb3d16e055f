#!/usr/bin/env bash
# Runs every fuzz target briefly (FUZZTIME, default 15s each). Called by
# scripts/test.sh after the unit tests; go test allows one -fuzz target per
# run, so each gets its own invocation. New targets: add a line below.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-15s}"

fuzz() { # package target
  echo ">> fuzz $2 ($1, $FUZZTIME)"
  go test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" "$1"
}

fuzz ./jobqueue/ FuzzDecodeCollection
