#!/usr/bin/env bash
# Gateway vs its peers, side by side, in one run on this machine.
#
# Two identical Go backends (bench/backend, 64-byte body) on loopback; in
# front of them, each on its own loopback port with a generated config in a
# temp dir, in the foreground:
#   nginx      worker_processes 2, upstream keepalive 256, HTTP/1.1 upstream
#   haproxy    nbthread 2, http-reuse always
#   caddy      reverse_proxy, round robin, 256 idle conns per host
#   traefik    Traefik v3 built from its Go module (tools/traefik, cached),
#              file provider: one router, a load balancer over the two
#              backends (weighted round robin, equal weights), no access
#              log, serversTransport maxIdleConnsPerHost 256 (as Caddy)
#   wardgate   `wardgate gateway`, round_robin (default: access log on,
#              written to /dev/null) and the same with --log-level warn
#              (no access log, like the peers here)
#   plain      bench/plainproxy: httputil.ReverseProxy, default settings
#   fasthttp   tools/fastproxy: a fasthttp reverse proxy (keep-alive
#              HostClient per backend, round robin, X-Forwarded-For,
#              hop-by-hop headers stripped): a reference for what a Go
#              proxy NOT built on net/http reaches here
#   direct     wrk straight at one backend (the ceiling)
# The peers log nothing per request (nginx access_log off, haproxy no log,
# caddy's default), so the "wardgate, no access log" row is the like-for-like
# one and the default row shows what the access log costs.
#
# Runs are interleaved (A B C ... A B C ...) so slow drift of a shared
# machine hits every target alike; each row is the median over the rounds.
#
# Two phases, both in this one run:
#   throughput  wrk -t$THREADS -c$CONNS (closed loop: as fast as it goes)
#   latency     tools/loadlat (vegeta, open loop) at fixed request rates,
#               LAT_LOADS percent (50 and 80) of the slowest proxy's median
#               throughput of the first phase, so every proxy can sustain
#               every rate; latency counted from each request's scheduled
#               send time (no coordinated omission). p50/p99/p99.9.
# At the end: the ratios the goals are stated in (wardgate / Caddy, Traefik,
# httputil.ReverseProxy, nginx) for CPU us/request and p99 at fixed load.
#
# "CPU µs/request" is the CPU time (utime + stime from /proc/PID/stat, of the
# proxy and its descendants, e.g. nginx's workers) used during each wrk run
# divided by the requests that run completed; median over the rounds. For
# `direct` it is the backend's own CPU. On a shared 2-core box where wrk and
# the backends compete with the proxy for the same cores this is the fairer
# figure: requests/s also measures how much CPU the proxy left to the others.
# Prints a Markdown table on stdout; progress on stderr. Stops by itself and
# kills what it started on exit.
#
# Environment: ROUNDS (3), DURATION (10s), THREADS (2), CONNS (64),
# WARMUP (2s), BODY (64 bytes), LAT_LOADS ("50 80": percent of the slowest
# proxy's throughput), LAT_ROUNDS (ROUNDS), LAT_DURATION (8s per target and
# load), LAT_RATES (fixed rates in req/s instead of LAT_LOADS, e.g.
# "4000 8000", to compare runs), PLOT_SVG (write the latency plot there;
# bench/run-all.sh sets it), BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
CONNS="${CONNS:-64}"
WARMUP="${WARMUP:-2s}"
BODY="${BODY:-64}"
LAT_LOADS="${LAT_LOADS:-50 80}"
LAT_ROUNDS="${LAT_ROUNDS:-$ROUNDS}"
LAT_DURATION="${LAT_DURATION:-8s}"
LAT_RATES="${LAT_RATES:-}"
PLOT_SVG="${PLOT_SVG:-}"

need wrk nginx haproxy caddy curl go
bench_init
build_bins
build_fastproxy
build_loadlat
build_traefik
B="$BENCH_TMP/bin"
HZ="$(getconf CLK_TCK)"

spawn backend1 "$B/backend" -size "$BODY"
pid_be1=$SPAWNED
spawn backend2 "$B/backend" -size "$BODY"
be1="$(listen_addr backend1 "$pid_be1")"
be2="$(listen_addr backend2 "$SPAWNED")"
log "backends on $be1 and $be2"

