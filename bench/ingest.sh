#!/usr/bin/env bash
# Ingest through `wardgate up` (gateway + 2 job queues, file:// blob store,
# tracing off), in requests per minute, against a same-run baseline: a
# naive single-process ingest that decodes the collection and drops it
# (bench/naiveingest). Each request POSTs a collection of 10 payloads
# (about 2.5 KB) with wrk and bench/ingest.lua.
#
# Targets, interleaved round by round (after each wardgate run the script
# waits until the job queues have stored everything, so a backlog never
# eats into the next run):
#   naive       bench/naiveingest, decode and drop
#   enqueued    wardgate up --ack-mode enqueued (default batch settings)
#   durable     wardgate up --ack-mode durable  (default batch settings; a
#               durable batch flushes once every waiting request is in it)
# Then each stack is stopped (SIGTERM: drain and flush) and its blob store
# counted: PUTs per million payloads = objects written / payloads stored.
#
# Tracing at 1% and always_on is measured by bench/tracing.sh (a colleague's
# script); this one runs with OTEL_TRACES_EXPORTER=none.
#
# Prints Markdown tables on stdout. Environment: ROUNDS (3), DURATION (10s),
# THREADS (2), CONNS (64), WARMUP (2s), BENCH_KEEP=1.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNS="${CONNS:-64}"
WARMUP="${WARMUP:-2s}"
PAYLOADS=10

need wrk curl go
bench_init
build_bins
B="$BENCH_TMP/bin"

# The collection: 10 payloads of about 250 bytes each (2.5 KB in all).
body="$BENCH_TMP/collection.json"
{
  printf '{"version":"10.0.19045","token":"bench","data":['
  for i in $(seq 1 $PAYLOADS); do
    ((i > 1)) && printf ','
    printf '{"seq":%d,"host":"web-%02d.example.internal","path":"/api/v2/orders/%06d/items","status":200,"bytes":%d,"duration_ms":%d.%03d,"user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64)","tags":["bench","wardgate","ingest"],"note":"%s"}' \
      "$i" "$i" "$((i * 7919))" "$((i * 1031))" "$i" "$((i * 37 % 1000))" "bench payload $i"
  done
  printf ']}'
} >"$body"
export BODY_FILE="$body"
LUA="$BENCH_ROOT/bench/ingest.lua"
body_bytes="$(wc -c <"$body")"

export OTEL_TRACES_EXPORTER=none

spawn naive "$B/naiveingest"
pid_naive=$SPAWNED
naive="$(listen_addr naive "$pid_naive")"

