#!/usr/bin/env bash
# Profile before optimizing: CPU profiles of the gateway and of a job queue
# under the same load as bench/proxies.sh and bench/ingest.sh, taken with
# `wardgate diag profile`, plus how the CPU of the machine splits between
# the processes during the profile window.
#
#   gateway  two bench/backend upstreams, `wardgate gateway` (round_robin,
#            default logging to /dev/null), wrk -c64 GET
#   ingest   `wardgate up --ack-mode enqueued`, tracing off, wrk -c64 POST of
#            the bench/ingest.sh collection; gateway and jobqueue-1 profiled
#            at the same time
#
# Prints the top functions (flat, then cumulative) and keeps the raw
# profiles in $OUT (default /tmp/wardgate-profiles) for `go tool pprof`.
# Environment: SECONDS_PROFILE (10), CONNS (64), OUT.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SECS="${SECONDS_PROFILE:-10}"
CONNS="${CONNS:-64}"
OUT="${OUT:-${TMPDIR:-/tmp}/wardgate-profiles}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

need wrk curl go
bench_init
build_bins
B="$BENCH_TMP/bin"

# cpu_ticks PID: utime+stime of PID and its threads, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# profile NAME ADMIN_URL [FLAGS...]: CPU profile for $SECS into
# $OUT/NAME.cpu.pb.gz; the top goes to $BENCH_TMP/NAME.top. Under wardgate up
# pass --data DIR: pprof needs the run's token from DIR/run/admin-token.
profile() {
  "$B/wardgate" diag profile --target "$2" --type cpu --seconds "$SECS" --top 25 \
    --out "$OUT/$1.cpu.pb.gz" "${@:3}" >"$BENCH_TMP/$1.top" 2>&1
}

show() { # NAME
  echo "### $1: top by flat CPU"
  echo '```'
  cat "$BENCH_TMP/$1.top"
  echo '```'
  echo "### $1: top by cumulative CPU"
  echo '```'
  go tool pprof -top -cum -nodecount=30 "$OUT/$1.cpu.pb.gz" 2>/dev/null | sed -n '1,40p'
  echo '```'
}

