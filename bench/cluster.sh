#!/usr/bin/env bash
# Measures what the NATS bus costs: the same `confab bench` workloads against one
# confab node and against a two-node cluster (clients split between the nodes), both
# keeping history in the same kind of PostgreSQL. Starts its own nats-server (JetStream
# on) and PostgreSQL in temporary directories, on loopback only; every process and run
# is bounded by `timeout`.
#
# Servers (nodes, nats-server, PostgreSQL) share SERVER_CPU and the generator gets
# BENCH_CPU, as in bench/compare.sh: on two cores the point is the bus's cost, not more
# throughput.
#
# Usage: bench/cluster.sh   Environment: CONFAB (default target/release/confab),
#        SERVER_CPU (0), BENCH_CPU (1), MESSAGES (300), LOG (/tmp/confab-cluster.log).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFAB=${CONFAB:-$ROOT/target/release/confab}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
MESSAGES=${MESSAGES:-300}
LOG=${LOG:-/tmp/confab-cluster.log}
WORK=$(mktemp -d)
chmod 755 "$WORK" # PostgreSQL runs as another user and must reach its directory
PIDS=()
: >"$LOG"

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [ -f "$WORK/pg/data/postmaster.pid" ]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

[ -x "$CONFAB" ] || { echo "no confab binary at $CONFAB; run: cargo build --release -p confab" >&2; exit 1; }
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$NATS" ] || { echo "nats-server is not installed (apt-get install nats-server)" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on port $1" >&2
    return 1
}

# PostgreSQL, as the unprivileged postgres user when run as root.
mkdir -p "$WORK/pg"
chown postgres: "$WORK/pg"
PG_PORT=$(free_port)
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg/data" -U confab -A trust --no-sync >>"$LOG" 2>&1
runuser -u postgres -- taskset -c "$SERVER_CPU" "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >>"$LOG" 2>&1

NATS_PORT=$(free_port)
timeout 1800 taskset -c "$SERVER_CPU" "$NATS" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$WORK/js" >>"$LOG" 2>&1 &
PIDS+=($!)
wait_port "$NATS_PORT"

DB=0
# start_node NAME [cluster]: prints the node's line-protocol port.
start_node() {
    local name=$1 cluster=${2:-} port
    port=$(free_port)
    local extra=()
    if [ -n "$cluster" ]; then
        extra=(--nats "nats://127.0.0.1:$NATS_PORT" --node "$name")
    fi
    CONFAB_DATABASE_URL="postgres://confab@127.0.0.1:$PG_PORT/$DATABASE" \
        timeout 1800 taskset -c "$SERVER_CPU" "$CONFAB" serve --listen "127.0.0.1:$port" \
        --irc-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
        --max-connections-per-ip 0 --connection-rate-per-ip 0 --flood-rate 0 \
        "${extra[@]}" >>"$LOG" 2>&1 &
    PIDS+=($!)
    wait_port "$port"
    echo "$port"
}

new_database() {
    DB=$((DB + 1))
    DATABASE=bench$DB
    runuser -u postgres -- psql -q -h 127.0.0.1 -p "$PG_PORT" -U confab -d postgres \
        -c "CREATE DATABASE $DATABASE" >>"$LOG" 2>&1
}

stop_nodes() {
    # Nodes only: nats-server is the first pid and stays.
    for pid in "${PIDS[@]:1}"; do kill "$pid" 2>/dev/null || true; done
    PIDS=("${PIDS[0]}")
    sleep 0.5
}

# bench LABEL ADDRS WORKLOAD ARGS...: prints the RESULT line's fields we report.
bench() {
    local label=$1 addrs=$2 workload=$3
    shift 3
    local out
    out=$(timeout 300 taskset -c "$BENCH_CPU" "$CONFAB" bench "$workload" --addr "$addrs" \
        --duration 120 "$@" 2>>"$LOG" | tee -a "$LOG" | grep '^RESULT' || true)
    local rate p99 lost
    rate=$(sed -n 's/.* deliveries_per_sec=\([0-9.]*\).*/\1/p' <<<"$out")
    p99=$(sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p' <<<"$out")
    lost=$(sed -n 's/.* lost=\([0-9]*\).*/\1/p' <<<"$out")
    printf '%-8s %-34s %14s %10s %6s\n' "$label" "$workload $*" "${rate:-failed}" "${p99:--}" "${lost:--}"
}

printf '%-8s %-34s %14s %10s %6s\n' setup workload deliveries/s p99_us lost
for setup in single cluster; do
    new_database
    if [ "$setup" = single ]; then
        ADDRS=127.0.0.1:$(start_node single)
    else
        A=$(start_node a cluster)
        B=$(start_node b cluster)
        ADDRS=127.0.0.1:$A,127.0.0.1:$B
        sleep 1 # the nodes exchange snapshots
    fi
    bench "$setup" "$ADDRS" fanout -n 100 -s 10 -m "$MESSAGES"
    bench "$setup" "$ADDRS" fanout -n 100 -s 10 -m "$MESSAGES" --rate 100
    bench "$setup" "$ADDRS" dm -p 50 -m "$MESSAGES"
    stop_nodes
done
echo "full reports: $LOG"
