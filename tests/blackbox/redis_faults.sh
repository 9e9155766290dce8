#!/usr/bin/env bash
# Redis answering errors under load (issue 12.1): two demo servers (--tickets off, so every
# TLS 1.3 resumption makes a new stateful session) share one redis-server; 4 client processes
# alternate between them, each offering the session of its previous connection, so every
# resumption is cross-server through Redis. For a few seconds Redis answers errors:
#  - OOM: maxmemory 1mb with noeviction (every SET refused);
#  - NOPERM: ACL SETUSER default -set (every SET refused);
#  - WRONGTYPE: every session key replaced by a hash as soon as it is written (every lookup
#    of it answered with an error).
# Each time: no client connection fails, the servers count the errors, and cross-server
# resumption is back (a second resuming at least 90% as often as before the fault) within 2 s
# of the errors ending: error replies never cost the pool its connections. Warnings about them
# are rate-limited.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/redis.sh"
make_certs a.test
PY=$ROOT/target/py/bin/python
[ -x "$PY" ] || PY=python3
CLIENTS=${CLIENTS:-4}
HOLD=${HOLD:-3}   # seconds of errors

start_redis
# A generous budget: this test is about error replies, not latency on a loaded machine.
STORE="redis://127.0.0.1:$REDIS_PORT/0?budget_ms=50"
FLAGS=(--vhost "$(vhost a.test)" --tickets off --tls-min 1.3 --store "$STORE" --seal-key-file "$TMP/seal.key")
start_server "${FLAGS[@]}"; S1_PID=$SERVER_PID P1=$PORT LOG1=$LOG
start_server "${FLAGS[@]}"; S2_PID=$SERVER_PID P2=$PORT LOG2=$LOG
SERVER_PID=""
now() { date +%s.%N; }
# remote_sum FIELD: the field of /stats "remote", summed over both servers.
remote_sum() {
    local sum=0 p
    for p in "$P1" "$P2"; do
        on "$p"; sum=$((sum + $(stat "$(stats_json)" remote "$1")))
    done
    echo "$sum"
}
# lines WHAT LOG: connections logged so far by the clients matching WHAT (ok/resumed/fail).
lines() { cat "$2".[0-9]* 2>/dev/null | grep -c " $1"; }

fault() { # NAME START_COMMAND END_COMMAND
    local name=$1 start_cmd=$2 end_cmd=$3 out=$TMP/load.$1 stop=$TMP/stop.$1 pid errors0 t0 t1 figures
    echo "== $name: $CLIENTS clients alternating between the servers, Redis answering errors for $HOLD s"
    "$PY" "$ROOT/tests/blackbox/lib/alternate.py" "$out" "$stop" "$CLIENTS" "$P1" "$P2" &
    pid=$!
    wait_for "$name: load resumes across servers before the fault" 30 \
        sh -c "test \$(cat $out.[0-9]* 2>/dev/null | grep -c resumed) -ge 300"
    errors0=$(remote_sum errors)
    t0=$(now)
    eval "$start_cmd"
    wait_for "$name: the servers count error replies" 30 \
        sh -c "test \$(cat $out.[0-9]* | awk -v t=$t0 '\$1 > t' | wc -l) -ge 100"
    # Hold the errors for $HOLD seconds of load.
    wait_for "$name: errors held" 30 past "$(python3 -c "print($t0 + $HOLD)")"
    eval "$end_cmd"
    t1=$(now)
    local errors=$(( $(remote_sum errors) - errors0 ))
    echo "       /stats remote (both servers): errors +$errors, timeouts $(remote_sum timeouts), breaker_trips $(remote_sum breaker_trips), write_drops $(remote_sum write_drops)"
    check "$name: the servers counted error replies ($errors)" test "$errors" -ge 50
    wait_for "$name: 3 s of load after the fault" 30 past "$(python3 -c "print($t1 + 3)")"
    touch "$stop"; wait "$pid"
    figures=$(python3 "$ROOT/tests/blackbox/lib/recovery.py" "$out" "$t0" "$t1")
    echo "       $figures"
    get() { sed -n "s/.*\b$1=\(-\?[0-9]*\).*/\1/p" <<<"$figures"; }
    expect_eq "$name: failed client connections" 0 "$(get failed)"
    check "$name: >= 70% resumed across servers before the fault ($(get before)%)" test "$(get before)" -ge 70
    check "$name: cross-server resumption back within 2 s of the errors ending ($(get recovered_ms) ms)" \
        test "$(get recovered_ms)" -ge 0 -a "$(get recovered_ms)" -le 2000
}

rcli setrange snicache-test-filler $((2 << 20)) x >/dev/null
# refused_now WORD: a SET is refused right now with WORD (the fault is real).
refused_now() { check "Redis refuses SET now: $1" grep -q "$1" <<<"$(rcli set snicache-probe x 2>&1)"; }
fault OOM "rcli config set maxmemory-policy noeviction >/dev/null; rcli config set maxmemory 1mb >/dev/null; refused_now OOM" \
    "rcli config set maxmemory 0 >/dev/null"
fault NOPERM "rcli acl setuser default -set >/dev/null; refused_now NOPERM" "rcli acl setuser default +set >/dev/null"
fault WRONGTYPE "\"\$PY\" \"\$ROOT/tests/blackbox/lib/wrongtype.py\" \$REDIS_PORT >\$TMP/wrongtype.out & WT=\$!" \
    "kill \$WT; wait \$WT 2>/dev/null"
hashes=$(rcli --scan --pattern 'snicache:v1:*' | while read -r k; do rcli type "$k"; done | grep -c hash)
check "WRONGTYPE was real: $hashes session keys left as hashes" test "$hashes" -ge 50

for log in "$LOG1" "$LOG2"; do
    check "no 'no free connection in the pool' ($(basename "$log"))" sh -c "! grep -q 'no free connection' $log"
    n=$(grep -c 'redis store' "$log")
    check "warnings rate-limited ($n redis store lines)" test "$n" -le 12
done
stop_servers
finish
