#!/usr/bin/env bash
# Runs the same `confab bench` workloads against confab (line protocol and IRC), the raw
# relay (the ceiling), ngIRCd and InspIRCd, one server at a time, and prints a table.
#
# The server is pinned to one CPU and the generator to another, so that each has a core
# of its own. Every server and every run is bounded by `timeout`, and everything
# listens and connects on 127.0.0.1 only. Servers that are not installed are skipped
# (apt-get install ngircd inspircd).
#
# Usage: bench/compare.sh [SERVER...]   where SERVER is confab-line, confab-irc,
#        confab-history (line protocol with history kept), relay, ngircd or inspircd
#        (default: all). Environment: CONFAB (the binary, default
#        target/release/confab), SERVER_CPU (0), BENCH_CPU (1), MESSAGES (1000),
#        IDLE (5000), LINE_IDLE (IDLE), IDLE_ROOM (empty), LOG (where the full reports
#        go, default /tmp/confab-compare.log).
#
# Message workloads get the server's pid, so each reports the server's CPU time per
# delivery and how busy the server was while the messages went through: a server
# under 100% busy was not the limit (the generator was, on its own core).
#
# `idle` holds IDLE registered connections that join no room (IDLE_ROOM names one to
# join), as the issue's reference figures do. Line-protocol users always join the
# server's default room, and filling one room is quadratic on every server (each join
# is announced to all), so the line protocol's idle count is LINE_IDLE.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFAB=${CONFAB:-$ROOT/target/release/confab}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
MESSAGES=${MESSAGES:-1000}
IDLE=${IDLE:-5000}
LINE_IDLE=${LINE_IDLE:-$IDLE}
IDLE_ROOM=${IDLE_ROOM:-}
LOG=${LOG:-/tmp/confab-compare.log}
RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT

if [ ! -x "$CONFAB" ]; then
    echo "no confab binary at $CONFAB; run: cargo build --release -p confab" >&2
    exit 1
fi
: >"$LOG"

SERVER_WRAPPER=  # The `timeout` process that runs the current server.

# start_server PORT COMMAND...: runs COMMAND pinned to SERVER_CPU for at most 30 minutes
# and waits until PORT accepts connections.
start_server() {
    local port=$1
    shift
    timeout 1800 taskset -c "$SERVER_CPU" "$@" >>"$LOG" 2>&1 &
    SERVER_WRAPPER=$!
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "the server did not start listening on port $port" >&2
    stop_server
    return 1
}

# The server's own pid: the child of the timeout wrapper (taskset execs the server).
server_pid() {
    ps -o pid= --ppid "$SERVER_WRAPPER" | tr -d ' ' | head -n1
}

stop_server() {
    if [ -n "$SERVER_WRAPPER" ]; then
        kill "$SERVER_WRAPPER" 2>/dev/null || true
        wait "$SERVER_WRAPPER" 2>/dev/null || true
        SERVER_WRAPPER=
    fi
}
trap 'stop_server; rm -f "$RESULTS"' EXIT

# bench NAME ARGS...: one run pinned to BENCH_CPU, at most three minutes; its RESULT
# line is kept with NAME in front. A failed run is recorded and the next one goes on.
bench() {
    local name=$1
    shift
    echo "== $name: confab bench $*" | tee -a "$LOG"
    local out
    out=$(timeout 180 taskset -c "$BENCH_CPU" "$CONFAB" bench "$@" 2>&1) || true
    echo "$out" >>"$LOG"
    local result
    result=$(grep '^RESULT ' <<<"$out" || true)
    if [ -z "$result" ]; then
        result="RESULT workload=$1 failed=\"$(tail -n1 <<<"$out")\""
    fi
    echo "$result"
    echo "$name $result" >>"$RESULTS"
}

