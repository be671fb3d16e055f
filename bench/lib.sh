# shellcheck shell=bash
# Shared helpers of the bench/*.sh scripts: a temp dir, process tracking
# with cleanup on exit, building the binaries, waiting for listeners, and
# running wrk with its output reduced to "req/s p50_ms p99_ms errors".
# Source it; it sets `set -euo pipefail`.
set -euo pipefail

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_PIDS=()

# bench_init makes $BENCH_TMP and installs the cleanup trap. BENCH_KEEP=1
# keeps the temp dir (configs, logs, wrk output) for a post-mortem.
bench_init() {
  BENCH_TMP="$(mktemp -d "${TMPDIR:-/tmp}/wardgate-bench.XXXXXX")"
  mkdir -p "$BENCH_TMP/bin" "$BENCH_TMP/wrk"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# bench_cleanup stops every process this script started (by pid: TERM, then
# KILL after 10s) and removes the temp dir.
bench_cleanup() {
  local pid deadline
  for pid in "${BENCH_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  deadline=$((SECONDS + 10))
  for pid in "${BENCH_PIDS[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  BENCH_PIDS=()
  if [[ -n "${BENCH_TMP:-}" && -z "${BENCH_KEEP:-}" ]]; then
    rm -rf "$BENCH_TMP"
  elif [[ -n "${BENCH_TMP:-}" ]]; then
    echo "bench: kept $BENCH_TMP" >&2
  fi
}

# stop_pid PID: TERM, wait up to $2 seconds (default 120), then KILL.
stop_pid() {
  local pid=$1 limit=${2:-120} deadline
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + limit))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

log() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || die "$t not found; install with: apt-get update && apt-get install -y nginx haproxy caddy wrk hyperfine"
  done
}

# build_bins builds wardgate and the bench helpers into $BENCH_TMP/bin.
build_bins() {
  log "building wardgate and bench helpers"
  (cd "$BENCH_ROOT" && go build -o "$BENCH_TMP/bin/" ./cmd/wardgate ./bench/backend ./bench/plainproxy ./bench/naiveingest ./bench/freeport)
}

# build_fastproxy builds tools/fastproxy into $BENCH_TMP/bin next to the
# other helpers. It is its own Go module (so fasthttp stays out of
# wardgate's go.mod) and only bench/proxies.sh needs it, hence a separate
# step rather than part of build_bins.
build_fastproxy() {
  log "building tools/fastproxy (separate module)"
  (cd "$BENCH_ROOT/tools/fastproxy" && go build -o "$BENCH_TMP/bin/" .)
}

# build_loadlat builds tools/loadlat (fixed-rate latency with vegeta, and
# the SVG plot) into $BENCH_TMP/bin. Its own module, like tools/fastproxy,
# so vegeta and gonum stay out of wardgate's go.mod.
build_loadlat() {
  log "building tools/loadlat (separate module)"
  (cd "$BENCH_ROOT/tools/loadlat" && go build -o "$BENCH_TMP/bin/" .)
}

# build_traefik puts Traefik's own binary, built from its Go module by
# tools/traefik/build.sh, at $BENCH_TMP/bin/traefik. The build is large
# (minutes on two cores), so the binary is cached in
# ${WARDGATE_BENCH_CACHE:-~/.cache/wardgate-bench}, keyed by a hash of the
# tools/traefik module (go.mod, go.sum, build.sh, ext/) and the Go version:
# a changed module or toolchain builds anew, an unchanged one is reused.
build_traefik() {
  local dir="$BENCH_ROOT/tools/traefik" cache key bin
  cache="${WARDGATE_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wardgate-bench}"
  key="$({ cat "$dir/go.mod" "$dir/go.sum" "$dir/build.sh" "$dir"/ext/*; go version; } | sha256sum | cut -c1-16)"
  bin="$cache/traefik-$key"
  if [[ ! -x "$bin" ]]; then
    log "building Traefik from its Go module (tools/traefik; several minutes, cached in $cache)"
    mkdir -p "$cache"
    "$dir/build.sh" "$bin.tmp" || die "building Traefik failed"
    mv "$bin.tmp" "$bin"
  else
    log "Traefik: cached $bin"
  fi
  ln -sf "$bin" "$BENCH_TMP/bin/traefik"
}

