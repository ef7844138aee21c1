#!/bin/bash
# Usage: [ROUNDS=2] [COUNT=2000] [GAP_US=4000] bash bench/wakeup/floor.sh
# CPU per wake-up of the least server there is (bench/wakeup/echo.c: epoll, read, write) beside
# Deno's (bench/wakeup/echo.ts over Deno.listen and over node:net): the pinger sends one 28-byte
# message every GAP_US µs and waits for its echo, so each message wakes the server from sleep. The
# server's CPU is summed over its threads from /proc/<pid>/task/*/schedstat (ns on CPU) before and
# after. "cross" = server on CPU 0, pinger on CPU 1; "same" = both on CPU 0. Needs gcc.
# BENCHMARKS.md "Session 32".
set -eu
cd "$(dirname "$0")"
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
gcc -O2 -o "$BIN/echo" echo.c
gcc -O2 -o "$BIN/pinger" pinger.c
COUNT=${COUNT:-2000}
GAP_US=${GAP_US:-4000}

cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ns += $1} END {print ns}'; }

one() { # label, pinger's CPU, server command...
  local label=$1 pin=$2 port pid before after
  shift 2
  port=$((20000 + RANDOM % 12000))
  taskset -c 0 "$@" "$port" &
  pid=$!
  sleep 1.5
  before=$(cpu_ns $pid)
  taskset -c "$pin" "$BIN/pinger" "$port" "$COUNT" "$GAP_US"
  after=$(cpu_ns $pid)
  kill $pid
  wait $pid 2>/dev/null || true
  echo "$label: $(((after - before) / COUNT)) ns of server CPU per message"
}

for ((round = 1; round <= ${ROUNDS:-2}; round++)); do
  for where in cross same; do
    pin=1
    [ $where = same ] && pin=0
    one "C, $where" $pin "$BIN/echo"
    one "Deno.listen, $where" $pin deno run --allow-net echo.ts
    one "node:net on Deno, $where" $pin deno run --allow-net echo.ts --node
  done
done