# workloads NAME PROTOCOL ADDR CONCURRENCY START...: the standard set against one
# server, started by the command START... afresh for every workload, as the issue
# asks: the quits that end a run (a thousand members leaving one room is half a
# million quit lines) would otherwise still be going out while the next run starts,
# and a memory reading would include what earlier runs left behind.
workloads() {
    local name=$1 common="--protocol $2 --addr $3 --concurrency $4 --duration 150"
    local port=${3##*:} idle=$IDLE
    [ "$2" = line ] && idle=$LINE_IDLE
    shift 4
    START=("$@")
    fresh idle $common --clients "$idle" --room "$IDLE_ROOM" --pid @PID@
    fresh fanout $common --pid @PID@ --clients 100 --senders 10 --messages "$MESSAGES"
    fresh fanout $common --pid @PID@ --clients 1000 --senders 2 --messages "$MESSAGES"
    fresh fanout $common --pid @PID@ --clients 100 --senders 10 --messages 2000 --rate 1000
    fresh fanout $common --pid @PID@ --clients 100 --senders 10 --messages 1000 --rate 100
    if [ "${common#--protocol raw}" = "$common" ]; then
        fresh dm $common --pid @PID@ --pairs 100 --messages "$MESSAGES"
    fi
    fresh connect $common --clients 2000
}

# fresh ARGS...: one workload (confab bench ARGS, @PID@ standing for the server's pid)
# on a server of its own, started by START on PORT; NAME labels the result.
fresh() {
    start_server "$port" "${START[@]}" || return 0
    local pid
    pid=$(server_pid)
    bench "$name" "${@//@PID@/$pid}"
    stop_server
}

run_server() {
    # One address opening thousands of connections and flooding is exactly what the
    # per-address and flood limits stop, so they are off; history is off too, except
    # for confab-history, which keeps it in a fresh database as a default server does.
    local confab_serve=(env RUST_LOG=warn "$CONFAB" serve --listen 127.0.0.1:12345
        --irc-listen 127.0.0.1:6667 --http-listen 127.0.0.1:18080
        --max-connections-per-ip 0 --connection-rate-per-ip 0 --flood-rate 0
        --max-connections 25000)
    case $1 in
    confab-line) workloads "$1" line 127.0.0.1:12345 128 "${confab_serve[@]}" --no-history ;;
    confab-irc) workloads "$1" irc 127.0.0.1:6667 128 "${confab_serve[@]}" --no-history ;;
    confab-history)
        local data
        data=$(mktemp -d)
        workloads "$1" line 127.0.0.1:12345 128 "${confab_serve[@]}" --data "$data"
        rm -rf "$data"
        ;;
    relay)
        workloads relay raw 127.0.0.1:12346 128 \
            "$CONFAB" bench relay --listen 127.0.0.1:12346 --duration 1700
        ;;
    ngircd)
        command -v ngircd >/dev/null || { echo "ngircd is not installed; skipped"; return; }
        # ngIRCd listens with a backlog of 10: more connections at once than that
        # overflow it and wait for SYN retransmits, so set-up goes 8 at a time.
        workloads ngircd irc 127.0.0.1:6668 8 \
            ngircd --nodaemon --config "$ROOT/bench/ngircd.conf"
        ;;
    inspircd)
        command -v inspircd >/dev/null || { echo "inspircd is not installed; skipped"; return; }
        # InspIRCd completes registrations on its once-a-second housekeeping tick, so
        # each takes up to a second: set-up needs many at once to get anywhere.
        workloads inspircd irc 127.0.0.1:6669 1000 \
            inspircd --nofork --runasroot --config "$ROOT/bench/inspircd.conf"
        ;;
    *)
        echo "unknown server $1" >&2
        return 1
        ;;
    esac
}

servers=("$@")
if [ ${#servers[@]} -eq 0 ]; then
    servers=(confab-line confab-irc confab-history relay ngircd inspircd)
fi
for server in "${servers[@]}"; do
    run_server "$server"
done

# The table: one row per run, from the RESULT lines.
echo
echo "| server | workload | expected | lost | rate/s | p50 us | p99 us | max us | KiB/conn | server ns/delivery | server busy % |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
while read -r name _ fields; do
    if [[ $fields == *failed=* ]]; then
        echo "| $name | ${fields%% *} | | ${fields#*failed=} | | | | | | | |"
        continue
    fi
    declare -A f=()
    for kv in $fields; do
        f[${kv%%=*}]=${kv#*=}
    done
    shape=${f[workload]}
    case ${f[workload]} in
    fanout) shape="fanout ${f[clients]}x${f[senders]}x${f[messages]}${f[pace]:+ at ${f[pace]}/s}" ;;
    dm) shape="dm $((f[clients] / 2)) pairs x${f[messages]}" ;;
    connect | idle) shape="${f[workload]} ${f[clients]}" ;;
    esac
    rate=${f[deliveries_per_sec]:-${f[registrations_per_sec]:-}}
    echo "| $name | $shape | ${f[expected]:-} | ${f[lost]:-${f[failed]:-}} | $rate | ${f[p50_us]:-} | ${f[p99_us]:-} | ${f[max_us]:-} | ${f[kib_per_conn]:-} | ${f[server_ns_per_delivery]:-} | ${f[server_busy_pct]:-} |"
    unset f
done <"$RESULTS"
echo
echo "Full reports: $LOG"
