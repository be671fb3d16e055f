#!/usr/bin/env bash
# Runs every benchmark of the project and writes its table into
# docs/benchmarks.md between markers:
#   <!-- bench:NAME:begin --> ... <!-- bench:NAME:end -->
# NAME is proxies (bench/proxies.sh: throughput, latency at fixed load and
# the wardgate ÷ peer ratios; it also writes the latency plot
# docs/benchmarks-proxies-latency.svg), ingest (bench/ingest.sh), capture
# (bench/capture.sh), tracing and tracing-durable (bench/tracing.sh, both
# ack modes), analyze (the diag/analyze Go benchmark) and verdict (the
# diag/triage time-to-verdict benchmarks over the faulty corpus), discovery (the
# gateway's DNS churn benchmark; DURATION, default 60s). Scripts that are
# not there are skipped with a note. With --print (or when the doc has no marker for a section) the
# tables go to stdout for pasting instead. Naming sections runs only
# those, e.g. `bench/run-all.sh tracing capture`.
#
# The settings of each script come from the environment (ROUNDS, DURATION,
# CONNS, ...: see each script's header); QUICK=1 sets short ones
# (ROUNDS=2 DURATION=5s LAT_DURATION=4s) for a smoke run. Tracing runs with SINK=null
# (spans dropped by bench/otlpsink) unless SINK says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

print=""
declare -A only=()
for a in "$@"; do
  case "$a" in
    --print) print=1 ;;
    -h | --help)
      sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    proxies | ingest | tracing | capture | analyze | verdict | discovery) only[$a]=1 ;;
    *) echo "usage: bench/run-all.sh [--print] [proxies|ingest|tracing|capture|analyze|verdict|discovery]..." >&2; exit 2 ;;
  esac
