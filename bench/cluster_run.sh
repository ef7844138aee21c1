#!/bin/bash
# Usage: OUT=/tmp/x [TREE=/work/wt-start] [PROF=dir] bash bench/cluster_run.sh single spread affinity idle ...
# Each argument is one run on a fresh system: `single` = one instance without Redis; `spread` /
# `affinity` = three instances + redis-server, a room's players round-robin / on its home;
# `idle` = the three instances + Redis holding 400 connections in 100 rooms at 0 msg/s, spread
# (CPU per process); `saturate-single` / `saturate-spread` / `saturate-affinity` = the saturation
# search (from SAT_RATE = 2 msg/s per player, × 1.25 per 5-s step until p99 > 50 ms or a loss).
# Relay: 100 rooms x 4 at 10 msg/s per player (12,000 delivered/s; ROOMS=, RATE= change it), 10 s,
# JSON per run in $OUT.
# TREE = the server's source tree (default this one; the load generator is always this one's).
# SERVER=baseline = the thin relays instead of ours: bench/baseline.ts for `single`, three
# bench/baseline_cluster.ts instances over the Redis for `spread` / `affinity` (the floor of the
# cluster's hops); BASELINE_TRANSPORT=ws serves them on ours' transport;
# SIGNAL_FISH_CLUSTER__ENVELOPE_WINDOW_MS=W sets ours' envelope window and the thin relay's alike.
# TTL = cluster.directory_ttl_secs (T) of the three instances (default 3, the least allowed, so a
# run waits only 3 s for the epoch's grace window; the server's default is 30: refreshes every
# 10 s instead of every 1 s, and each cluster run then waits 30 s before it starts).
# PROF = a directory for V8 CPU profiles of the servers (--cpu-prof; written at exit).
# PERF=1 = `perf stat` of each process (system calls, context switches, CPU) for 5 s mid-step;
# with PERFREC=1 also `perf record` (on-CPU samples; V8FLAGS=--perf-basic-prof names JS frames).
# PIN_SERVERS=<cpu list> runs redis-server and every server on those CPUs (`taskset -c`), and
# PIN_LOAD=<cpu list> the load generator (with its agents): e.g. PIN_SERVERS=0 PIN_LOAD=1 keeps every
# hop between servers and Redis on one CPU, so only the generator's hops cross CPUs.
# Needs redis-server; ports picked at random; every process started here is stopped at the end.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp}
PS=() PL=()
[ -n "${PIN_SERVERS:-}" ] && PS=(taskset -c "$PIN_SERVERS")
[ -n "${PIN_LOAD:-}" ] && PL=(taskset -c "$PIN_LOAD")
TREE=${TREE:-$PWD}
TTL=${TTL:-3}
mkdir -p "$OUT"
ENV_COMMON=(SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP=1000000 SIGNAL_FISH_SECURITY__MAX_CONNECTIONS=19900
  SIGNAL_FISH_SECURITY__HTTP__MAX_PENDING_CONNECTIONS=100000 SIGNAL_FISH_SECURITY__HTTP__MAX_PENDING_CONNECTIONS_PER_IP=100000
  SIGNAL_FISH_RATE_LIMIT__MAX_ROOM_CREATIONS=1000000000 SIGNAL_FISH_RATE_LIMIT__MAX_JOIN_ATTEMPTS=1000000000
  SIGNAL_FISH_SERVER__MAX_ROOMS_PER_IP=1000000
  SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING=false SIGNAL_FISH_LOGGING__LEVEL=warn NO_COLOR=1)
PROF_FLAGS=()
[ -n "${PROF:-}" ] && mkdir -p "$PROF" && PROF_FLAGS=(--cpu-prof "--cpu-prof-dir=$PROF")

