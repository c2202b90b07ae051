#!/usr/bin/env bash
# Memory at rest and per idle connection, for docs/benchmarks.md ("Memory").
#
#   bench/memory.sh [CONNECTIONS]        (default 10000)
#   SLUICE=target/pgo/sluice bench/memory.sh  (the build bench/run.sh measures)
#
# Starts `config/weather.yaml` with one shard on CPU 0, reads VmRSS right after
# start-up, then opens CONNECTIONS keep-alive connections from a Python client, sends
# one request on each (so each has been through a full request and is now idle), and
# reads VmRSS again 3 s later: an idle connection frees its buffers after 1 s, and the
# shard hands freed pages back at most once a second, so only by then is every
# connection at rest (at 2 s the reading sometimes caught the last hand-back before it
# ran: +46 MiB instead of +38.5). Prints both and the difference.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-10000}
PORT=${PORT:-18190}
# Each side (sluice, the client) holds one descriptor per connection.
ulimit -n $((CONNS + 1000))
SLUICE=${SLUICE:-target/release/sluice}
[ "$SLUICE" != target/release/sluice ] || cargo build --release -q -p sluice
rss() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }

taskset -c "${SERVER_CPU:-0}" "$SLUICE" run config/weather.yaml \
  --set "http.address=127.0.0.1:$PORT" --set runtime.shards=1 \
  --set input.http_server.idle_timeout=5m --set logger.level=WARN &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null && break
  sleep 0.1
done
sleep 1
idle=$(rss $pid)

read -r ok loaded < <(python3 - "$PORT" "$CONNS" "$pid" <<'PY'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
body = b'{"location":"Berlin"}'
req = (b"POST /weather HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    conns.append(s)
ok = 0
for s in conns:
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    ok += data.startswith(b"HTTP/1.1 200")
time.sleep(3)
rss = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0]
print(f"{ok} {rss}")
for s in conns:
    s.close()
PY
)
echo "idle RSS after start-up: $((idle / 1024)).$(( (idle % 1024) * 10 / 1024 )) MiB"
echo "$ok of $CONNS connections answered 200, then idle: RSS $((loaded / 1024)) MiB"
awk -v a="$idle" -v b="$loaded" -v n="$CONNS" 'BEGIN {
  printf "added by %d idle connections: %.1f MiB (%.2f KiB each)\n", n, (b-a)/1024, (b-a)/n }'
