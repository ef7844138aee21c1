#!/bin/bash
# Usage: OUT=bench/results/cluster bash bench/cluster_run.sh spread affinity spread affinity
# (needs redis-server; ports picked at random; every process stopped at the end).
# 3 instances + redis on loopback, relay 100 rooms x 4 at 10 msg/s per player (12k delivered/s).
set -u
cd "$(dirname "$0")/.."
P=$((20000 + RANDOM % 20000))
redis-server --port $P --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
RPID=$!
sleep 0.5
PIDS=()
URLS=()
for i in 0 1 2; do
  PORT=$((P + 1 + i))
  SIGNAL_FISH_CLUSTER__REDIS_URL=redis://127.0.0.1:$P SIGNAL_FISH_CLUSTER__INSTANCE_ID=b$i \
  SIGNAL_FISH_CLUSTER__DIRECTORY_TTL_SECS=3 SIGNAL_FISH_CLUSTER__HEARTBEAT_MS=1000 \
  SIGNAL_FISH_SECURITY__MAX_CONNECTIONS_PER_IP=1000000 SIGNAL_FISH_SECURITY__MAX_CONNECTIONS=19900 \
  SIGNAL_FISH_SECURITY__HTTP__MAX_PENDING_CONNECTIONS=100000 SIGNAL_FISH_SECURITY__HTTP__MAX_PENDING_CONNECTIONS_PER_IP=100000 \
  SIGNAL_FISH_RATE_LIMIT__MAX_ROOM_CREATIONS=1000000000 SIGNAL_FISH_RATE_LIMIT__MAX_JOIN_ATTEMPTS=1000000000 \
  SIGNAL_FISH_LOGGING__ENABLE_FILE_LOGGING=false SIGNAL_FISH_LOGGING__LEVEL=warn NO_COLOR=1 \
  deno run --allow-net --allow-read --allow-env --v8-flags=--initial-old-space-size=64 main.ts --port $PORT >${OUT:-/tmp}/server$i.log 2>&1 &
  PIDS+=($!)
  URLS+=("ws://127.0.0.1:$PORT/v2/ws")
done
sleep 5   # past the grace window (T = 3 s)
IFS=,; URLLIST="${URLS[*]}"; PIDLIST="${PIDS[*]},$RPID"; unset IFS
for placement in "$@"; do
  deno task bench relay --url "$URLLIST" --placement $placement --server-pid "$PIDLIST" \
    --rooms 100 --rate 10 --duration 10 --json 2>/dev/null > ${OUT:-/tmp}/$placement-$(date +%s).json
  echo "$placement done"
done
kill ${PIDS[@]} $RPID
wait 2>/dev/null
