#!/usr/bin/env bash
# Runs the same `confab bench` workloads against confab (line protocol and IRC), the raw
# relay (the ceiling), ngIRCd and InspIRCd, and prints every run and a summary table
# with the ratios the issue asks about.
#
# The server is pinned to one CPU and the generator to another, so that each has a core
# of its own. Every workload gets a fresh server. Every server and every run is bounded
# by `timeout`, and everything listens and connects on 127.0.0.1 only. ngIRCd and
# InspIRCd are installed from Debian when missing (as root, or with sudo); a server
# that still is not there is skipped.
#
# Usage: bench/compare.sh [SERVER...]   where SERVER is confab-line, confab-irc,
#        confab-history (line protocol with history kept), relay, ngircd or inspircd
#        (default: all). Environment: CONFAB (the binary, default
#        target/release/confab), SERVER_CPU (0), BENCH_CPU (1), MESSAGES (10000),
#        ROUNDS (1), ONLY (workload keys to run, space-separated, such as
#        "fanout-100x10 idle"; default all), IDLE (5000), LINE_IDLE (IDLE), IDLE_ROOM
#        (empty), LOG (where the full reports go, default /tmp/confab-compare.log).
#
# Single runs on a shared virtual machine move by a third from one run to the next
# (the generator's own speed varies as much as the servers'). With ROUNDS=N every
# workload but `idle` runs N times, the servers taking turns within each round so that
# a slow minute of the machine hits all of them, and the summary shows the median
# with the range. Ratios are taken between medians.
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
# Each sender's message count in the unpaced workloads. At 1,000 a fast server's run
# of fanout 100x10 was over in 40-60 ms, mostly the start of the burst, and its rate
# said more about that moment than about the server; at 10,000 a run lasts 0.4 s for
# confab and the relay and 4-15 s for the peers.
MESSAGES=${MESSAGES:-10000}
ROUNDS=${ROUNDS:-1}
IDLE=${IDLE:-5000}
LINE_IDLE=${LINE_IDLE:-$IDLE}
IDLE_ROOM=${IDLE_ROOM:-}
ONLY=${ONLY:-}
LOG=${LOG:-/tmp/confab-compare.log}
# Every run's RESULT line, after the server's name and the workload's key; the
# summary can be printed again from it with bench/summary.awk (see the end).
RESULTS=$LOG.results

if [ ! -x "$CONFAB" ]; then
    echo "no confab binary at $CONFAB; run: cargo build --release -p confab" >&2
    exit 1
fi
: >"$LOG"
: >"$RESULTS"

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
trap stop_server EXIT

# bench NAME KEY ARGS...: one run pinned to BENCH_CPU, at most three minutes; its
# RESULT line is kept with NAME and KEY in front. A failed run is recorded and the next
# one goes on.
bench() {
    local name=$1 key=$2
    shift 2
    echo "== $name $key: confab bench $*" | tee -a "$LOG"
    local out
    out=$(timeout 180 taskset -c "$BENCH_CPU" "$CONFAB" bench "$@" 2>&1) || true
    echo "$out" >>"$LOG"
    local result
    result=$(grep '^RESULT ' <<<"$out" || true)
    if [ -z "$result" ]; then
        result="RESULT workload=$1 failed=\"$(tail -n1 <<<"$out")\""
    fi
    echo "$result"
    echo "$name $key $result" >>"$RESULTS"
}

# The workloads, each as KEY|ARGUMENTS OF `confab bench`. `idle` runs once per server
# (resident memory does not move between runs); the rest run ROUNDS times.
IDLE_WORKLOAD="idle|idle --pid @PID@ --room '$IDLE_ROOM'"
# A slow server is still delivering long after the senders finish (InspIRCd needs
# about 15 s for fanout 1000x2 at 10,000 messages); what it delivers late is slow,
# not lost, so the wait after the last send is a minute rather than the default 10 s.
DRAIN="--drain-timeout 60"
SEND_QUEUE=$((16 << 20))
WORKLOADS=(
    "fanout-100x10|fanout --pid @PID@ --clients 100 --senders 10 --messages $MESSAGES $DRAIN"
    "fanout-1000x2|fanout --pid @PID@ --clients 1000 --senders 2 --messages $MESSAGES $DRAIN"
    "paced-1000/s|fanout --pid @PID@ --clients 100 --senders 10 --messages 2000 --rate 1000"
    "paced-100/s|fanout --pid @PID@ --clients 100 --senders 10 --messages 1000 --rate 100"
    "dm-100|dm --pid @PID@ --pairs 100 --messages $MESSAGES $DRAIN"
    "connect-2000|connect --clients 2000"
)

