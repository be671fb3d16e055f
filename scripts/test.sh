#!/usr/bin/env bash
# The one test entry point (CI runs exactly this through .ci/run): installs
# what the tests need, then vets and runs every test with the race detector,
# then fuzzes the parsers briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"

./scripts/install-test-deps.sh

echo ">> gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi

echo ">> go vet ./..."
go vet ./...

echo ">> go test -race ./..."
go test -race -timeout 30m ./...

# Bench helpers in their own modules (kept out of wardgate's go.mod).
echo ">> tools/fastproxy"
(cd tools/fastproxy && go vet ./... && go test -race ./...)

if [ -x scripts/fuzz.sh ]; then
  echo ">> fuzz (short)"
  ./scripts/fuzz.sh
fi
echo ">> all tests passed"