# start_up NAME PORT [ENV=VAL...] [-- up flags...]: start `wardgate up` with
# its state in $BENCH_TMP/NAME; sets UP_PID.
declare -A UP_PID UP_DATA UP_JQ_METRICS UP_GW_ADMIN
start_up() {
  local name=$1 port=$2
  shift 2
  local envs=()
  while (($#)) && [[ $1 != -- ]]; do envs+=("$1"); shift; done
  (($#)) && shift
  UP_DATA[$name]="$BENCH_TMP/$name"
  # up forwards every child's log line to its stderr and to
  # DATA/run/<service>/stderr.log; its own stderr goes to /dev/null here.
  env "${envs[@]}" "$B/wardgate" up --data "${UP_DATA[$name]}" --listen "127.0.0.1:$port" "$@" \
    >"$BENCH_TMP/$name.out" 2>/dev/null &
  UP_PID[$name]=$!
  BENCH_PIDS+=("${UP_PID[$name]}")
}
# up_ready NAME: wait for up's table; record the admin URLs.
up_ready() {
  local name=$1
  wait_line "$name" "${UP_PID[$name]}" '^stop: ' 120 >/dev/null
  UP_JQ_METRICS[$name]="$(awk '$1 ~ /^jobqueue-/ {print $4}' "$BENCH_TMP/$name.out" | tr '\n' ' ')"
  UP_GW_ADMIN[$name]="$(awk '$1 == "gateway" {sub(/\/metrics$/, "", $4); print $4}' "$BENCH_TMP/$name.out")"
}
# metric_sum NAME METRIC: sum of an unlabelled-ish metric over the job queues.
metric_sum() {
  local name=$1 metric=$2 u total=0 v
  for u in ${UP_JQ_METRICS[$name]}; do
    v="$(curl -fsS --max-time 5 "$u" | awk -v m="$metric" '$1 == m || index($1, m "{") == 1 {s += $2} END {printf "%.0f", s}')"
    total=$((total + v))
  done
  echo "$total"
}
# drain NAME: wait until every job queue has stored what it acked.
drain() {
  local name=$1 deadline=$((SECONDS + 300))
  while ((SECONDS < deadline)); do
    [[ "$(metric_sum "$name" wardgate_queue_depth)" == 0 ]] && return 0
    sleep 0.5
  done
  die "$name: queue did not drain within 300s"
}

read -r p_enq p_dur <<<"$(free_ports 2 | tr '\n' ' ')"
start_up enqueued "$p_enq" -- --ack-mode enqueued
start_up durable "$p_dur" -- --ack-mode durable
for m in enqueued durable; do up_ready "$m"; done

declare -A URL=(
  [naive]="http://$naive"
  [enqueued]="http://127.0.0.1:$p_enq"
  [durable]="http://127.0.0.1:$p_dur"
)
ORDER=(naive enqueued durable)
declare -A LABEL=(
  [naive]="naive ingest (decode and drop, 1 process)"
  [enqueued]="wardgate up, ACK_MODE=enqueued"
  [durable]="wardgate up, ACK_MODE=durable"
)
for t in "${ORDER[@]}"; do
  code="$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "@$body" "${URL[$t]}/v1/payloads")"
  [[ $code == 202 ]] || die "$t: POST /v1/payloads answered $code, want 202"
done

log "all up; warm-up $WARMUP each, then $ROUNDS rounds x $DURATION, wrk -t$THREADS -c$CONNS, body $body_bytes bytes"
for t in "${ORDER[@]}"; do
  wrk_run "$t.warmup" 0 "${URL[$t]}" -s "$LUA" -t"$THREADS" -c"$CONNS" -d"$WARMUP"
  [[ $t == naive ]] || drain "$t"
done
for r in $(seq 1 "$ROUNDS"); do
  for t in "${ORDER[@]}"; do
    wrk_run "$t" "$r" "${URL[$t]}" -s "$LUA" -t"$THREADS" -c"$CONNS" -d"$DURATION"
    [[ $t == naive ]] || drain "$t"
  done
done

# Accepted requests per minute of one run: (requests - non-2xx) / seconds * 60.
acc_per_min() { awk '{ if ($7 > 0) print ($5 - $6) / $7 * 60; else print 0 }' "$1" >"$1.apm"; median_col "$1.apm" 1; }
res() { echo "$BENCH_TMP/wrk/$1.res"; }
naive_apm="$(acc_per_min "$(res naive)")"

echo "| target | accepted requests/min (median) | payloads/s | p50 ms | p99 ms | non-2xx | / naive |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for t in "${ORDER[@]}"; do
  f="$(res "$t")"
  apm="$(acc_per_min "$f")"
  printf '| %s | %.0f | %.0f | %.2f | %.2f | %d | %.2f |\n' "${LABEL[$t]}" "$apm" \
    "$(awk -v a="$apm" -v n=$PAYLOADS 'BEGIN {print a * n / 60}')" \
    "$(median_col "$f" 2)" "$(median_col "$f" 3)" "$(sum_col "$f" 6)" \
    "$(awk -v a="$apm" -v b="$naive_apm" 'BEGIN {print a / b}')"
done
echo
echo "wrk -t$THREADS -c$CONNS, $ROUNDS interleaved rounds x $DURATION per target (median shown), POST of" \
  "$PAYLOADS payloads ($body_bytes bytes) per request, tracing off, file:// blob store on local disk," \
  "all on loopback; $(machine_line)."
echo

# Stop each stack (drain and flush), then count objects vs stored payloads.
echo "| stack | payloads acked (wrk) | payloads stored (metric) | objects written (PUTs) | PUTs per million payloads |"
echo "|---|---:|---:|---:|---:|"
for t in enqueued durable; do
  stored="$(metric_sum "$t" wardgate_payloads_stored_total)"
  acked="$(cat "$(res "$t")" "$(res "$t.warmup")" | awk -v n=$PAYLOADS '{s += ($5 - $6) * n} END {printf "%.0f", s}')"
  stop_pid "${UP_PID[$t]}" 300
  # Everything up stored: the probe POST and any request wrk gave up on
  # after the server accepted it are in here too.
  stored_final="$stored"
  objects="$(find "${UP_DATA[$t]}/blobs" -type f | wc -l)"
  printf '| %s | %d | %d | %d | %.0f |\n' "${LABEL[$t]}" "$acked" "$stored_final" "$objects" \
    "$(awk -v o="$objects" -v s="$stored_final" 'BEGIN {if (s > 0) print o / s * 1e6; else print 0}')"
done
echo
echo "Default batch settings (BATCH_MAX_PAYLOADS=16384, BATCH_MAX_BYTES=8MiB, BATCH_MAX_WAIT=1s) unless the row says otherwise;" \
  "2 job queues, MAX_WORKERS default; stored = wardgate_payloads_stored_total summed over the job queues after draining."
