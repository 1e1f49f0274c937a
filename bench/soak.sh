#!/usr/bin/env bash
# A bounded soak of `confab serve`: mixed traffic with random client drops against a
# fresh server that keeps history, checking that no connected client loses a message
# and that the server's memory stays flat once warmed up.
#
# One server, started here with a temporary data directory and the per-address limits
# off (every generated client comes from 127.0.0.1) but flood control on, as a default
# server has it; so every paced sender stays under 5 lines a second. Three lanes run
# `confab bench` workloads back to back until DURATION has passed:
#   - fanout: paced room traffic, line protocol and IRC in turn;
#   - mixed: paced direct messages, connect/quit churn and a flood run (one client
#     flooding the room while others talk), line protocol and IRC in turn;
#   - drops: a paced fanout run into the same room, killed with SIGKILL after a random
#     few seconds, so that its clients vanish at once without quitting.
# Every run that is not killed must end with a RESULT line with nothing lost,
# duplicated or disconnected and no error. Every 10 seconds the server's resident
# memory (VmRSS from /proc/PID/status) and its client count (from /metrics) go into a
# CSV. At the end the memory of the last third of the samples is compared with the
# middle third (the first third is warm-up): within 10% counts as flat.
#
# It stops by itself: lanes start no run after DURATION, every run has a --duration
# bound and a `timeout`, and the server a `timeout` of its own. Expect it to end within
# about 40 seconds after DURATION. Everything listens and connects on 127.0.0.1 only.
#
# Usage: bench/soak.sh                 (10 minutes)
#        DURATION=90 bench/soak.sh     (a short check)
# Environment: CONFAB (the binary, default target/release/confab), DURATION (seconds of
# load, default 600), SERVER_CPU (0), BENCH_CPU (1), PORT (line protocol port, default
# 22345; IRC uses PORT+1 and HTTP PORT+2), OUT (where the CSV and logs are kept, default
# a new directory under /tmp), SEED (seeds the random drops).
# Exit status: 0 when every run was clean, the server survived and memory stayed flat.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONFAB=${CONFAB:-$ROOT/target/release/confab}
DURATION=${DURATION:-600}
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
PORT=${PORT:-22345}
IRC_PORT=$((PORT + 1))
HTTP_PORT=$((PORT + 2))
OUT=${OUT:-$(mktemp -d /tmp/confab-soak.XXXXXX)}
SEED=${SEED:-$$}
RANDOM=$SEED

if [ ! -x "$CONFAB" ]; then
    echo "no confab binary at $CONFAB; run: cargo build --release -p confab" >&2
    exit 1
fi
mkdir -p "$OUT"
DATA=$(mktemp -d /tmp/confab-soak-data.XXXXXX)
CSV=$OUT/rss.csv
RESULTS=$OUT/results.txt
RUNS=$OUT/runs.log
: >"$RESULTS"
: >"$RUNS"
echo "elapsed_s,rss_kib,clients" >"$CSV"

SERVER_WRAPPER=
LANES=()

# Everything this script started is stopped by pid on the way out, whatever happened.
cleanup() {
    for pid in "${LANES[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    if [ -n "$SERVER_WRAPPER" ]; then
        kill "$SERVER_WRAPPER" 2>/dev/null || true
        wait "$SERVER_WRAPPER" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT

for port in "$PORT" "$IRC_PORT" "$HTTP_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is already in use; set PORT to another base" >&2
        exit 1
    fi
done

# The server gets the load's duration and five minutes more; the end of the script
# stops it long before that unless something hangs.
timeout $((DURATION + 300)) taskset -c "$SERVER_CPU" "$CONFAB" serve --data "$DATA" \
    --listen "127.0.0.1:$PORT" --irc-listen "127.0.0.1:$IRC_PORT" \
    --http-listen "127.0.0.1:$HTTP_PORT" \
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
START=$(date +%s)
echo "soak: ${DURATION}s against pid $SERVER_PID (data $DATA), seed $SEED; output in $OUT"

elapsed() {
    echo $(($(date +%s) - START))
}

rss_kib() {
    awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo ""
}

clients() {
    if command -v curl >/dev/null; then
        curl -s --max-time 5 "http://127.0.0.1:$HTTP_PORT/metrics" |
            awk '/^confab_clients / {print $2}'
    fi
}

# bench LANE WORKLOAD ARGS...: one workload pinned to BENCH_CPU with a run of its own (unique
# nicknames), at most its --duration of 40 s plus slack; its RESULT line, or a note
# that there was none, goes to RESULTS.
RUN=0
bench() {
    local lane=$1
    shift
    RUN=$((RUN + 1))
    local prefix="s${lane:0:1}${RUN}x"
    local out
    out=$(timeout 60 taskset -c "$BENCH_CPU" "$CONFAB" bench "$@" --duration 40 \
        --nick-prefix "$prefix" 2>&1) || true
    {
        echo "== [$(elapsed)s] $lane: confab bench $*"
        echo "$out"
    } >>"$RUNS"
    local result
    result=$(grep '^RESULT ' <<<"$out" || true)
    if [ -z "$result" ]; then
        result="NORESULT workload=$1 last=\"$(tail -n1 <<<"$out")\""
    fi
    echo "lane=$lane t=$(elapsed) $result" >>"$RESULTS"
}

# protocol_args N: the --protocol and --addr of the Nth run: line and IRC in turn.
protocol_args() {
    if [ $(($1 % 2)) -eq 0 ]; then
        echo "--protocol line --addr 127.0.0.1:$PORT"
    else
        echo "--protocol irc --addr 127.0.0.1:$IRC_PORT"
    fi
}

fanout_lane() {
    local n=0
    while [ "$(elapsed)" -lt "$DURATION" ]; do
        # shellcheck disable=SC2046
        bench fanout fanout $(protocol_args $n) -n 50 -s 50 -m 40 --rate 4 --room soak
        n=$((n + 1))
    done
}

mixed_lane() {
    local n=0
    while [ "$(elapsed)" -lt "$DURATION" ]; do
        # shellcheck disable=SC2046
        case $((n % 3)) in
        0) bench mixed dm $(protocol_args $((n / 3))) -p 25 -m 40 --rate 4 ;;
        1) bench mixed connect $(protocol_args $((n / 3))) -n 400 --concurrency 16 ;;
        2) bench mixed flood $(protocol_args $((n / 3))) -n 30 -s 30 -m 48 --rate 4 \
            -f 1 --warmup 2 --room soakflood ;;
        esac
        n=$((n + 1))
    done
}

