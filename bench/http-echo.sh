#!/usr/bin/env bash
# End-to-end echo benchmark: sluice (config/echo.yaml, one shard) against nginx
# (1 worker, `return 200` of the same body), both pinned to CPU 0, wrk pinned to CPU 1,
# alternating rounds in one run. Prints req/s and server CPU microseconds per request.
#
#   bench/http-echo.sh [ROUNDS] [SECONDS]
#
# Needs wrk and nginx (installed from Debian packages if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-10}
CONNS=${CONNS:-64}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BODY='{"location":"Berlin"}'

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
cargo build --release -q
work=$(mktemp -d)
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

printf '%s' "$BODY" > "$work/body"
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
cat > "$work/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $work/nginx.pid.unused;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18081 reuseport backlog=4096;
    keepalive_requests 1000000;
    location /echo { default_type application/octet-stream; return 200 '$BODY'; }
  }
}
NGX

# CPU ticks (utime+stime) of a process and all its threads.
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run_one() { # name url pid
  local name=$1 url=$2 pid=$3
  local t0 t1 out rps reqs
  t0=$(ticks "$pid")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$work/post.lua" "$url")
  t1=$(ticks "$pid")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -v n="$name" -v r="$rps" -v q="$reqs" -v d=$((t1 - t0)) -v hz="$hz" \
    'BEGIN { printf "%-8s %10.0f req/s  %6.2f us CPU/req\n", n, r, d / hz * 1e6 / q }'
}

taskset -c "$SERVER_CPU" nginx -c "$work/nginx.conf" -p "$work" 2>/dev/null &
echo $! > "$work/nginx.pid"
SLUICE_ADDRESS=127.0.0.1:18080 SLUICE_LOG_LEVEL=WARN taskset -c "$SERVER_CPU" \
  target/release/sluice run config/echo.yaml --set runtime.shards=1 ${SLUICE_ARGS:-} &
echo $! > "$work/sluice.pid"
sleep 1
for i in $(seq "$ROUNDS"); do
  run_one sluice http://127.0.0.1:18080/echo "$(cat "$work/sluice.pid")"
  # nginx's master forks the worker: measure the worker.
  worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)
  run_one nginx http://127.0.0.1:18081/echo "$worker"
done