# cpu_split LABEL=PID...: CPU share of each process over the window.
cpu_window() { # SECONDS LABEL=PID...
  local secs=$1 kv
  shift
  declare -A before
  for kv in "$@"; do before[$kv]=$(cpu_ticks "${kv#*=}"); done
  sleep "$secs"
  local hz
  hz=$(getconf CLK_TCK)
  for kv in "$@"; do
    awk -v n="${kv%%=*}" -v a="${before[$kv]}" -v b="$(cpu_ticks "${kv#*=}")" -v hz="$hz" -v s="$secs" \
      'BEGIN {printf "%-12s %5.0f%% of one core\n", n, (b - a) / hz / s * 100}'
  done
}

# --- gateway ---------------------------------------------------------------
spawn backend1 "$B/backend"
pid_be1=$SPAWNED
spawn backend2 "$B/backend"
be1="$(listen_addr backend1 "$pid_be1")"
be2="$(listen_addr backend2 "$SPAWNED")"
read -r p_gw p_admin <<<"$(free_ports 2 | tr '\n' ' ')"
cat >"$BENCH_TMP/gateway.yaml" <<EOF
listen: 127.0.0.1:$p_gw
admin: 127.0.0.1:$p_admin
routes:
  - path_prefix: /
    upstream: backends
upstreams:
  backends:
    balancer: round_robin
    targets:
      - {url: "http://$be1"}
      - {url: "http://$be2"}
EOF
"$B/wardgate" gateway --config "$BENCH_TMP/gateway.yaml" >/dev/null 2>&1 &
pid_gw=$!
BENCH_PIDS+=("$pid_gw")
wait_http "http://127.0.0.1:$p_gw/" "$pid_gw"
log "gateway: wrk -c$CONNS for $((SECS + 4))s, CPU profile ${SECS}s"
wrk -t2 -c"$CONNS" -d"$((SECS + 4))s" --latency "http://127.0.0.1:$p_gw/" >"$BENCH_TMP/gw.wrk" &
pid_wrk=$!
sleep 2
profile gateway "http://127.0.0.1:$p_admin" &
pid_prof=$!
cpu_window "$SECS" gateway="$pid_gw" backend1="$pid_be1" backend2="$SPAWNED" wrk="$pid_wrk" >"$BENCH_TMP/gw.split"
wait "$pid_prof" || { cat "$BENCH_TMP/gateway.top" >&2; die "gateway profile failed"; }
wait "$pid_wrk"
stop_pid "$pid_gw" 20

echo "## gateway under wrk -t2 -c$CONNS GET (64-byte body)"
echo
echo "wrk: $(wrk_parse "$BENCH_TMP/gw.wrk" | awk '{printf "%s req/s, p50 %s ms, p99 %s ms", $1, $2, $3}')"
echo
echo '```'
cat "$BENCH_TMP/gw.split"
echo '```'
show gateway

# --- ingest ----------------------------------------------------------------
body="$BENCH_TMP/collection.json"
{
  printf '{"version":"10.0.19045","token":"bench","data":['
  for i in $(seq 1 10); do
    ((i > 1)) && printf ','
    printf '{"seq":%d,"host":"web-%02d.example.internal","path":"/api/v2/orders/%06d/items","status":200,"bytes":%d,"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)","tags":["bench","wardgate","ingest"],"note":"bench payload %d"}' \
      "$i" "$i" "$((i * 7919))" "$((i * 1031))" "$i"
  done
  printf ']}'
} >"$body"
export BODY_FILE="$body" OTEL_TRACES_EXPORTER=none
read -r p_up <<<"$(free_ports 1)"
"$B/wardgate" up --data "$BENCH_TMP/up" --listen "127.0.0.1:$p_up" --ack-mode enqueued >"$BENCH_TMP/up.out" 2>/dev/null &
pid_up=$!
BENCH_PIDS+=("$pid_up")
wait_line up "$pid_up" '^stop: ' 120 >/dev/null
gw_admin="$(awk '$1 == "gateway" {sub(/\/metrics$/, "", $4); print $4}' "$BENCH_TMP/up.out")"
jq_admin="$(awk '$1 == "jobqueue-1" {sub(/\/metrics$/, "", $4); print $4}' "$BENCH_TMP/up.out")"
pid_upgw="$(awk '$1 == "gateway" {print $2}' "$BENCH_TMP/up.out")"
pid_jq1="$(awk '$1 == "jobqueue-1" {print $2}' "$BENCH_TMP/up.out")"
pid_jq2="$(awk '$1 == "jobqueue-2" {print $2}' "$BENCH_TMP/up.out")"
log "ingest: wrk -c$CONNS for $((SECS + 4))s, CPU profiles ${SECS}s of gateway and jobqueue-1"
wrk -t2 -c"$CONNS" -d"$((SECS + 4))s" --latency -s "$BENCH_ROOT/bench/ingest.lua" "http://127.0.0.1:$p_up" >"$BENCH_TMP/up.wrk" &
pid_wrk=$!
sleep 2
profile up-gateway "$gw_admin" --data "$BENCH_TMP/up" &
pid_p1=$!
profile up-jobqueue-1 "$jq_admin" --data "$BENCH_TMP/up" &
pid_p2=$!
cpu_window "$SECS" up="$pid_up" gateway="$pid_upgw" jobqueue-1="$pid_jq1" jobqueue-2="$pid_jq2" wrk="$pid_wrk" >"$BENCH_TMP/up.split"
wait "$pid_p1" || { cat "$BENCH_TMP/up-gateway.top" >&2; die "gateway profile failed"; }
wait "$pid_p2" || { cat "$BENCH_TMP/up-jobqueue-1.top" >&2; die "jobqueue profile failed"; }
wait "$pid_wrk"

echo
echo "## wardgate up (enqueued, tracing off) under wrk -t2 -c$CONNS POST of 10 payloads"
echo
echo "wrk: $(wrk_parse "$BENCH_TMP/up.wrk" | awk '{printf "%s req/s, p50 %s ms, p99 %s ms, non-2xx %s", $1, $2, $3, $6}')"
echo
echo '```'
cat "$BENCH_TMP/up.split"
echo '```'
show up-gateway
show up-jobqueue-1
stop_pid "$pid_up" 120
