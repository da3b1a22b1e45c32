#!/usr/bin/env bash
# Push throughput of 1, 2 and 3 gateway replicas sharing one PostgreSQL, for docs/PERFORMANCE.md
# ("Replicas on PostgreSQL"). Everything runs on loopback; every process started here is stopped on
# exit. Takes about 2 minutes with the defaults.
#
#   tools/bench/replicas_perf.sh            (from anywhere)
#
# Environment:
#   BENCH=build/tools/bench/fhirgw-bench   the load generator
#   FHIRGW=build/gateway/fhirgw   the binary (RelWithDebInfo, as scripts/build.sh builds it)
#   DURATION=10                   seconds measured per run (after a 2 s warmup)
#   CONCURRENCY=64                closed-loop pushes outstanding per replica
#   REPLICAS="1 2 3"              the replica counts measured
#
# A PostgreSQL server of its own (Debian's postgresql package: initdb into a temporary directory,
# fsync on, synchronous_commit on, as the `postgres` user when run as root) holds the log. Each
# replica is `fhirgw serve` with `store { postgres { dsn } }` and its own ports; one `fhirgw-bench load`
# client per replica pushes to it in a closed loop, all at once, and the figure is the sum of their
# achieved rates (acknowledged, durable pushes). The replicas' EHR is a loopback socket that
# accepts and never answers, so delivery stays idle and the figures are those of the push path, as
# in tools/bench/load_perf.sh. For comparison, one replica on the SQLite log under the same client.
set -euo pipefail
cd "$(dirname "$0")/../.."
FHIRGW=${FHIRGW:-build/gateway/fhirgw}
BENCH=${BENCH:-build/tools/bench/fhirgw-bench}
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
REPLICAS=${REPLICAS:-1 2 3}
work=$(mktemp -d /tmp/fhirgw-replicas-perf-XXXXXX)
chmod 755 "$work"
pids=()
postgres_pid=""
cleanup() {
  for pid in "${pids[@]}"; do
    [[ $pid == "$postgres_pid" ]] || kill -TERM "$pid" 2>/dev/null || true
  done
  sleep 1
  for pid in "${pids[@]}"; do
    [[ $pid == "$postgres_pid" ]] || kill -KILL "$pid" 2>/dev/null || true
  done
  # PostgreSQL last, with a fast shutdown, waiting until its backends are gone too.
  if [[ -n $postgres_pid ]]; then
    kill -INT "$postgres_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$postgres_pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  wait 2>/dev/null || true
  rm -rf "$work" || { sleep 1; rm -rf "$work"; }
}
trap cleanup EXIT

log() { echo "$*" >&2; }

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
  cat "$file" "${file%.out}.err" >&2 || true
  exit 1
}

start() {
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  started_pid=$!
  pids+=("$started_pid")
}

json() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" <<<"$2"; }

# --- PostgreSQL -----------------------------------------------------------------------------------
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -x $bindir/initdb ]] || { log "PostgreSQL is not installed (scripts/deps.sh --test)"; exit 1; }
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  chown postgres:postgres "$work"
  as_pg=(setpriv --reuid=postgres --regid=postgres --clear-groups)
fi
"${as_pg[@]}" "$bindir/initdb" --pgdata="$work/pg" --username=fhirgw --auth=trust \
  --encoding=UTF8 --locale=C >/dev/null
port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => {
  console.log(s.address().port); s.close(); });')
start postgres "${as_pg[@]}" "$bindir/postgres" -D "$work/pg" -k "$work" -p "$port" \
  -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB
postgres_pid=$started_pid
for _ in $(seq 1 100); do
  "$bindir/pg_isready" -q -h "$work" -p "$port" && break
  sleep 0.1
done
psql() { "$bindir/psql" -q -h "$work" -p "$port" -U fhirgw "$@"; }

start blackhole node -e 'const s = require("net").createServer(() => {});
  s.listen(0, "127.0.0.1", () => console.log("listening on 127.0.0.1:" + s.address().port));'
hole=$(line_after "$work/blackhole.out" "listening on ")

log "== machine: nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
log "== $("$FHIRGW" version); PostgreSQL $("$bindir/postgres" --version | awk '{ print $3 }')"

# Starts replica `n` on database `db` (or on SQLite with db "sqlite"); appends its gRPC address
# to `addresses` and its pid to `replica_pids`.
replica() {
  local n=$1 db=$2 config="$work/replica-$1-$2.textproto"
  {
    echo "listen: \"127.0.0.1:0\" http_listen: \"127.0.0.1:0\" data_dir: \"$work/data-$n-$db\""
    echo "destinations { name: \"ehr\" base_url: \"http://$hole/fhir\" }"
    if [[ $db != sqlite ]]; then
      echo "store { postgres { dsn: \"host=$work port=$port user=fhirgw dbname=$db\" } }"
    fi
  } >"$config"
  start "replica-$n-$db" "$FHIRGW" serve --config="$config"
  replica_pids+=("$started_pid")
  addresses+=("$(line_after "$work/replica-$n-$db.out" "listening on ")")
}

# Stops the replicas started since the last call.
stop_replicas() {
  for pid in "${replica_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${replica_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  replica_pids=()
  addresses=()
}

# Pushes to every address given at once; prints "total_rate p50_ms p99_ms" (latencies: the worst
# replica's).
push_all() {
  local i=0 bench_pids=() total=0 p50=0 p99=0 result
  for address in "$@"; do
    "$BENCH" load --examples_dir=examples --target="$address" --mode=closed \
      --concurrency="$CONCURRENCY" --warmup_s=2 --duration_s="$DURATION" \
      --run_id="perf-$RANDOM-$i" >"$work/bench-$i.out" 2>&1 &
    bench_pids+=($!)
    i=$((i + 1))
  done
  for pid in "${bench_pids[@]}"; do wait "$pid" || true; done
  for j in $(seq 0 $((i - 1))); do
    result=$(tail -n 1 "$work/bench-$j.out")
    sed 's/^/    /' "$work/bench-$j.out" >&2
    total=$(awk -v a="$total" -v b="$(json achieved_rate "$result")" 'BEGIN { print a + b }')
    p50=$(awk -v a="$p50" -v b="$(json p50_ms "$result")" 'BEGIN { print (b > a) ? b : a }')
    p99=$(awk -v a="$p99" -v b="$(json p99_ms "$result")" 'BEGIN { print (b > a) ? b : a }')
  done
  echo "$total $p50 $p99"
}

results=()
replica_pids=()
addresses=()
log "== SQLite, 1 replica (for comparison)"
replica 1 sqlite
sleep 1
read -r rate p50 p99 < <(push_all "${addresses[@]}")
results+=("| SQLite | 1 | $rate | $p50 | $p99 |")
stop_replicas

for n in $REPLICAS; do
  db="replicas_$n"
  psql -d postgres -c "CREATE DATABASE $db"
  log "== PostgreSQL, $n replica(s)"
  for r in $(seq 1 "$n"); do replica "$r" "$db"; done
  sleep 1
  read -r rate p50 p99 < <(push_all "${addresses[@]}")
  results+=("| PostgreSQL | $n | $rate | $p50 | $p99 |")
  rows=$(psql -d "$db" -At -c "SELECT count(*) FROM transactions")
  log "   $rows transactions in the database"
  stop_replicas
done

echo "| log | replicas | pushes/s (sum) | p50 ms (worst replica) | p99 ms (worst replica) |"
echo "|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