read -r p_nginx p_haproxy p_caddy p_traefik p_wg p_wg_admin p_wgq p_wgq_admin <<<"$(free_ports 8 | tr "\n" " ")"

# nginx ---------------------------------------------------------------------
ng="$BENCH_TMP/nginx"
mkdir -p "$ng/logs" "$ng/tmp"
cat >"$ng/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
pid $ng/nginx.pid;
error_log $ng/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $ng/tmp/body;
  proxy_temp_path $ng/tmp/proxy;
  fastcgi_temp_path $ng/tmp/fastcgi;
  uwsgi_temp_path $ng/tmp/uwsgi;
  scgi_temp_path $ng/tmp/scgi;
  keepalive_requests 100000;
  upstream backends {
    server $be1;
    server $be2;
    keepalive 256;
    keepalive_requests 100000;
  }
  server {
    listen 127.0.0.1:$p_nginx;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
spawn nginx nginx -p "$ng" -c "$ng/nginx.conf"
pid_nginx=$SPAWNED

# HAProxy -------------------------------------------------------------------
hp="$BENCH_TMP/haproxy.cfg"
cat >"$hp" <<EOF
global
  nbthread 2
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend fe
  bind 127.0.0.1:$p_haproxy
  default_backend be
backend be
  balance roundrobin
  server s1 $be1
  server s2 $be2
EOF
spawn haproxy haproxy -db -f "$hp"
pid_haproxy=$SPAWNED

# Caddy ---------------------------------------------------------------------
cd_dir="$BENCH_TMP/caddy"
mkdir -p "$cd_dir"
cat >"$cd_dir/Caddyfile" <<EOF
{
  admin off
  auto_https off
}
http://127.0.0.1:$p_caddy {
  reverse_proxy $be1 $be2 {
    lb_policy round_robin
    transport http {
      keepalive 90s
      keepalive_idle_conns 512
      keepalive_idle_conns_per_host 256
    }
  }
}
EOF
XDG_DATA_HOME="$cd_dir" XDG_CONFIG_HOME="$cd_dir" HOME="$cd_dir" \
  spawn caddy caddy run --adapter caddyfile --config "$cd_dir/Caddyfile"
pid_caddy=$SPAWNED

# Traefik -------------------------------------------------------------------
# Static config: one entry point, the file provider, no access log (absent
# accessLog section), no API/dashboard, no version check or usage report
# (no traffic off the machine). Dynamic config: one router for every path,
# one load-balancer service over both backends. Traefik proxies with
# net/http's ReverseProxy by default (its experimental fastProxy is off).
tf="$BENCH_TMP/traefik"
mkdir -p "$tf"
cat >"$tf/traefik.yml" <<EOF
global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  web:
    address: "127.0.0.1:$p_traefik"
providers:
  file:
    filename: "$tf/dynamic.yml"
    watch: false
serversTransport:
  maxIdleConnsPerHost: 256
log:
  level: ERROR
EOF
cat >"$tf/dynamic.yml" <<EOF
http:
  routers:
    all:
      entryPoints: [web]
      rule: "PathPrefix(\`/\`)"
      service: backends
  services:
    backends:
      loadBalancer:
        servers:
          - url: "http://$be1"
          - url: "http://$be2"
EOF
HOME="$tf" spawn traefik "$B/traefik" --configFile="$tf/traefik.yml"
pid_traefik=$SPAWNED

# wardgate gateway, twice: default logging and --log-level warn ----------------
gw_conf() { # LISTEN_PORT ADMIN_PORT
  cat <<EOF
listen: 127.0.0.1:$1
admin: 127.0.0.1:$2
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
}
gw_conf "$p_wg" "$p_wg_admin" >"$BENCH_TMP/gateway.yaml"
gw_conf "$p_wgq" "$p_wgq_admin" >"$BENCH_TMP/gateway-quiet.yaml"
# The access log goes to /dev/null: the cost of formatting and writing each
# line is measured, not the disk.
"$B/wardgate" gateway --config "$BENCH_TMP/gateway.yaml" >/dev/null 2>/dev/null &
pid_wg=$!
BENCH_PIDS+=("$pid_wg")
spawn wardgate-quiet "$B/wardgate" gateway --config "$BENCH_TMP/gateway-quiet.yaml" --log-level warn
pid_wgq=$SPAWNED

