#!/usr/bin/env bash
# The one test entry point (CI runs exactly this through .ci/run): installs
# what the tests need, checks formatting and vet, then runs every test of the
# module once: with the race detector where concurrency is the point, plainly
# where a test drives real (non-race) binaries or checks files. Fuzz corpora
# (testdata/fuzz) run as ordinary tests; fuzzing itself is scripts/fuzz.sh.
#
# On 2 cores: about 3 minutes with a warm build cache, about 10 minutes from
# an empty one with the modules downloaded (measurements in the README). It
# took 38 minutes when it also ran every package with -race and fuzzed: the
# fuzz build alone recompiled the dependency tree with coverage instrumentation.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo -n"

./scripts/install-test-deps.sh

echo ">> gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi

echo ">> go vet ./..."
go vet ./...

mod=github.com/wardgate/wardgate
# Tests that need kernel.core_pattern to leave cores next to the crashing
# process (post-mortems of `wardgate up`, diag analyze on real crashes):
# they run last, in the only window where core_pattern is changed.
core_pkgs=("$mod/cmd/wardgate" "$mod/supervisor" "$mod/diag/analyze" "$mod/diag/triage")
# Packages whose tests drive real binaries built without -race (see
# internal/testutil.Build), run delve or promtool, or check files: the race
# detector would instrument only the waiting test process, at several times
# the compile and link cost. Every other package, and every new one, runs
# with -race.
plain_pkgs=("$mod/cmd/wardgate" "$mod/jobqueue/e2e" "$mod/dashboards" "$mod/dashboards/gen"
  "$mod/deploy" "$mod/diag/analyze" "$mod/diag/bundle" "$mod/diag/profile" "$mod/diag/triage")
race=() plain=() race_core=() plain_core=()
member() { local x; for x in "${@:2}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
for p in $(go list ./...); do
  is_plain=0
  if [[ $p == "$mod"/bench/* ]] || member "$p" "${plain_pkgs[@]}"; then is_plain=1; fi
  if member "$p" "${core_pkgs[@]}"; then
    if [ $is_plain = 1 ]; then plain_core+=("$p"); else race_core+=("$p"); fi
  elif [ $is_plain = 1 ]; then plain+=("$p"); else race+=("$p"); fi
done

# The wardgate binary the end-to-end tests of five packages run, linked once
# (internal/testutil.Build copies it instead of linking its own).
bindir="$(mktemp -d)"
WARDGATE_TEST_BIN="$bindir/wardgate"
go build -o "$WARDGATE_TEST_BIN" ./cmd/wardgate
export WARDGATE_TEST_BIN

# kernel.core_pattern is the machine's setting: it is changed only while the
# crash tests run and put back on every exit path (failure, Ctrl-C, SIGTERM).
pattern_file=/proc/sys/kernel/core_pattern
old_pattern=""
restore() {
  if [ -n "$old_pattern" ]; then
    printf '%s\n' "$old_pattern" | $SUDO tee "$pattern_file" >/dev/null || echo "!! could not restore kernel.core_pattern to \"$old_pattern\"" >&2
    old_pattern=""
  fi
  rm -rf "$bindir"
}
trap restore EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

echo ">> go test ${#plain[@]} packages; go test -race ${#race[@]} packages"
go test -timeout 30m "${plain[@]}"
go test -race -timeout 30m "${race[@]}"

cur="$(cat "$pattern_file")"
if [ "$cur" != core ]; then
  if printf 'core\n' | $SUDO tee "$pattern_file" >/dev/null 2>&1; then
    old_pattern="$cur"
    echo ">> kernel.core_pattern is \"core\" for the crash tests, back to \"$cur\" when they end"
  else
    echo "!! kernel.core_pattern is \"$cur\": the crash tests need \"core\" and this user cannot set it (root or sudo)" >&2
  fi
fi
echo ">> crash tests: go test -race ${race_core[*]#$mod/}; go test ${plain_core[*]#$mod/}"
go test -race -timeout 30m "${race_core[@]}"
go test -timeout 30m "${plain_core[@]}"
restore

# Bench helpers in their own modules (kept out of wardgate's go.mod).
echo ">> tools/fastproxy"
(cd tools/fastproxy && go vet ./... && go test -race ./...)
echo ">> tools/loadlat"
(cd tools/loadlat && go vet ./... && go test -race ./...)
# tools/traefik is not built here: it only builds Traefik's binary for
# bench/proxies.sh (minutes of compiling; bench/lib.sh caches it).

echo ">> all tests passed (fuzzing: scripts/fuzz.sh)"
