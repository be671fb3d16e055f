#!/usr/bin/env bash
# Installs everything wardgate's tests need on a fresh Debian machine with Go:
# gdb (gcore), Prometheus (dashboard tests), delve (post-mortem tests).
# Idempotent: already-present tools are not reinstalled.
set -euo pipefail

need_apt=()
command -v gcore >/dev/null 2>&1 || need_apt+=(gdb)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo ">> apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian package may start a prometheus service; tests run their own.
  $SUDO pkill -x prometheus 2>/dev/null || true
fi

GOBIN="$(go env GOPATH)/bin"
if ! [ -x "$GOBIN/dlv" ] || ! "$GOBIN/dlv" version 2>/dev/null | grep -q '1.27.2'; then
  echo ">> go install delve v1.27.2"
  go install github.com/go-delve/delve/cmd/dlv@v1.27.2
fi

# Jaeger v2 (all-in-one with an OTLP receiver) for the end-to-end trace test,
# built from the Go module proxy in its own module (tools/jaeger) so its large
# dependency tree stays out of wardgate's go.mod. About 3-5 minutes the first
# time; cached in GOBIN afterwards.
if ! [ -x "$GOBIN/jaeger" ]; then
  echo ">> go build jaeger v1.76.0 (tools/jaeger)"
  (cd tools/jaeger && go build -o "$GOBIN/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
fi

# Crash tests (post-mortems of `wardgate up`, diag analyze on real crashes)
# need the kernel to write cores next to the crashing process. A pipe to
# systemd-coredump or apport, or a fixed directory, takes them away.
pattern="$(cat /proc/sys/kernel/core_pattern 2>/dev/null || echo unknown)"
if [ "$pattern" != "core" ]; then
  if [ "$(id -u)" -eq 0 ] && echo core > /proc/sys/kernel/core_pattern 2>/dev/null; then
    echo ">> kernel.core_pattern was \"$pattern\"; set to \"core\" for the crash tests (restore: sysctl -w kernel.core_pattern=\"$pattern\")"
  else
    echo "!! kernel.core_pattern is \"$pattern\": the crash tests need \"core\" (sudo sysctl -w kernel.core_pattern=core)" >&2
  fi
fi
