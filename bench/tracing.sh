#!/usr/bin/env bash
# Tracing overhead on ingest: runs `wardgate up` with tracing off, with
# parentbased_traceidratio 0.01, and with always_on (both exporting OTLP to a
# local Jaeger v2), and drives POST /v1/payloads through the gateway with wrk
# (a ~2.5 KB collection of 10 payloads). Runs are interleaved, and the order
# rotates every round, so a slow phase of a shared machine does not land on
# one mode only. Prints requests/min per run, the median per mode and the
# ratio to tracing off.
#
# Usage: bench/tracing.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS] [-t THREADS]
#   env ACK_MODE=enqueued|durable (default enqueued), JAEGER=path,
#   MODES (default "off ratio always_on"; also always_on_gogc200, off_gogc200),
#   ROUNDS and DURATION (seconds, "10" or "10s") as defaults for -r and -d,
#   SINK=jaeger|null: null exports to bench/otlpsink, which drops every export,
#   so the figure is wardgate's own tracing cost and not Jaeger's CPU on the
#   same two cores (default jaeger: the cost of a real local backend)
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DURATION:-10} DUR=${DUR%s} ROUNDS=${ROUNDS:-2} CONNS=32 THREADS=2
while getopts "d:r:c:t:h" o; do
  case $o in
    d) DUR=$OPTARG ;; r) ROUNDS=$OPTARG ;; c) CONNS=$OPTARG ;; t) THREADS=$OPTARG ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done
ACK_MODE=${ACK_MODE:-enqueued}

if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq wrk >/dev/null
fi
JAEGER=${JAEGER:-$(command -v jaeger || echo "$(go env GOPATH)/bin/jaeger")}
[ -x "$JAEGER" ] || ./scripts/install-test-deps.sh