spawn plainproxy "$B/plainproxy" -targets "http://$be1,http://$be2"
pid_plain=$SPAWNED
plain="$(listen_addr plainproxy "$pid_plain")"

spawn fastproxy "$B/fastproxy" -targets "http://$be1,http://$be2"
pid_fast=$SPAWNED
fast="$(listen_addr fastproxy "$pid_fast")"
fasthttp_version="$(go version -m "$B/fastproxy" | awk '$2 == "github.com/valyala/fasthttp" {print $3}')"

declare -A URL=(
  [direct]="http://$be1/"
  [plain]="http://$plain/"
  [fasthttp]="http://$fast/"
  [wardgate]="http://127.0.0.1:$p_wg/"
  [wardgate-nolog]="http://127.0.0.1:$p_wgq/"
  [nginx]="http://127.0.0.1:$p_nginx/"
  [haproxy]="http://127.0.0.1:$p_haproxy/"
  [caddy]="http://127.0.0.1:$p_caddy/"
  [traefik]="http://127.0.0.1:$p_traefik/"
)
declare -A PID=(
  [direct]=$pid_be1 [plain]=$pid_plain [fasthttp]=$pid_fast [wardgate]=$pid_wg [wardgate-nolog]=$pid_wgq
  [nginx]=$pid_nginx [haproxy]=$pid_haproxy [caddy]=$pid_caddy [traefik]=$pid_traefik
)
ORDER=(direct wardgate wardgate-nolog nginx haproxy caddy traefik plain fasthttp)
declare -A LABEL=(
  [direct]="direct to one backend (ceiling)"
  [wardgate]="wardgate gateway (default, access log on)"
  [wardgate-nolog]="wardgate gateway, --log-level warn (no access log)"
  [nginx]="nginx $(nginx -v 2>&1 | sed 's|.*/||')"
  [haproxy]="HAProxy $(haproxy -v | head -1 | awk '{print $3}' | cut -d- -f1)"
  [caddy]="Caddy $(caddy version | awk '{print $1}')"
  [traefik]="Traefik $(go version -m "$B/traefik" | awk '$1 == "mod" && $2 == "github.com/traefik/traefik/v3" {print $3}')"
  [plain]="httputil.ReverseProxy, defaults"
  [fasthttp]="fasthttp reverse proxy (reference, not net/http)"
)

for t in "${ORDER[@]}"; do
  wait_http "${URL[$t]}" "${PID[$t]}"
  # Every proxy must actually reach the backends with a 2xx.
  [[ "$(curl -s "${URL[$t]}" | wc -c)" -eq "$BODY" ]] || die "$t: unexpected body"
done
log "all up; warm-up $WARMUP each, then $ROUNDS rounds x $DURATION, wrk -t$THREADS -c$CONNS"
for t in "${ORDER[@]}"; do
  wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "${URL[$t]}" >/dev/null
done
for r in $(seq 1 "$ROUNDS"); do
  for t in "${ORDER[@]}"; do
    c0="$(tree_cpu_ticks "${PID[$t]}")"
    wrk_run "$t" "$r" "${URL[$t]}" -t"$THREADS" -c"$CONNS" -d"$DURATION"
    c1="$(tree_cpu_ticks "${PID[$t]}")"
    # CPU µs per completed request of this run (column 5 of wrk_run's line).
    awk -v d="$((c1 - c0))" -v hz="$HZ" -v n="$(tail -1 "$BENCH_TMP/wrk/$t.res" | awk '{print $5}')" \
      'BEGIN { if (n > 0) printf "%.2f\n", d / hz * 1e6 / n; else print "nan" }' >>"$BENCH_TMP/wrk/$t.cpu"
    log "$(printf '%-28s round %s: %s CPU us/request (%s ticks)' "$t" "$r" "$(tail -1 "$BENCH_TMP/wrk/$t.cpu")" "$((c1 - c0))")"
  done
done

res() { echo "$BENCH_TMP/wrk/$1.res"; }

# Latency at fixed load -------------------------------------------------------
# The rates: LAT_LOADS percent of the slowest proxy's median throughput above
# (every row but direct), or LAT_RATES as given.
slowest=""
for t in "${ORDER[@]}"; do
  [[ $t == direct ]] && continue
  r="$(median_col "$(res "$t")" 1)"
  if [[ -z $slowest ]] || awk -v a="$r" -v b="$slowest_rps" 'BEGIN {exit !(a < b)}'; then
    slowest=$t slowest_rps=$r
  fi
