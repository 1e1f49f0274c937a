#!/usr/bin/env bash
# Mass drop and reconnect: CLIENTS idle clients connect to a fresh `confab serve`, all
# drop at once, all reconnect, all drop again; the server must stay up, keep answering,
# and give back the memory the clients took. What a network blip or a proxy restart
# does to a busy server. A measurement, not a test: it prints the figures.
#
# One server, started here with a temporary data directory (history on, as by
# default) and the per-address limits off, since every client comes from loopback.
# The clients are `confab bench idle`, spread over source addresses 127.0.0.1,
# 127.0.0.2...: by default IRC clients that join no room (ROOMS=none), so that what is
# measured is connections coming and going; with ROOMS=one, line-protocol clients
# that all land in the default room, which adds one room of CLIENTS members and its
# quadratic joins and quits. A bench run holds its clients for a moment and
# exits, and its exit closes every connection at once. The server's VmRSS (from
# /proc/PID/status) is read before, with everyone connected, and after each drop once
# the server counts no client any more (from /metrics); at the end a line client
# registers and pings to show the server still answers.
#
# It stops by itself: each phase is bounded by PHASE seconds (the bench's --duration,
# and the wait for a drop to be processed), the server has a `timeout` of its own, and
# everything started here is stopped by pid on the way out. Loopback only.
#
# Usage: bench/mass-reconnect.sh               (19,000 clients in no room)
#        CLIENTS=2000 bench/mass-reconnect.sh  (a short check)
#        CLIENTS=5000 ROOMS=one bench/mass-reconnect.sh
# Environment: CONFAB (the binary, default target/release/confab), CLIENTS (19000),
# ROOMS (none or one, default none),
# PHASE (seconds each phase may take, default 900), PORT (line protocol port, default
# 23345; IRC uses PORT+1 and HTTP PORT+2), SERVER_CPU (0), BENCH_CPU (1), OUT (logs,
# default a new directory under /tmp).
# Exit status: 0 when every client connected both times, every drop was processed and
# the server answered at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFAB=${CONFAB:-$ROOT/target/release/confab}
CLIENTS=${CLIENTS:-19000}
PHASE=${PHASE:-900}
PORT=${PORT:-23345}
IRC_PORT=$((PORT + 1))
HTTP_PORT=$((PORT + 2))
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
OUT=${OUT:-$(mktemp -d /tmp/confab-reconnect.XXXXXX)}
ROOMS=${ROOMS:-none}
case $ROOMS in
none) WORKLOAD=(--protocol irc --addr "127.0.0.1:$IRC_PORT" --room '') ;;
one) WORKLOAD=(--protocol line --addr "127.0.0.1:$PORT") ;;
*)
    echo "ROOMS is none or one, not $ROOMS" >&2
    exit 1
    ;;
esac

if [ ! -x "$CONFAB" ]; then
    echo "no confab binary at $CONFAB; run: cargo build --release -p confab" >&2
    exit 1
fi
# Each client is one descriptor in the bench and one in the server; both inherit this.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CLIENTS + 200)) ]; then
    echo "ulimit -n is $(ulimit -n) at most; $CLIENTS clients need $((CLIENTS + 200))" >&2
    exit 1
fi
for port in "$PORT" "$IRC_PORT" "$HTTP_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is already in use; set PORT to another base" >&2
        exit 1
    fi
done
mkdir -p "$OUT"
DATA=$(mktemp -d /tmp/confab-reconnect-data.XXXXXX)
SERVER_WRAPPER=
BENCH=