# server_spec NAME: sets PROTO, ADDR and CONCURRENCY for NAME, and START to the command
# that starts it. Fails for an unknown server or one that is not installed.
server_spec() {
    # One address opening thousands of connections and flooding is exactly what the
    # per-address and flood limits stop, so they are off; history is off too, except
    # for confab-history, which keeps it in a fresh database as a default server does.
    # The send queue is the relay's 16 MiB rather than the default 1 MiB, as the peers'
    # configs raise theirs: in an unpaced fanout 1000x2 the senders' 20,000 messages
    # reach the server in milliseconds, and a receiver the generator has not got round
    # to has a megabyte queued for it, which a server should refuse, but this is a
    # measure of throughput.
    local confab_serve=(env RUST_LOG=warn "$CONFAB" serve --listen 127.0.0.1:12345
        --irc-listen 127.0.0.1:6667 --http-listen 127.0.0.1:18080
        --max-connections-per-ip 0 --connection-rate-per-ip 0 --flood-rate 0
        --max-connections 25000 --send-queue "$SEND_QUEUE")
    CONCURRENCY=128
    case $1 in
    confab-line) PROTO=line ADDR=127.0.0.1:12345 START=("${confab_serve[@]}" --no-history) ;;
    confab-irc) PROTO=irc ADDR=127.0.0.1:6667 START=("${confab_serve[@]}" --no-history) ;;
    # @DATA@ becomes a new empty directory for every run.
    confab-history) PROTO=line ADDR=127.0.0.1:12345 START=("${confab_serve[@]}" --data @DATA@) ;;
    relay)
        PROTO=raw ADDR=127.0.0.1:12346
        START=("$CONFAB" bench relay --listen 127.0.0.1:12346 --duration 1700)
        ;;
    ngircd)
        command -v ngircd >/dev/null || return 1
        # ngIRCd listens with a backlog of 10: more connections at once than that
        # overflow it and wait for SYN retransmits, so set-up goes 8 at a time.
        PROTO=irc ADDR=127.0.0.1:6668 CONCURRENCY=8
        START=(ngircd --nodaemon --config "$ROOT/bench/ngircd.conf")
        ;;
    inspircd)
        command -v inspircd >/dev/null || return 1
        # InspIRCd completes registrations on its once-a-second housekeeping tick, so
        # each takes up to a second: set-up needs many at once to get anywhere.
        PROTO=irc ADDR=127.0.0.1:6669 CONCURRENCY=1000
        START=(inspircd --nofork --runasroot --config "$ROOT/bench/inspircd.conf")
        ;;
    *)
        echo "unknown server $1" >&2
        return 1
        ;;
    esac
}

# fresh NAME WORKLOAD: one workload (KEY|ARGUMENTS, @PID@ standing for the server's
# pid) against server NAME, started afresh, as the issue asks: the quits that end a
# run (a thousand members leaving one room is half a million quit lines) would
# otherwise still be going out while the next run starts, and a memory reading would
# include what earlier runs left behind.
fresh() {
    local name=$1 key=${2%%|*} args=${2#*|} data=
    server_spec "$name" || return 0
    [ "$PROTO" = raw ] && [[ $args == dm* ]] && return 0
    if [[ $args == idle* ]]; then
        local clients=$IDLE
        [ "$PROTO" = line ] && clients=$LINE_IDLE
        args=${args/idle /idle --clients $clients }
    fi
    if [[ " ${START[*]} " == *" @DATA@ "* ]]; then
        data=$(mktemp -d)
        START=("${START[@]/@DATA@/$data}")
    fi
    start_server "${ADDR##*:}" "${START[@]}" || return 0
    local pid
    pid=$(server_pid)
    eval "local argv=($args)"
    bench "$name" "$key" "${argv[@]//@PID@/$pid}" --protocol "$PROTO" --addr "$ADDR" \
        --concurrency "$CONCURRENCY" --duration 150
    stop_server
    [ -n "$data" ] && rm -rf "$data"
    return 0
}

# Installs the peer servers named on the command line that are missing, from Debian.
install_peers() {
    local missing=()
    for server in "$@"; do
        case $server in
        ngircd | inspircd) command -v "$server" >/dev/null || missing+=("$server") ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "installing ${missing[*]} from Debian"
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 ||
        echo "could not install ${missing[*]}; they are skipped (see $LOG)" >&2
    # Debian starts the daemons it installs; they would hold the ports and a core.
    for server in "${missing[@]}"; do
        $sudo service "$server" stop >>"$LOG" 2>&1 || true
    done
}

servers=("$@")
if [ ${#servers[@]} -eq 0 ]; then
    servers=(confab-line confab-irc confab-history relay ngircd inspircd)
fi
# wanted KEY: whether ONLY (if set) names workload KEY.
wanted() {
    [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]
}

install_peers "${servers[@]}"
if wanted idle; then
    for server in "${servers[@]}"; do
        fresh "$server" "$IDLE_WORKLOAD"
    done
fi
# Workload by workload, the servers taking turns in each round.
for workload in "${WORKLOADS[@]}"; do
    wanted "${workload%%|*}" || continue
    for round in $(seq "$ROUNDS"); do
        [ "$ROUNDS" -gt 1 ] && echo "-- ${workload%%|*}: round $round of $ROUNDS"
        for server in "${servers[@]}"; do
            fresh "$server" "$workload"
        done
    done
done

# Every run, from the RESULT lines.
echo
echo "| server | workload | expected | lost | rate/s | p50 us | p99 us | max us | KiB/conn | server ns/delivery | server busy % |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
while read -r name key _ fields; do
    if [[ $fields == *failed=* ]]; then
        echo "| $name | $key | | ${fields#*failed=} | | | | | | | |"
        continue
    fi
    declare -A f=()
    for kv in $fields; do
        f[${kv%%=*}]=${kv#*=}
    done
    rate=${f[deliveries_per_sec]:-${f[registrations_per_sec]:-}}
    echo "| $name | $key | ${f[expected]:-} | ${f[lost]:-} | $rate | ${f[p50_us]:-} | ${f[p99_us]:-} | ${f[max_us]:-} | ${f[kib_per_conn]:-} | ${f[server_ns_per_delivery]:-} | ${f[server_busy_pct]:-} |"
    unset f
done <"$RESULTS"

# The summary: per workload, each server's median over the rounds (its range when
# there were several), and how confab compares with the better of ngIRCd and InspIRCd
# and with the relay, as "times better" (for latency and memory: the other's figure
# over confab's).
echo
echo "Medians over $ROUNDS round(s)$([ "$ROUNDS" -gt 1 ] && echo ", range in brackets"):"
echo
awk -v order="${servers[*]}" -f "$ROOT/bench/summary.awk" "$RESULTS"
echo
echo "Full reports: $LOG; the RESULT lines: $RESULTS"
