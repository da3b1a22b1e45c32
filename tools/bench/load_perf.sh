#!/usr/bin/env bash
# Push, memory and delivery figures of fhirgw for docs/PERFORMANCE.md. Everything runs on loopback
# and every process started here is stopped on exit. Takes about 9 minutes with the defaults.
#
#   tools/bench/load_perf.sh [push|delivery|all]       (from anywhere; default all)
#
# Environment:
#   BENCH=build/tools/bench/fhirgw-bench   the load generator
#   FHIRGW=build/gateway/fhirgw   the binary (build it RelWithDebInfo, as scripts/build.sh does)
#   DURATION=10                   seconds measured per load run (after a 2 s warmup)
#   SWEEP="16 64 256"             closed-loop concurrencies tried for the maximum
#   REPEATS=3                     interleaved baseline/gateway pairs for the ratio
#   RECORDS=5000                  records pushed for the delivery figure
#   THREADS=1                     client driver threads (connections)
#
# push:     the do-nothing baseline (`fhirgw-bench server`) and the gateway (SQLite log,
#           synchronous=FULL, group commit) under the same client: a closed-loop sweep for each,
#           then REPEATS interleaved pairs at the best concurrencies (the ratio is the median of
#           the pairs, so both sides of a pair see the same machine), open loop at half the
#           gateway's maximum, RSS idle, under sustained load and after an overload. The gateway's
#           EHR is a loopback socket that accepts and never answers, so delivery stays idle and the
#           figures are those of the push path (one more run delivers to the default file outbox at
#           the same time). The disk's write+fsync latency is probed first: it is the floor of a
#           durable push.
# delivery: the gateway delivering to the Node FHIR test server (tests/node/fhir_server.mjs):
#           RECORDS records pushed, time until fhirgw_queue_depth is 0, and the CPU time of the
#           gateway process and of the FHIR server process per delivered record.
set -euo pipefail
cd "$(dirname "$0")/../.."
FHIRGW=${FHIRGW:-build/gateway/fhirgw}
BENCH=${BENCH:-build/tools/bench/fhirgw-bench}
DURATION=${DURATION:-10}
SWEEP=${SWEEP:-16 64 256}
REPEATS=${REPEATS:-3}
RECORDS=${RECORDS:-5000}
THREADS=${THREADS:-1}
what=${1:-all}
work=$(mktemp -d "${TMPDIR:-/tmp}/fhirgw-perf-XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ticks_per_s=$(getconf CLK_TCK)

log() { echo "$*" >&2; }

# Waits for a line starting with `prefix` in `file` and prints the rest of it.
line_after() {
  local file=$1 prefix=$2 value
  for _ in $(seq 1 300); do
    value=$(sed -n "s/^$prefix//p" "$file" | head -n 1)
    if [[ -n $value ]]; then
      echo "$value"
      return 0
    fi
    sleep 0.1
  done
  log "no '$prefix' line in $file"
  cat "$file" >&2
  exit 1
}

# Starts a background process whose stdout goes to $work/$name.out; sets $started_pid.
start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  started_pid=$!
  pids+=("$started_pid")
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
status_kb() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }

# Runs `fhirgw-bench load` (arguments as given) and prints its JSON line; the full report goes to stderr.
bench() {
  local out
  out=$("$BENCH" load --examples_dir=examples --threads="$THREADS" "$@")
  echo "$out" | sed 's/^/    /' >&2
  echo "$out" | tail -n 1
}
json() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"; }
# The median of the numbers given.
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Closed-loop runs over $SWEEP against `target`; prints "best_rate concurrency".
sweep() {
  local target=$1 best=0 best_c=0 result rate
  for c in $SWEEP; do
    log "  closed loop, concurrency $c"
    result=$(bench --target="$target" --mode=closed --concurrency="$c" --warmup_s=2 \
      --duration_s="$DURATION")
    rate=$(json achieved_rate "$result")
    if awk -v a="$rate" -v b="$best" 'BEGIN { exit !(a > b) }'; then
      best=$rate
      best_c=$c
    fi
  done
  echo "$best $best_c"
}

