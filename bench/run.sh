#!/usr/bin/env bash
# End-to-end benchmarks against baselines doing the same work, in one run, alternating.
#
#   bench/run.sh [ROUNDS] [SECONDS] [SCENARIO...]      scenarios: echo weather proxy kafka
#
# sluice runs one shard pinned to CPU 0; each baseline is nginx with one worker pinned to
# CPU 0; wrk (-t1 -c$CONNS) runs on CPU 1. The proxy scenario's upstream (nginx
# `return 200`, one worker) runs on CPU 1 beside wrk for both systems; so does the
# kafka scenario's broker (tansu, in memory, installed by `cargo test --test kafka`),
# where the baseline is the same pipeline with `drop` in place of Kafka. Each row: req/s
# from wrk and the server's CPU time per request from /proc/PID/stat (user+system).
# Installs wrk and nginx from Debian packages if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
shift $(( $# > 2 ? 2 : $# )) || true
SCENARIOS=${*:-echo weather proxy kafka}
CONNS=${CONNS:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BODY='{"location":"Berlin"}'
ANSWER='{"city":"Berlin","forecast":"Clear skies with light winds","temperature_c":22}'

if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
cargo build --release -q
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA

# nginx CONF_NAME PORT CPU LOCATION_BODY; sets LAST to its pid
nginx_start() {
  local name=$1 port=$2 cpu=$3 location=$4
  mkdir -p "$work/$name"
  cat > "$work/$name/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/$name/nginx.pid;
error_log $work/$name/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:18089; keepalive 64; }
  server {
    listen 127.0.0.1:$port reuseport backlog=4096;
    keepalive_requests 1000000;
    location / { $location }
  }
}
NGX
  taskset -c "$cpu" nginx -c "$work/$name/nginx.conf" -p "$work/$name" >/dev/null 2>&1 &
  LAST=$!
  pids+=("$LAST")
}

sluice_start() { # CONFIG PORT [ENV...]; sets LAST to its pid
  local config=$1 port=$2; shift 2
  env SLUICE_LOG_LEVEL=WARN "$@" taskset -c "$SERVER_CPU" target/release/sluice run "$config" \
    --set runtime.shards=1 --set http.address=127.0.0.1:$port --set logger.level=WARN >/dev/null &
  LAST=$!
  pids+=("$LAST")
}

ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
worker_of() { local w; w=$(pgrep -P "$1" | head -1); echo "${w:-$1}"; }

measure() { # SCENARIO SYSTEM URL PID
  local t0 t1 out rps reqs p50 p99
  t0=$(ticks "$4")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$work/post.lua" "$3")
  t1=$(ticks "$4")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  awk -v s="$1" -v n="$2" -v r="$rps" -v q="$reqs" -v d=$((t1 - t0)) -v hz="$hz" -v a="$p50" -v b="$p99" \
    'BEGIN { printf "| %-8s | %-22s | %9.0f | %6.2f | %8s | %8s |\n", s, n, r, d / hz * 1e6 / q, a, b }'
}

echo "| scenario | system | req/s | CPU us/req | p50 | p99 |"
echo "|---|---|---:|---:|---:|---:|"
for scenario in $SCENARIOS; do
  case $scenario in
    echo)
      sluice_start config/echo.yaml 18080; s=$LAST
      nginx_start echo 18081 "$SERVER_CPU" "default_type application/octet-stream; return 200 '$BODY';"; n=$LAST
      urls=("sluice http://127.0.0.1:18080/echo $s" "nginx-return-200 http://127.0.0.1:18081/echo $n")
      ;;
    weather)
      sluice_start config/weather.yaml 18080; s=$LAST
      nginx_start weather 18081 "$SERVER_CPU" "default_type application/octet-stream; return 200 '$ANSWER';"; n=$LAST
      urls=("sluice http://127.0.0.1:18080/weather $s" "nginx-return-200 http://127.0.0.1:18081/weather $n")
      ;;
    proxy)
      nginx_start upstream 18089 "$LOAD_CPU" "default_type application/json; return 200 '$ANSWER';"
      sluice_start config/proxy-weather.yaml 18080 UPSTREAM_URL=http://127.0.0.1:18089/forecast; s=$LAST
      nginx_start proxy 18081 "$SERVER_CPU" "proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\";"; n=$LAST
      urls=("sluice http://127.0.0.1:18080/weather $s" "nginx-proxy_pass http://127.0.0.1:18081/weather $n")
      ;;
    kafka)
      tansu=target/tansu/bin/tansu
      [ -x "$tansu" ] || cargo test -q --test kafka every_request_answered_200 >/dev/null
      taskset -c "$LOAD_CPU" "$tansu" broker --listener-url tcp://127.0.0.1:19092 \
        --advertised-listener-url tcp://127.0.0.1:19092 --storage-engine memory://tansu/ >/dev/null 2>&1 &
      pids+=($!)
      sleep 1
      sluice_start config/weather-kafka.yaml 18080 KAFKA_ADDRESS=127.0.0.1:19092; s=$LAST
      sluice_start config/weather-fanout.yaml 18082; f=$LAST
      urls=("sluice-kafka http://127.0.0.1:18080/weather $s" "sluice-fanout-no-kafka http://127.0.0.1:18082/weather $f")
      ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  sleep 1
  for _ in $(seq "$ROUNDS"); do
    for entry in "${urls[@]}"; do
      read -r name url pid <<<"$entry"
      case $name in sluice*) ;; *) pid=$(worker_of "$pid") ;; esac
      measure "$scenario" "$name" "$url" "$pid"
    done
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pids=()
  sleep 0.5
done