cleanup() {
    if [ -n "$BENCH" ]; then
        kill "$BENCH" 2>/dev/null || true
    fi
    if [ -n "$SERVER_WRAPPER" ]; then
        kill "$SERVER_WRAPPER" 2>/dev/null || true
        wait "$SERVER_WRAPPER" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT

timeout $((PHASE * 5)) taskset -c "$SERVER_CPU" "$CONFAB" serve --data "$DATA" \
    --listen "127.0.0.1:$PORT" --irc-listen "127.0.0.1:$IRC_PORT" \
    --http-listen "127.0.0.1:$HTTP_PORT" --max-connections $((CLIENTS + 100)) \
    --max-members-per-room 0 \
    --max-connections-per-ip 0 --connection-rate-per-ip 0 >"$OUT/server.log" 2>&1 &
SERVER_WRAPPER=$!
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        break
    fi
    sleep 0.1
done
# taskset execs the server, so the server is the timeout wrapper's only child.
SERVER_PID=$(ps -o pid= --ppid "$SERVER_WRAPPER" | tr -d ' ' | head -n1)
if [ -z "$SERVER_PID" ] || ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    echo "the server did not start; see $OUT/server.log" >&2
    exit 1
fi
echo "mass-reconnect: $CLIENTS clients (rooms: $ROOMS) against pid $SERVER_PID; output in $OUT"

rss_kib() {
    awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"
}

clients() {
    curl -s --max-time 5 "http://127.0.0.1:$HTTP_PORT/metrics" |
        awk '/^confab_clients / {print $2}'
}

# connect_all N: N idle clients connect, register and answer a ping, are held two
# seconds and dropped together when the bench exits. Prints the bench's report.
RUN=0
connect_all() {
    RUN=$((RUN + 1))
    local started=$SECONDS
    taskset -c "$BENCH_CPU" "$CONFAB" bench idle -n "$CLIENTS" "${WORKLOAD[@]}" \
        --pid "$SERVER_PID" --hold 2 --duration "$PHASE" \
        --nick-prefix "mr${RUN}x" >"$OUT/bench$RUN.log" 2>&1 &
    BENCH=$!
    if ! wait "$BENCH"; then
        BENCH=
        echo "run $RUN: the bench failed after $((SECONDS - started)) s:" >&2
        tail -n 5 "$OUT/bench$RUN.log" >&2
        exit 1
    fi
    BENCH=
    grep -E 'connected, registered|resident memory' "$OUT/bench$RUN.log" | sed 's/^/  /'
}

# drained LABEL: waits until the server counts no client, then reports how long that
# took and its memory.
drained() {
    local started=$SECONDS
    local rss_at_drop
    rss_at_drop=$(rss_kib)
    while [ "$(clients)" != 0 ]; do
        if [ $((SECONDS - started)) -ge "$PHASE" ]; then
            echo "$1: the server still counts $(clients) clients after $PHASE s" >&2
            exit 1
        fi
        sleep 0.5
    done
    # The same second as the server finishes, memory may still be on its way back.
    sleep 1
    echo "  $1: every client gone after $((SECONDS - started)) s;" \
        "VmRSS $rss_at_drop KiB at the drop, $(rss_kib) KiB after"
}

RSS_START=$(rss_kib)
echo "server VmRSS at start: $RSS_START KiB"
echo "== connect $CLIENTS"
connect_all
echo "== drop all"
drained "first drop"
RSS_FIRST_DROP=$(rss_kib)
echo "== reconnect $CLIENTS"
connect_all
echo "== drop all again"
drained "second drop"
RSS_SECOND_DROP=$(rss_kib)

exec 3<>"/dev/tcp/127.0.0.1/$PORT"
printf '#probe\n/ping\n' >&3
ANSWER=
while IFS= read -r -t 10 line <&3; do
    if [ "$line" = "* pong" ]; then
        ANSWER=yes
        break
    fi
done
printf '/quit\n' >&3
exec 3<&-
if [ -z "$ANSWER" ] || ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "mass-reconnect: FAIL: the server does not answer after the drops" >&2
    exit 1
fi
echo "== summary"
echo "  VmRSS KiB: start $RSS_START, after the first drop $RSS_FIRST_DROP," \
    "after the second drop $RSS_SECOND_DROP; the server answers a ping: yes"
echo "  server log lines with \"panic\" or \"error\": $(grep -ciE 'panic|error' "$OUT/server.log" || true)"
echo "mass-reconnect: PASS"