run() { # mode
  local mode=$1 P n=3 RPID= PIDS=() URLS=()
  # Four free ports in a row (other benchmarks may be running on this machine), below the
  # kernel's ephemeral range (32768–60999), where clients' own ports would collide with them.
  while :; do
    P=$((20000 + RANDOM % 12000))
    ss -Hltn "( sport >= :$P and sport <= :$((P + 3)) )" | grep -q . || break
  done
  case $mode in single | saturate-single) n=1 ;; esac
  if [ $n -gt 1 ]; then
    "${PS[@]}" redis-server --port $P --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
    RPID=$!
    for ((try = 0; try < 50; try++)); do
      redis-cli -p $P ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    if ! redis-cli -p $P ping >/dev/null 2>&1; then
      echo "$mode: redis-server did not start on port $P" >&2
      kill "$RPID" 2>/dev/null
      return 1
    fi
  fi
  for ((i = 0; i < n; i++)); do
    local PORT=$((P + 1 + i)) CL=()
    [ $n -gt 1 ] && CL=(SIGNAL_FISH_CLUSTER__REDIS_URL=redis://127.0.0.1:$P SIGNAL_FISH_CLUSTER__INSTANCE_ID=b$i
      SIGNAL_FISH_CLUSTER__DIRECTORY_TTL_SECS=$TTL SIGNAL_FISH_CLUSTER__HEARTBEAT_MS=1000
      SIGNAL_FISH_CLUSTER__DRAIN_TIMEOUT_SECS=0)
    if [ "${SERVER:-ours}" = baseline ]; then
      # The thin relays: bench/baseline.ts alone, bench/baseline_cluster.ts over this Redis.
      local BL=(bench/baseline.ts) BT=()
      [ $n -gt 1 ] && BL=(bench/baseline_cluster.ts --redis redis://127.0.0.1:$P
        --window-ms "${SIGNAL_FISH_CLUSTER__ENVELOPE_WINDOW_MS:-0}")
      [ -n "${BASELINE_TRANSPORT:-}" ] && BT=(--transport "$BASELINE_TRANSPORT")
      (cd "$TREE" && exec "${PS[@]}" deno run --allow-net --allow-read --allow-env ${V8FLAGS:+--v8-flags=$V8FLAGS} \
        "${PROF_FLAGS[@]}" "${BL[@]}" "${BT[@]}" --hostname 127.0.0.1 --port $PORT) >"$OUT/server-$mode-$i.log" 2>&1 &
    else
      (cd "$TREE" && exec "${PS[@]}" env "${ENV_COMMON[@]}" "${CL[@]}" deno run --allow-net --allow-read --allow-env \
        --v8-flags=--initial-old-space-size=64,--max-semi-space-size=4${V8FLAGS:+,$V8FLAGS} "${PROF_FLAGS[@]}" main.ts --host 127.0.0.1 --port $PORT) \
        >"$OUT/server-$mode-$i.log" 2>&1 &
    fi
    PIDS+=($!)
    URLS+=("ws://127.0.0.1:$PORT/v2/ws")
  done
  # Every instance up (and, in a cluster, registered: /v2/health is 200), then past the epoch's
  # grace window (T s). A busy machine may need tens of seconds to start them.
  local up=1
  for ((i = 0; i < n; i++)); do
    for ((try = 0; try < 600; try++)); do
      curl -sf -o /dev/null "http://127.0.0.1:$((P + 1 + i))/v2/health" && break
      sleep 0.1
    done
    curl -sf -o /dev/null "http://127.0.0.1:$((P + 1 + i))/v2/health" || up=0
  done
  if [ $up = 0 ]; then
    echo "$mode: an instance did not come up (see $OUT/server-$mode-*.log)" >&2
    kill -TERM "${PIDS[@]}" 2>/dev/null
    wait "${PIDS[@]}" 2>/dev/null
    [ -n "$RPID" ] && kill "$RPID" && wait "$RPID" 2>/dev/null
    return 1
  fi
  if [ $n -gt 1 ]; then sleep "$TTL.5"; else sleep 3.5; fi
  local URLLIST PIDLIST
  URLLIST=$(IFS=,; echo "${URLS[*]}")
  PIDLIST=$(IFS=,; echo "${PIDS[*]}${RPID:+,$RPID}")
  local REDIS=()
  [ -n "$RPID" ] && REDIS=(--redis 127.0.0.1:$P)
  local tag
  tag=$(basename "$TREE")${SERVER:+-$SERVER}${BASELINE_TRANSPORT:+-$BASELINE_TRANSPORT}-$mode-$(date +%H%M%S)
  local before
  before=$(cat /proc/pressure/cpu | head -1)
  if [ -n "${PERF:-}" ] && [ "$mode" != idle ]; then
    # System calls and context switches of each process over 5 s in the middle of the step
    # (connect + warm-up take about 4 s): `perf stat`, one per process.
    [ -n "${PERFREC:-}" ] && (sleep 7; perf record -F 1999 -o "$OUT/$tag.perf.data" \
      -p "$(IFS=,; echo "${PIDS[*]}${RPID:+,$RPID}")" -- sleep 5 >"$OUT/$tag.perf.log" 2>&1) &
    (sleep 7; for pid in "${PIDS[@]}" $RPID; do
      perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock -p "$pid" -- sleep 5 \
        2>"$OUT/$tag-perf-$pid.csv" &
    done; wait) &
  fi
  case $mode in
    single | spread | affinity)
      local PM=()
      [ $n -gt 1 ] && PM=(--placement $mode)
      "${PL[@]}" deno run --allow-all bench/main.ts relay --url "$URLLIST" "${PM[@]}" --server-pid "$PIDLIST" \
        "${REDIS[@]}" --rooms ${ROOMS:-100} --rate ${RATE:-10} --duration 10 --json --quiet >"$OUT/$tag.json" 2>"$OUT/$tag.err"
      ;;
    idle)
      "${PL[@]}" deno run --allow-all bench/main.ts connections --url "$URLLIST" --placement spread \
        --server-pid "$PIDLIST" --clients 400 --room-size 4 --duration 10 --json --quiet >"$OUT/$tag.json" 2>"$OUT/$tag.err"
      ;;
    saturate-single | saturate-spread | saturate-affinity)
      local SPL=()
      [ $n -gt 1 ] && SPL=(--placement "${mode#saturate-}")
      "${PL[@]}" deno run --allow-all bench/main.ts saturate --url "$URLLIST" "${SPL[@]}" \
        --server-pid "$PIDLIST" "${REDIS[@]}" --rooms 100 --rate "${SAT_RATE:-2}" --factor 1.25 --step-duration 5 \
        --max-steps 12 --p99-limit 50 --json --quiet >"$OUT/$tag.json"
      ;;
  esac
  echo "$tag pressure-before: $before after: $(head -1 /proc/pressure/cpu)"
  kill -TERM "${PIDS[@]}"
  wait "${PIDS[@]}" 2>/dev/null
  [ -n "$RPID" ] && kill "$RPID" && wait "$RPID" 2>/dev/null
}

for mode in "$@"; do run "$mode"; done