# A closed-loop run against `target` served by process `pid` at concurrency `c`; prints "rate
# cpu_ms_per_push" (the server process's CPU time over the run per OK answer).
closed_run() {
  local target=$1 pid=$2 c=$3 before after result
  before=$(cpu_ticks "$pid")
  result=$(bench --target="$target" --mode=closed --concurrency="$c" --warmup_s=2 \
    --duration_s="$DURATION")
  after=$(cpu_ticks "$pid")
  awk -v r="$(json achieved_rate "$result")" -v ok="$(json ok "$result")" -v t=$((after - before)) \
    -v hz="$ticks_per_s" 'BEGIN { printf "%s %.3f\n", r, 1000 * t / hz / ok }'
}

# "rate achieved p50 p99 p99.9 errors" of an open-loop run against `target` at `rate`.
open_run() {
  local result
  result=$(bench --target="$1" --mode=open --rate="$2" --warmup_s=2 --duration_s="$DURATION")
  echo "$2 $(json achieved_rate "$result") $(json p50_ms "$result") $(json p99_ms "$result")" \
    "$(json p999_ms "$result") $(json errors "$result")"
}

# Write + fsync latency of this disk (the floor under every durable push), with Node.
fsync_probe() {
  node -e '
    const fs = require("fs");
    const out = [];
    for (const size of [4096, 131072]) {
      const path = process.argv[1] + "/fsync-probe";
      const fd = fs.openSync(path, "a");
      const buf = Buffer.alloc(size, 120);
      const t = [];
      for (let i = 0; i < 200; i++) {
        const start = process.hrtime.bigint();
        fs.writeSync(fd, buf);
        fs.fsyncSync(fd);
        t.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      fs.closeSync(fd);
      fs.unlinkSync(path);
      t.sort((a, b) => a - b);
      out.push(`write ${size / 1024} KB + fsync p50 ${t[100].toFixed(2)} ms p99 ${t[197].toFixed(2)} ms`);
    }
    console.log(out.join("; "));' "$work"
}

machine() {
  log "== machine"
  log "  nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  log "  memory $(free -h | awk '/^Mem:/ { print $2 }'), disk $(df -h --output=source,size,fstype . | tail -n 1)"
  log "  $("$FHIRGW" version)"
}

push() {
  local disk_before
  disk_before=$(fsync_probe)
  log "== disk: $disk_before"
  start baseline "$BENCH" server --listen=127.0.0.1:0
  local baseline_pid=$started_pid baseline_addr
  baseline_addr=$(line_after "$work/baseline.out" "listening on ")
  start blackhole node -e 'const s = require("net").createServer(() => {});
    s.listen(0, "127.0.0.1", () => console.log("listening on 127.0.0.1:" + s.address().port));'
  local hole
  hole=$(line_after "$work/blackhole.out" "listening on ")
  start gateway "$FHIRGW" serve --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 \
    --data_dir="$work/push" --ehr_url="http://$hole/fhir"
  local gateway_pid=$started_pid gateway_addr
  gateway_addr=$(line_after "$work/gateway.out" "listening on ")
  sleep 2
  local rss_idle
  rss_idle=$(status_kb "$gateway_pid" VmRSS)
  log "== gateway RSS idle $((rss_idle / 1024)) MB"

  log "== closed-loop sweep: baseline (fhirgw-bench server)"
  local base_best base_c gw_best gw_c
  read -r base_best base_c < <(sweep "$baseline_addr")
  log "== closed-loop sweep: gateway (SQLite log; delivery idle: its EHR never answers)"
  read -r gw_best gw_c < <(sweep "$gateway_addr")

  log "== $REPEATS interleaved pairs at the best concurrencies ($base_c, $gw_c)"
  local ratios=() base_rates=() gw_rates=() base_cpus=() gw_cpus=() rate cpu b
  for _ in $(seq 1 "$REPEATS"); do
    read -r rate cpu < <(closed_run "$baseline_addr" "$baseline_pid" "$base_c")
    base_rates+=("$rate")
    base_cpus+=("$cpu")
    b=$rate
    read -r rate cpu < <(closed_run "$gateway_addr" "$gateway_pid" "$gw_c")
    gw_rates+=("$rate")
    gw_cpus+=("$cpu")
    ratios+=("$(awk -v g="$rate" -v b="$b" 'BEGIN { printf "%.1f", 100 * g / b }')")
  done
  local gw_rate half open_half base_half open_light
  gw_rate=$(median "${gw_rates[@]}")
  half=$(awk -v r="$gw_rate" 'BEGIN { printf "%d", r / 2 }')
  log "== open loop at half the gateway's median maximum: $half/s, gateway then baseline"
  open_half=$(open_run "$gateway_addr" "$half")
  base_half=$(open_run "$baseline_addr" "$half")
  log "== open loop at 100/s (light load)"
  open_light=$(open_run "$gateway_addr" 100)

  log "== sustained: closed loop, concurrency 256, $((DURATION * 3)) s"
  local result sustained rss_load rss_peak db_mb quarter open_quarter rss_overload
  result=$(bench --target="$gateway_addr" --mode=closed --concurrency=256 --warmup_s=0 \
    --duration_s=$((DURATION * 3)))
  sustained=$(json achieved_rate "$result")
  rss_load=$(status_kb "$gateway_pid" VmRSS)
  rss_peak=$(status_kb "$gateway_pid" VmHWM)
  db_mb=$(du -sm "$work/push" | cut -f1)
  quarter=$(awk -v r="$base_best" 'BEGIN { printf "%d", r / 4 }')
  log "== overload: open loop at a quarter of the baseline's maximum, $quarter/s"
  open_quarter=$(open_run "$gateway_addr" "$quarter")
  rss_overload=$(status_kb "$gateway_pid" VmHWM)
  kill -KILL "$gateway_pid"

  log "== gateway delivering to the default file outbox at the same time"
  start outbox "$FHIRGW" serve --listen=127.0.0.1:0 --http_listen=off --data_dir="$work/outbox"
  local outbox_pid=$started_pid outbox_addr outbox_rate
  outbox_addr=$(line_after "$work/outbox.out" "listening on ")
  result=$(bench --target="$outbox_addr" --mode=closed --concurrency="$gw_c" --warmup_s=2 \
    --duration_s="$DURATION")
  outbox_rate=$(json achieved_rate "$result")
  kill -KILL "$outbox_pid" "$baseline_pid"

  cat <<SUMMARY
== push summary (client threads: $THREADS; load average now $(cut -d' ' -f1-3 /proc/loadavg))
disk before                        $disk_before
disk after                         $(fsync_probe)
sweep maximum: baseline            $base_best/s (concurrency $base_c)
sweep maximum: gateway             $gw_best/s (concurrency $gw_c)
pairs: baseline /s                 ${base_rates[*]} (median $(median "${base_rates[@]}"))
pairs: gateway /s                  ${gw_rates[*]} (median $gw_rate)
pairs: ratio gateway/baseline %    ${ratios[*]} (median $(median "${ratios[@]}"))
CPU ms per push: baseline server   ${base_cpus[*]}
CPU ms per push: gateway           ${gw_cpus[*]}
gateway sustained, c=256, $((DURATION * 3)) s   $sustained/s
open loop (rate achieved p50 p99 p99.9 ms, errors):
  gateway at half its maximum      $open_half
  baseline at the same rate        $base_half
  gateway at 100/s                 $open_light
  gateway at 1/4 of the baseline   $open_quarter
gateway + file outbox delivery     $outbox_rate/s (concurrency $gw_c)
RSS idle                           $((rss_idle / 1024)) MB
RSS after sustained load           $((rss_load / 1024)) MB, peak (VmHWM) $((rss_peak / 1024)) MB
RSS peak after the overload run    $((rss_overload / 1024)) MB
log size after the sustained run   $db_mb MB
SUMMARY
}

delivery() {
  log "== delivery to the Node FHIR test server, $RECORDS records"
  start ehr node tests/node/fhir_server.mjs --port=0
  local ehr_pid=$started_pid ehr_addr
  ehr_addr=$(line_after "$work/ehr.out" "listening on ")
  start delivery "$FHIRGW" serve --listen=127.0.0.1:0 --http_listen=127.0.0.1:0 \
    --data_dir="$work/delivery" --ehr_url="http://$ehr_addr/fhir"
  local gateway_pid=$started_pid gateway_addr http_addr
  gateway_addr=$(line_after "$work/delivery.out" "listening on ")
  http_addr=$(line_after "$work/delivery.out" "http listening on ")
  sleep 1
  local gw0 ehr0 t0 t_pushed t1 gw_pushed ehr_pushed gw1 ehr1 depth result
  gw0=$(cpu_ticks "$gateway_pid")
  ehr0=$(cpu_ticks "$ehr_pid")
  t0=$(date +%s.%N)
  result=$(bench --target="$gateway_addr" --mode=closed --concurrency=64 --count="$RECORDS")
  t_pushed=$(date +%s.%N)
  gw_pushed=$(cpu_ticks "$gateway_pid")
  ehr_pushed=$(cpu_ticks "$ehr_pid")
  while true; do
    depth=$(curl -fsS "http://$http_addr/metrics" | awk '$1 == "fhirgw_queue_depth" { print $2 }')
    [[ $depth == 0 ]] && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  gw1=$(cpu_ticks "$gateway_pid")
  ehr1=$(cpu_ticks "$ehr_pid")
  local delivered committed hwm
  delivered=$(curl -fsS "http://$http_addr/metrics" |
    awk '/^fhirgw_delivery_attempts_total\{.*outcome="success"/ { n += $2 } END { print n + 0 }')
  committed=$(curl -fsS "http://$ehr_addr/\$admin/stats" |
    sed -n 's/.*"transactionsCommitted":\([0-9]*\).*/\1/p')
  hwm=$(status_kb "$gateway_pid" VmHWM)
  kill -KILL "$gateway_pid" "$ehr_pid"
  awk -v n="$RECORDS" -v d="$delivered" -v c="$committed" -v t0="$t0" -v tp="$t_pushed" \
    -v t1="$t1" -v g0="$gw0" -v gp="$gw_pushed" -v g1="$gw1" -v e0="$ehr0" -v ep="$ehr_pushed" \
    -v e1="$ehr1" -v hz="$ticks_per_s" -v hwm="$hwm" 'BEGIN {
    printf "== delivery summary\n"
    printf "records pushed                    %d (push phase %.2f s, %.0f/s)\n", n, tp - t0, n / (tp - t0)
    printf "delivered (attempts ok / EHR tx)  %d / %d\n", d, c
    printf "all delivered after               %.2f s: %.0f records/s end to end\n", t1 - t0, n / (t1 - t0)
    printf "gateway CPU per record            %.3f ms (push phase %.3f, rest %.3f)\n", \
      1000 * (g1 - g0) / hz / n, 1000 * (gp - g0) / hz / n, 1000 * (g1 - gp) / hz / n
    printf "FHIR server CPU per record        %.3f ms\n", 1000 * (e1 - e0) / hz / n
    printf "ratio gateway/FHIR server CPU     %.2f\n", (g1 - g0) / (e1 - e0)
    printf "gateway RSS peak (VmHWM)          %d MB\n", hwm / 1024
  }'
}

machine
case $what in
  push) push ;;
  delivery) delivery ;;
  all)
    push
    delivery
    ;;
  *)
    log "usage: load_perf.sh [push|delivery|all]"
    exit 1
    ;;
esac