done
LOADS=() RATES=()
if [[ -n $LAT_RATES ]]; then
  for rate in $LAT_RATES; do LOADS+=("${rate}/s") RATES+=("$rate"); done
else
  for pct in $LAT_LOADS; do
    LOADS+=("${pct}%") RATES+=("$(awk -v r="$slowest_rps" -v p="$pct" 'BEGIN {printf "%d", r * p / 100}')")
  done
fi
mkdir -p "$BENCH_TMP/lat"
log "latency at fixed load: ${RATES[*]} req/s (${LOADS[*]} of $slowest's $slowest_rps req/s), $LAT_ROUNDS rounds x $LAT_DURATION"
for r in $(seq 1 "$LAT_ROUNDS"); do
  for i in "${!RATES[@]}"; do
    for t in "${ORDER[@]}"; do
      c0="$(tree_cpu_ticks "${PID[$t]}")"
      line="$("$B/loadlat" attack -url "${URL[$t]}" -rate "${RATES[$i]}" -duration "$LAT_DURATION")" ||
        die "loadlat failed for $t at ${RATES[$i]} req/s"
      c1="$(tree_cpu_ticks "${PID[$t]}")"
      # line: rate achieved p50 p99 p99.9 max errors requests; + CPU us/request
      awk -v d="$((c1 - c0))" -v hz="$HZ" -v l="$line" 'BEGIN {
        split(l, f, " "); printf "%s %.2f\n", l, (f[8] > 0 ? d / hz * 1e6 / f[8] : 0) }' >>"$BENCH_TMP/lat/$t.$i"
      log "$(printf '%-28s round %s @ %s: %s' "$t" "$r" "${RATES[$i]}/s" "$(tail -1 "$BENCH_TMP/lat/$t.$i")")"
    done
  done
done

# Tables -----------------------------------------------------------------------
# cell FILE COL FMT: "median (min–max)" of column COL over the rounds.
cell() {
  local f=$1 c=$2 fmt=$3
  awk -v c="$c" '{print $c}' "$f" | sort -g | awk -v fmt="$fmt" '{a[NR] = $1} END {
    m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
    if (NR > 1) printf fmt " (" fmt "–" fmt ")", m, a[1], a[NR]; else printf fmt, m }'
}
wg_rps="$(median_col "$(res wardgate)" 1)"
wgq_rps="$(median_col "$(res wardgate-nolog)" 1)"
echo "#### Throughput (wrk, closed loop)"
echo
echo "| target | requests/s (median) | p50 ms | p99 ms | errors | CPU µs/request (min–max) | wardgate / this | wardgate no-log / this |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for t in "${ORDER[@]}"; do
  f="$(res "$t")"
  rps="$(median_col "$f" 1)"
  printf '| %s | %.0f | %.2f | %.2f | %d | %s | %.2f | %.2f |\n' "${LABEL[$t]}" "$rps" \
    "$(median_col "$f" 2)" "$(median_col "$f" 3)" "$(sum_col "$f" 4)" \
    "$(cell "$BENCH_TMP/wrk/$t.cpu" 1 %.1f)" \
    "$(awk -v a="$wg_rps" -v b="$rps" 'BEGIN {print a / b}')" \
    "$(awk -v a="$wgq_rps" -v b="$rps" 'BEGIN {print a / b}')"
done
echo
echo "wrk -t$THREADS -c$CONNS --latency, $ROUNDS interleaved rounds x $DURATION per target (median shown, spread min–max over rounds)," \
  "GET /, $BODY-byte body, two bench/backend upstreams, all on loopback; $(machine_line);" \
  "$(wrk -v 2>&1 | head -1 | awk '{print "wrk", $2}'); fasthttp $fasthttp_version (tools/fastproxy)." \
  "CPU µs/request: utime+stime of the proxy's process tree (the backend's for direct) during each run" \
  "divided by the requests completed in it, median over rounds."