# tree_cpu_ticks PID prints the CPU time (utime + stime, in clock ticks:
# getconf CLK_TCK) used so far by PID, every live descendant of PID (nginx
# workers) and the children PID has already reaped (cutime + cstime).
# Threads are counted in their process. Sample it before and after a run:
# the difference is the process tree's CPU over the run.
tree_cpu_ticks() {
  # comm (field 2) may hold spaces and parentheses: drop everything up to
  # the last ") ", so f[1] is field 3 (state) and field k is f[k - 2].
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$1" '
    {
      pid = $1
      line = $0
      sub(/^.*\) /, "", line)
      split(line, f, " ")
      ppid[pid] = f[2]
      cpu[pid] = f[12] + f[13]
      reaped[pid] = f[14] + f[15]
    }
    END {
      if (!(root in cpu)) { print "tree_cpu_ticks: no process " root > "/dev/stderr"; exit 1 }
      tree[root] = 1
      for (grew = 1; grew;) {
        grew = 0
        for (p in ppid) if (!(p in tree) && (ppid[p] in tree)) { tree[p] = 1; grew = 1 }
      }
      for (p in tree) s += cpu[p]
      print s + reaped[root]
    }'
}

# free_ports N prints N distinct free loopback ports.
free_ports() { "$BENCH_TMP/bin/freeport" -n "$1"; }

# spawn NAME CMD...: start CMD in the background (stdout/stderr to
# $BENCH_TMP/NAME.{out,err}), remember its pid in $SPAWNED and BENCH_PIDS.
spawn() {
  local name=$1
  shift
  "$@" >"$BENCH_TMP/$name.out" 2>"$BENCH_TMP/$name.err" &
  SPAWNED=$!
  BENCH_PIDS+=("$SPAWNED")
}

# wait_line NAME PID REGEX [TIMEOUT]: wait until NAME's stdout has a line
# matching REGEX; print the line. Fails if PID exits first.
wait_line() {
  local name=$1 pid=$2 re=$3 limit=${4:-60} deadline line
  deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    line="$(grep -E -m1 "$re" "$BENCH_TMP/$name.out" 2>/dev/null || true)"
    if [[ -n "$line" ]]; then
      echo "$line"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { tail -20 "$BENCH_TMP/$name.err" >&2; die "$name exited before it was ready"; }
    sleep 0.1
  done
  tail -20 "$BENCH_TMP/$name.err" >&2
  die "$name: no line matching '$re' after ${limit}s"
}

# listen_addr NAME PID: the ADDR of the "listening ADDR" line a helper
# started with spawn prints (call spawn in the main shell, not in $(...),
# so its pid is tracked for cleanup).
listen_addr() {
  wait_line "$1" "$2" '^listening ' | awk '{print $2}'
}

# wait_http URL PID [TIMEOUT]: poll URL until it answers 2xx.
wait_http() {
  local url=$1 pid=$2 limit=${3:-60} deadline
  deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "process $pid exited before $url answered"
    sleep 0.2
  done
  die "$url did not answer 2xx within ${limit}s"
}

# wrk_run NAME ROUND URL [wrk args...]: run wrk --latency, keep its output
# in $BENCH_TMP/wrk/NAME.ROUND.txt and append "rps p50_ms p99_ms errors" to
# $BENCH_TMP/wrk/NAME.res. errors = non-2xx/3xx responses + socket errors.
# The full line is "rps p50_ms p99_ms errors requests non2xx seconds".
wrk_run() {
  local name=$1 round=$2 url=$3
  shift 3
  local out="$BENCH_TMP/wrk/$name.$round.txt"
  wrk --latency "$@" "$url" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed for $name"; }
  wrk_parse "$out" >>"$BENCH_TMP/wrk/$name.res"
  log "$(printf '%-28s round %s: %s' "$name" "$round" "$(tail -1 "$BENCH_TMP/wrk/$name.res")")"
}

# wrk_parse FILE prints "rps p50_ms p99_ms errors" from wrk --latency output.
wrk_parse() {
  awk '
    function ms(v) {
      if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
      if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
      if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
      if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
      return v + 0
    }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /^Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { err += $NF; non2xx = $NF }
    /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
    /^ +[0-9]+ requests in/ { total = $1; d = $4; sub(/,$/, "", d); secs = ms(d) / 1000 }
    END { printf "%.0f %.3f %.3f %d %d %d %.3f\n", rps, p50, p99, err + 0, total + 0, non2xx + 0, secs }
  ' "$1"
}

# median_col FILE COL: the median of column COL (1-based) of FILE.
median_col() {
  awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{a[NR] = $1} END {
    if (NR == 0) { print "nan"; exit }
    if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# sum_col FILE COL
sum_col() { awk -v c="$2" '{s += $c} END {print s + 0}' "$1"; }

# machine_line prints one line describing the machine and tool versions.
machine_line() {
  local mem
  mem="$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))," \
    "$mem RAM, Linux $(uname -r), $(go version | cut -d' ' -f3)"
}
