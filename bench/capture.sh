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
  delete m
  for (i = 3; i < NF; i++) m[$(i+1)] = $i;
  if (m["dlv-hung"] > 0) hung = hung sprintf(" %s: dlv hung after its dump in %d run(s), left out of the mean and the rest of its runs skipped (a dlv 1.27.2 detach hang; see diag/capture/capture_bench_test.go).", p[2], m["dlv-hung"])
  if (!("pause-ms/op" in m)) next
  stop = (p[3] == "native") ? sprintf("%.1f | %.1f", m["longest-stop-ms/op"], m["MiB-copied-stopped/op"]) : "= pause | all"
  rss = ("rss-MiB" in m) ? sprintf("%.0f", m["rss-MiB"]) : "-"
  printf "| %s | %s | %.1f | %s | %.1f | %.1f | %s |\n", p[2], p[3], m["pause-ms/op"], stop, m["core-MiB-on-disk"], m["core-MiB-apparent"], rss
}
END { if (hung != "") print "\n" substr(hung, 2) }'
echo
echo "Mean of ${runs} captures each; $(nproc) CPUs, $(uname -r), $(go version | cut -d' ' -f3)."