echo
echo "#### Latency at fixed load (open loop, no coordinated omission)"
echo
echo "| target | load | rate req/s | achieved req/s | p50 ms | p99 ms (min–max) | p99.9 ms | errors | CPU µs/request |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
: >"$BENCH_TMP/lat/plot.txt"
for i in "${!RATES[@]}"; do
  for t in "${ORDER[@]}"; do
    f="$BENCH_TMP/lat/$t.$i"
    printf '| %s | %s | %d | %.0f | %.3f | %s | %.3f | %d | %.1f |\n' "${LABEL[$t]}" "${LOADS[$i]}" "${RATES[$i]}" \
      "$(median_col "$f" 2)" "$(median_col "$f" 3)" "$(cell "$f" 4 %.3f)" "$(median_col "$f" 5)" \
      "$(sum_col "$f" 7)" "$(median_col "$f" 9)"
    echo "$t ${LOADS[$i]}=${RATES[$i]}/s $(median_col "$f" 3) $(median_col "$f" 4) $(median_col "$f" 5)" >>"$BENCH_TMP/lat/plot.txt"
  done
done
echo
echo "tools/loadlat attack (vegeta $(cd "$BENCH_ROOT/tools/loadlat" && go list -m -f '{{.Version}}' github.com/tsenart/vegeta/v12), open loop):" \
  "GET / at a constant rate for $LAT_DURATION per target and load, $LAT_ROUNDS interleaved rounds, median shown (p99 spread min–max over rounds);" \
  "rates are ${LAT_LOADS// /% and }% of the slowest proxy's median throughput above ($slowest, $(printf %.0f "$slowest_rps") req/s)$([[ -n $LAT_RATES ]] && echo ", overridden by LAT_RATES=$LAT_RATES")." \
  "Latency runs from the time each request was due by the schedule to the end of its response, so a stall of the proxy (or of the sender) is charged in full." \
  "achieved < rate means the target or the machine could not keep up: such a row is not a valid latency figure." \
  "CPU µs/request: as above, at this rate."
if [[ -n $PLOT_SVG ]]; then
  "$B/loadlat" plot -in "$BENCH_TMP/lat/plot.txt" -out "$PLOT_SVG" -title "bench/proxies.sh, $(date -u +%F)" ||
    die "loadlat plot failed"
  log "wrote latency plot $PLOT_SVG"
fi

# Ratios -----------------------------------------------------------------------
# The goals are stated as wardgate / peer: CPU µs/request at full load and
# p99 at each fixed load; below 1 is better for wardgate.
ratio() { # FILE_A FILE_B COL
  awk -v a="$(median_col "$1" "$3")" -v b="$(median_col "$2" "$3")" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}
# lat_ratio W PEER I: the p99 ratio at load I, or "n/a" when either side did
# not keep up with the rate (achieved < 98 %): its latency is not a figure.
lat_ratio() {
  local f
  for f in "$BENCH_TMP/lat/$1.$3" "$BENCH_TMP/lat/$2.$3"; do
    if awk -v a="$(median_col "$f" 2)" -v r="${RATES[$3]}" 'BEGIN {exit !(a < 0.98 * r)}'; then
      echo "n/a (below rate)"
      return
    fi
  done
  ratio "$BENCH_TMP/lat/$1.$3" "$BENCH_TMP/lat/$2.$3" 4
}
# ratio_table prints the ratios as Markdown; it goes to stdout (the doc) and
# to stderr, so whoever runs the bench sees them at the end.
ratio_table() {
  local hdr sep row w peer i
  echo "#### Ratios the goals are stated in (wardgate ÷ peer, median over rounds; < 1 is better for wardgate)"
  echo
  hdr="| wardgate row | ÷ peer | CPU µs/request (wrk)"
  sep="|---|---|---:"
  for i in "${!RATES[@]}"; do hdr+=" | p99 @ ${LOADS[$i]}"; sep+="|---:"; done
  echo "$hdr |"
  echo "$sep|"
  for w in wardgate wardgate-nolog; do
    for peer in caddy traefik plain nginx; do
      row="| ${LABEL[$w]} | ${LABEL[$peer]} | $(ratio "$BENCH_TMP/wrk/$w.cpu" "$BENCH_TMP/wrk/$peer.cpu" 1)"
      for i in "${!RATES[@]}"; do row+=" | $(lat_ratio "$w" "$peer" "$i")"; done
      echo "$row |"
    done
  done
}
echo
ratio_table | tee /dev/stderr