WORK=$(mktemp -d /tmp/wardgate-bench-tracing.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

echo ">> go build wardgate" >&2
go build -o "$WORK/wardgate" ./cmd/wardgate

SINK=${SINK:-jaeger}
OTLP=$(freeport); QUERY=$(freeport); QGRPC=$(freeport)
if [ "$SINK" = null ]; then
  go build -o "$WORK/otlpsink" ./bench/otlpsink
  "$WORK/otlpsink" -listen "127.0.0.1:$OTLP" >"$WORK/otlpsink.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$OTLP/stats" >/dev/null && break; sleep 0.1; done
else
# Jaeger v2 all-in-one, in-memory, OTLP/HTTP receiver on a free port.
cat >"$WORK/jaeger.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}
  telemetry: {metrics: {level: none}, logs: {level: warn}}
extensions:
  jaeger_query:
    storage: {traces: mem}
    http: {endpoint: "127.0.0.1:$QUERY"}
    grpc: {endpoint: "127.0.0.1:$QGRPC"}
  jaeger_storage:
    backends: {mem: {memory: {max_traces: 50000}}}
receivers:
  otlp: {protocols: {http: {endpoint: "127.0.0.1:$OTLP"}}}
processors:
  batch: {}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
YAML
"$JAEGER" --config "file:$WORK/jaeger.yaml" >"$WORK/jaeger.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$QUERY/api/services" >/dev/null && break; sleep 0.1; done
fi

# ~2.5 KB collection of 10 payloads.
python3 - "$WORK/post.lua" <<'PY'
import json, sys
data = [{"kind": "event", "seq": i, "host": "ws-%04d" % i, "user": "user-%d@example.com" % i,
         "event": "process_start", "image": "C:\\Windows\\System32\\svchost.exe",
         "cmdline": "svchost.exe -k netsvcs -p -s Schedule " + "x" * 60, "pid": 4000 + i} for i in range(10)]
body = json.dumps({"version": "10.0.19045", "token": "bench", "data": data}, separators=(",", ":"))
with open(sys.argv[1], "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("wrk.body = %s\n" % json.dumps(body))
print("collection: %d bytes" % len(body), file=sys.stderr)
PY

declare -A ENV_OF=(
  [off]=""
  [ratio]="OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01"
  [always_on]="OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP OTEL_TRACES_SAMPLER=always_on"
)
ENV_OF[always_on_gogc200]="${ENV_OF[always_on]} GOGC=200"
ENV_OF[off_gogc200]="GOGC=200"
# MODES="off always_on always_on_gogc200 off_gogc200" adds the GC trade-off
# (GOGC=200 in every process of the stack) to the comparison.
read -r -a MODES <<<"${MODES:-off ratio always_on}"
[[ " ${MODES[*]} " == *" off "* ]] || { echo "MODES must include off (the baseline)" >&2; exit 2; }
for m in "${MODES[@]}"; do [ -n "${ENV_OF[$m]+x}" ] || { echo "unknown mode $m (have: ${!ENV_OF[*]})" >&2; exit 2; }; done
declare -A RESULTS

run() { # mode round
  local mode=$1 round=$2 port data out
  port=$(freeport); data="$WORK/data-$mode-$round"
  out="$WORK/up-$mode-$round"
  # shellcheck disable=SC2086
  env -u OTEL_TRACES_EXPORTER -u OTEL_TRACES_SAMPLER -u OTEL_TRACES_SAMPLER_ARG ${ENV_OF[$mode]} \
    "$WORK/wardgate" up --listen "127.0.0.1:$port" --data "$data" --ack-mode "$ACK_MODE" >"$out.stdout" 2>"$out.stderr" &
  local up=$!
  for _ in $(seq 1200); do grep -q '^stop:' "$out.stdout" 2>/dev/null && break; sleep 0.1; done
  grep -q '^stop:' "$out.stdout" || { echo "up ($mode) did not start:"; tail "$out.stderr"; exit 1; }
  wrk -t"$THREADS" -c"$CONNS" -d2s -s "$WORK/post.lua" "http://127.0.0.1:$port/v1/payloads" >/dev/null # warm-up
  wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$port/v1/payloads" >"$out.wrk"
  kill -TERM "$up"; wait "$up" || echo "warning: up ($mode) exited $?" >&2
  local rps non2xx p99
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out.wrk")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out.wrk"); non2xx=${non2xx:-0}
  p99=$(awk '$1=="99%" {print $2}' "$out.wrk")
  local rpm; rpm=$(awk -v r="$rps" 'BEGIN{printf "%.0f", r*60}')
  RESULTS[$mode]+="$rpm "
  printf "round %d  %-18s %10s req/min  p99 %-8s non-2xx %s\n" "$round" "$mode" "$rpm" "$p99" "$non2xx"
}

echo ">> $ROUNDS rounds x ${DUR}s per mode, wrk -t$THREADS -c$CONNS, ACK_MODE=$ACK_MODE, SINK=$SINK, $(nproc) CPUs" >&2
for r in $(seq "$ROUNDS"); do
  # rotate the order each round
  n=${#MODES[@]}; k=$(( (r - 1) % n ))
  for i in $(seq 0 $(( n - 1 ))); do run "${MODES[$(( (i + k) % n ))]}" "$r"; done
done

echo
# Median per mode (the mean of the middle two for an even count): one round
# hit by a burst of other work on the machine does not move it.
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {if (NR%2) printf "%.0f", v[(NR+1)/2]; else printf "%.0f", (v[NR/2]+v[NR/2+1])/2}'; }
printf "%-18s %14s %10s\n" mode "median req/min" "vs off"
off_med=$(echo "${RESULTS[off]}" | median)
for m in "${MODES[@]}"; do
  med=$(echo "${RESULTS[$m]}" | median)
  printf "%-18s %14s %10s\n" "$m" "$med" "$(awk -v a="$med" -v b="$off_med" 'BEGIN{printf "%.3f", a/b}')"
done