# A victim run joins the fanout lane's room and is killed after 2 to 12 seconds, then
# the lane waits 1 to 5 seconds. Its clients are dropped by the kernel closing their
# sockets, with no quit: what a crashed client or a lost network looks like.
drops_lane() {
    local n=0
    while [ "$(elapsed)" -lt "$DURATION" ]; do
        n=$((n + 1))
        taskset -c "$BENCH_CPU" "$CONFAB" bench fanout --addr "127.0.0.1:$PORT" \
            -n 60 -s 20 -m 1000 --rate 4 --room soak --duration 60 \
            --nick-prefix "sd${n}x" >>"$OUT/victims.log" 2>&1 &
        local victim=$!
        sleep $((2 + RANDOM % 11))
        if kill -9 "$victim" 2>/dev/null; then
            echo "[$(elapsed)s] killed victim run $n (60 clients)" >>"$OUT/victims.log"
        fi
        wait "$victim" 2>/dev/null || true
        sleep $((1 + RANDOM % 5))
    done
}

sampler() {
    while :; do
        local t
        t=$(elapsed)
        echo "$t,$(rss_kib),$(clients)" >>"$CSV"
        if [ "$t" -ge "$DURATION" ]; then
            break
        fi
        sleep $((10 - ($(elapsed) % 10)))
    done
}

sampler &
LANES+=($!)
fanout_lane &
LANES+=($!)
mixed_lane &
LANES+=($!)
# Bash reports each killed victim on stderr; that goes to the victims' log.
drops_lane 2>>"$OUT/victims.log" &
LANES+=($!)
for pid in "${LANES[@]}"; do
    wait "$pid" || true
done
LANES=()
END=$(elapsed)

# The server's memory once the load has gone, for the record.
sleep 2
AFTER=$(rss_kib)
ALIVE=yes
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    ALIVE=no
fi
KILLED=$(grep -c '^\[.*killed victim' "$OUT/victims.log" 2>/dev/null || true)

echo
echo "== runs (full output in $RUNS)"
awk '{
    lane = $1; sub("lane=", "", lane)
    workload = ""; bad = 0; lost = 0
    for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "workload") workload = kv[2]
        if (kv[1] == "lost") lost += kv[2]
        if ((kv[1] == "lost" || kv[1] == "duplicates" || kv[1] == "disconnects" ||
             kv[1] == "errors" || kv[1] == "failures") && kv[2] != "0") bad = 1
    }
    if ($3 == "NORESULT") bad = 1
    key = lane "/" workload
    runs[key]++; bads[key] += bad; losts[key] += lost
    total++; totalbad += bad
}
END {
    for (k in runs) printf "  %-16s %3d runs, %d not clean, %d lost\n", k, runs[k], bads[k], losts[k]
    printf "  %d runs, %d not clean\n", total, totalbad
    exit totalbad > 0
}' "$RESULTS" && RUNS_OK=yes || RUNS_OK=no
if [ "$RUNS_OK" = no ]; then
    echo "  not clean:"
    grep -v ' lost=0 duplicates=0 disconnects=0 errors=0 ' "$RESULTS" | sed 's/^/    /' || true
    grep ' failures=[1-9]' "$RESULTS" | sed 's/^/    /' || true
fi
echo "  victim runs killed with SIGKILL: ${KILLED:-0} (60 clients each)"

echo
echo "== server memory (VmRSS, KiB; samples in $CSV)"
FLAT=$(awk -F, 'NR > 1 && $2 != "" { rss[n++] = $2 }
END {
    if (n < 6) { print "unknown: too few samples (" n ")"; exit }
    third = int(n / 3)
    for (i = third; i < 2 * third; i++) { mid += rss[i] }
    for (i = n - third; i < n; i++) { last += rss[i] }
    mid /= third; last /= third
    change = (last - mid) / mid * 100
    printf "samples %d: first %d KiB, middle third %.0f KiB, last third %.0f KiB (%+.1f%%): ", n, rss[0], mid, last, change
    if (change <= 10 && change >= -10) print "flat"; else print "NOT flat"
}' "$CSV")
echo "  $FLAT"
echo "  after the load stopped: ${AFTER:-?} KiB; server alive: $ALIVE; load ran ${END}s"

echo
if [ "$RUNS_OK" = yes ] && [ "$ALIVE" = yes ] && [[ $FLAT == *": flat" ]]; then
    echo "soak: PASS"
    exit 0
fi
echo "soak: FAIL"
exit 1
