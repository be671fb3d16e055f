#!/usr/bin/env bash
# Installs everything wardgate's tests need on a fresh Debian machine with Go:
# gdb (gcore), Prometheus (dashboard tests), delve (post-mortem tests), Jaeger
# (trace test). Idempotent: tools already present at the wanted version are
# neither reinstalled nor rebuilt. It changes nothing else on the machine: no
# service is started or stopped, no kernel setting is touched (scripts/test.sh
# sets kernel.core_pattern for the crash tests only, and restores it).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

need_apt=()
command -v gcore >/dev/null 2>&1 || need_apt+=(gdb)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  # Debian starts a package's service when it is installed (prometheus: a
  # daemon on :9090 that would outlive the tests, which run their own). A
  # policy-rc.d answering 101, "action forbidden", keeps invoke-rc.d and
  # deb-systemd-invoke from starting anything during this install; ours is
  # removed when the install ends, fails or is interrupted. One that exists
  # already is the administrator's policy and is left as it is.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    remove_policy() { $SUDO rm -f "$policy"; }
    trap remove_policy EXIT
    trap 'exit 129' HUP
    trap 'exit 130' INT
    trap 'exit 143' TERM
    printf '#!/bin/sh\n# Written by wardgate scripts/install-test-deps.sh for one apt-get install; removed after it.\nexit 101\n' |
      $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
  fi
  echo ">> apt-get install ${need_apt[*]} (services are not started)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  if [ "$(type -t remove_policy)" = function ]; then
    remove_policy
    trap - EXIT HUP INT TERM
  fi
fi

GOBIN="$(go env GOPATH)/bin"
if ! [ -x "$GOBIN/dlv" ] || ! "$GOBIN/dlv" version 2>/dev/null | grep -q '1.27.2'; then
  echo ">> go install delve v1.27.2"
  go install github.com/go-delve/delve/cmd/dlv@v1.27.2
fi

# Jaeger v2 (all-in-one with an OTLP receiver) for the end-to-end trace test,
# built from the Go module proxy in its own module (tools/jaeger) so its large
# dependency tree stays out of wardgate's go.mod. About 3-5 minutes the first
# time; after that the binary in GOBIN is used as long as it is the version
# tools/jaeger/go.mod asks for.
want_jaeger="$(cd tools/jaeger && go list -m -f '{{.Version}}' github.com/jaegertracing/jaeger)"
have_jaeger="$( [ -x "$GOBIN/jaeger" ] && go version -m "$GOBIN/jaeger" 2>/dev/null | awk '$1 == "mod" { print $3 }' || true)"
if [ "$have_jaeger" != "$want_jaeger" ]; then
  echo ">> go build jaeger $want_jaeger (tools/jaeger; had: ${have_jaeger:-none})"
  (cd tools/jaeger && go build -o "$GOBIN/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
fi
