#!/usr/bin/env bash
# Capture cost, native vs gcore vs delve's dump: the pause the captured process sees and the
# core's size on disk, on a ~10 MiB and a ~1 GiB RSS Go process (1000
# goroutines). Prints a Markdown table for docs/benchmarks.md.
# Needs gdb (gcore): scripts/install-test-deps.sh. Writes ~7 GiB of cores
# (removed as it goes) and takes about a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${CAPTURE_BENCH_RUNS:-3}"
out="$(go test -run '^$' -bench 'BenchmarkCapture' -benchtime "${runs}x" ./diag/capture)"
echo "$out" >&2
echo
echo "| process | method | pause (ms) | longest stop (ms) | copied while stopped (MiB) | core on disk (MiB) | core apparent (MiB) | RSS (MiB) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
echo "$out" | awk '/^BenchmarkCapture\// {
  split($1, p, "/"); sub(/-[0-9]+$/, "", p[3]);
  for (i = 3; i < NF; i++) m[$(i+1)] = $i;
  stop = (p[3] == "native") ? sprintf("%.1f | %.1f", m["longest-stop-ms/op"], m["MiB-copied-stopped/op"]) : "= pause | all"
  printf "| %s | %s | %.1f | %s | %.1f | %.1f | %.0f |\n", p[2], p[3], m["pause-ms/op"], stop, m["core-MiB-on-disk"], m["core-MiB-apparent"], m["rss-MiB"]
}'
echo
echo "Mean of ${runs} captures each; $(nproc) CPUs, $(uname -r), $(go version | cut -d' ' -f3)."
