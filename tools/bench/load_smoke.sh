#!/bin/sh
# Smoke run of the push load generator (ctest bench_load_smoke): starts `fhirgw-bench server`, runs
# `fhirgw-bench load` open loop for about a second at a low rate and closed loop for a fraction of one,
# then pushes a few records of the realistic mix through a real gateway. Checks only that each run
# finished without errors and printed its figures; no timing is asserted (timing belongs in
# tools/bench/load_perf.sh and docs/PERFORMANCE.md).
#
#   sh tools/bench/load_smoke.sh build/gateway/fhirgw build/tools/bench/fhirgw-bench   (from the source root)
set -eu
fhirgw=${1:?usage: load_smoke.sh PATH/TO/fhirgw PATH/TO/fhirgw-bench}
bench_tool=${2:?usage: load_smoke.sh PATH/TO/fhirgw PATH/TO/fhirgw-bench}
work=$(mktemp -d "${TMPDIR:-/tmp}/fhirgw-load-smoke-XXXXXX")
server_pid=
gateway_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# Prints what follows `prefix` on the first line of `file` that starts with it, waiting up to 20 s.
line_after() {
  i=0
  while [ $i -lt 200 ]; do
    value=$(sed -n "s/^$2//p" "$1" | head -n 1)
    if [ -n "$value" ]; then
      echo "$value"
      return 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  echo "load_smoke: no '$2' line in $1:" >&2
  cat "$1" >&2
  return 1
}

# Runs `fhirgw-bench load` with the arguments given and checks its report.
bench() {
  name=$1
  shift
  if ! "$bench_tool" load --examples_dir=examples "$@" >"$work/$name.out" 2>&1; then
    echo "load_smoke: $name failed:" >&2
    cat "$work/$name.out" >&2
    exit 1
  fi
  cat "$work/$name.out"
  for expected in '^achieved [0-9.]*/s' '^latency ms .* p50 .* p99 .* p99.9 ' '"errors":0,' \
    '"achieved_rate":[1-9]'; do
    if ! grep -q "$expected" "$work/$name.out"; then
      echo "load_smoke: $name: no line matching '$expected'" >&2
      exit 1
    fi
  done
}

"$bench_tool" server --listen=127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
baseline=$(line_after "$work/server.out" "listening on ")

bench open --target="$baseline" --mode=open --rate=200 --warmup_s=0.2 --duration_s=1
bench closed --target="$baseline" --mode=closed --concurrency=8 --threads=2 --warmup_s=0.1 \
  --duration_s=0.5

"$fhirgw" serve --listen=127.0.0.1:0 --http_listen=off --data_dir="$work/gateway" \
  >"$work/gateway.out" 2>"$work/gateway.err" &
gateway_pid=$!
gateway=$(line_after "$work/gateway.out" "listening on ")
bench gateway --target="$gateway" --mode=closed --concurrency=4 --count=40

echo "load_smoke: ok (baseline open and closed loop, gateway closed loop)"