done
want() { ((${#only[@]} == 0)) || [[ -n "${only[$1]:-}" ]]; }
if [[ -n "${QUICK:-}" ]]; then
  export ROUNDS="${ROUNDS:-2}" DURATION="${DURATION:-5s}" LAT_DURATION="${LAT_DURATION:-4s}"
fi

doc=docs/benchmarks.md
out="$(mktemp -d "${TMPDIR:-/tmp}/wardgate-run-all.XXXXXX")"
trap 'rm -rf "$out"' EXIT

# put NAME FILE: replace the doc's NAME section by FILE, or print it.
put() {
  local name=$1 file=$2 begin="<!-- bench:$1:begin -->" end="<!-- bench:$1:end -->"
  if [[ -z $print && -f $doc ]] && grep -qF "$begin" "$doc" && grep -qF "$end" "$doc"; then
    awk -v b="$begin" -v e="$end" -v f="$file" '
      $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
      $0 == e { skip = 0 }
      !skip { print }' "$doc" >"$out/doc" && cat "$out/doc" >"$doc"
    echo "run-all: wrote section $name of $doc" >&2
  else
    echo "### $name"
    cat "$file"
    echo
  fi
}

stamp() { echo "_Measured $(date -u +%Y-%m-%dT%H:%MZ) at commit $(git rev-parse --short HEAD)._"; echo; }

run_section() { # NAME CMD...
  local name=$1
  shift
  echo "run-all: $name: $*" >&2
  "$@" >"$out/$name.raw" || { echo "run-all: $name failed" >&2; return 1; }
  # Plain-text output (no Markdown table) goes into a code block.
  {
    stamp
    if grep -q '^|' "$out/$name.raw"; then cat "$out/$name.raw"; else echo '```'; cat "$out/$name.raw"; echo '```'; fi
  } >"$out/$name"
  put "$name" "$out/$name"
}

failed=()
# The latency plot is written next to the doc, unless the tables are only
# printed (then it is not written at all).
plot=""
[[ -n $print ]] || plot="$(dirname "$doc")/benchmarks-proxies-latency.svg"
if want proxies; then run_section proxies env PLOT_SVG="$plot" bench/proxies.sh || failed+=(proxies); fi
if want ingest; then run_section ingest bench/ingest.sh || failed+=(ingest); fi
if ! want tracing; then
  :
elif [[ -x bench/tracing.sh ]]; then
  run_section tracing env ACK_MODE=enqueued SINK="${SINK:-null}" bench/tracing.sh || failed+=(tracing)
  run_section tracing-durable env ACK_MODE=durable SINK="${SINK:-null}" bench/tracing.sh || failed+=(tracing-durable)
else
  echo "run-all: bench/tracing.sh not present, skipped" >&2
fi
if want capture && [[ -x bench/capture.sh ]]; then
  run_section capture bench/capture.sh || failed+=(capture)
fi
analyze_bench() {
  local raw
  raw="$(go test -run '^$' -bench . -benchtime "${ANALYZE_BENCHTIME:-1x}" ./diag/analyze/ 2>&1)" || { echo "$raw" >&2; return 1; }
  echo "| core | analyze time (s) |"
  echo "|---|---:|"
  echo "$raw" | awk '/^Benchmark/ { split($1, p, "/"); sub(/-[0-9]+$/, "", p[2]); printf "| %s | %.2f |\n", p[2], $3 / 1e9 }'
  echo
  echo "go test -bench . -benchtime ${ANALYZE_BENCHTIME:-1x} ./diag/analyze/ (wall time of one analyze run per core); $(nproc) CPUs, $(go version | cut -d' ' -f3)."
}
if want analyze && [[ -f diag/analyze/bench_test.go ]]; then
  run_section analyze analyze_bench || failed+=(analyze)
fi
verdict_bench() {
  local raw
  raw="$(go test -run '^$' -bench 'TimeToVerdict|Triage100k' -benchtime 1x ./diag/triage/ 2>&1)" || { echo "$raw" >&2; return 1; }
  echo "| fault class (corpus service) | command | seconds to verdict |"
  echo "|---|---|---:|"
  echo "$raw" | awk '/^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
    cmd = "diag triage"
    if (name ~ /crash/) cmd = "diag analyze (core)"
    sub(/^TimeToVerdict\//, "", name)
    for (i = 2; i < NF; i++) if ($(i+1) == "s/verdict") v = $i
    printf "| %s | %s | %.1f |\n", name, cmd, v }'
  echo
  echo "go test -bench 'TimeToVerdict|Triage100k' -benchtime 1x ./diag/triage/ (triage interval 3s; load average $(cut -d' ' -f1 /proc/loadavg) at the end); $(nproc) CPUs, $(go version | cut -d' ' -f3)."
}
if want verdict && [[ -f diag/triage/bench_test.go ]]; then
  run_section verdict verdict_bench || failed+=(verdict)
fi
discovery_bench() {
  local raw
  raw="$(DISCOVERY_DURATION="${DURATION:-60s}" go test -run '^$' -bench DiscoveryChurn -benchtime 1x ./gateway/ 2>&1)" || { echo "$raw" >&2; return 1; }
  echo "| requests | errors | p50 (ms) | p99 (ms) | DNS changes | follow p50 / p99 (ms) | leave p50 / p99 (ms) |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  echo "$raw" | awk '/^BenchmarkDiscoveryChurn/ {
    for (i = 3; i < NF; i++) v[$(i+1)] = $i
    printf "| %d | %d | %.2f | %.2f | %d | %.0f / %.0f | %.0f / %.0f |\n", v["requests"], v["errors"], v["p50-ms"], v["p99-ms"], v["changes"],
      v["follow-p50-ms"], v["follow-p99-ms"], v["leave-p50-ms"], v["leave-p99-ms"] }'
  echo
  echo "go test -bench DiscoveryChurn -benchtime 1x ./gateway/ (DISCOVERY_DURATION=${DURATION:-60s}, ${DISCOVERY_CONNS:-4} closed-loop connections; the SRV answer changes every 0.5-1.5s, discover interval and TTL 1s; load average $(cut -d' ' -f1 /proc/loadavg) at the end); $(nproc) CPUs, $(go version | cut -d' ' -f3)."
}
if want discovery && [[ -f gateway/discovery_bench_test.go ]]; then
  run_section discovery discovery_bench || failed+=(discovery)
fi
if ((${#failed[@]})); then
  echo "run-all: failed: ${failed[*]}" >&2
  exit 1
fi
