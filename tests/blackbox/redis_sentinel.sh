#!/usr/bin/env bash
# Failover with Redis Sentinel (issue 12.4): one master, one replica and three redis-sentinel
# processes on loopback; two demo servers (--tickets off) with
# --store redis+sentinel://S1,S2,S3/snicache. Sessions made before the failover (and replicated)
# and 4 client processes alternating between the servers; the master is killed (SIGKILL) under
# that load. No client connection fails; cross-server resumption is back within the sentinels'
# failover time (master killed -> sentinels name the replica) + 1 s; the sessions written before
# the failover still resume, from the promoted replica.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/redis.sh"
command -v redis-sentinel >/dev/null || { echo "FAIL: redis-sentinel not installed (scripts/deps.sh)"; exit 1; }
make_certs a.test
PY=$ROOT/target/py/bin/python
[ -x "$PY" ] || PY=python3
now() { date +%s.%N; }
PIDS=()
trap '[ -n "$S1_PID" ] && kill -9 $S1_PID 2>/dev/null; [ -n "$S2_PID" ] && kill -9 $S2_PID 2>/dev/null;
      for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; cleanup' EXIT

MASTER=$(free_port) REPLICA=$(free_port)
redis-server --bind 127.0.0.1 --port "$MASTER" --dir "$TMP" --save '' --appendonly no >"$TMP/master.log" 2>&1 &
MASTER_PID=$!; PIDS+=($!)
redis-server --bind 127.0.0.1 --port "$REPLICA" --dir "$TMP" --save '' --appendonly no --replicaof 127.0.0.1 "$MASTER" \
    >"$TMP/replica.log" 2>&1 &
PIDS+=($!)
SENTINELS=()
for i in 1 2 3; do
    port=$(free_port)
    cat >"$TMP/sentinel$i.conf" <<CONF
bind 127.0.0.1
port $port
dir $TMP
sentinel monitor snicache 127.0.0.1 $MASTER 2
sentinel down-after-milliseconds snicache 1000
sentinel failover-timeout snicache 10000
sentinel parallel-syncs snicache 1
CONF
    redis-sentinel "$TMP/sentinel$i.conf" >"$TMP/sentinel$i.log" 2>&1 &
    PIDS+=($!)
    SENTINELS+=("$port")
done
master_port() { redis-cli -p "${SENTINELS[0]}" sentinel get-master-addr-by-name snicache 2>/dev/null | sed -n 2p; }
sentinels_ready() {
    local p
    for p in "${SENTINELS[@]}"; do
        [ "$(redis-cli -p "$p" sentinel ckquorum snicache 2>/dev/null | cut -c1-2)" = OK ] || return 1
        [ "$(redis-cli -p "$p" sentinel replicas snicache 2>/dev/null | grep -c "^$REPLICA$")" -ge 1 ] || return 1
        [ "$(redis-cli -p "$p" sentinel sentinels snicache 2>/dev/null | grep -c '^runid$')" -ge 2 ] || return 1
    done
}
wait_for "3 sentinels see the master, its replica and each other" 60 sentinels_ready
expect_eq "the sentinels name the master" "$MASTER" "$(master_port)"

# A generous budget: this test is about failover, not latency on a loaded machine.
STORE="redis+sentinel://127.0.0.1:${SENTINELS[0]},127.0.0.1:${SENTINELS[1]},127.0.0.1:${SENTINELS[2]}/snicache?budget_ms=200"
REDIS_PORT=$MASTER  # for new_on_1's key count
FLAGS=(--vhost "$(vhost a.test)" --tickets off --store "$STORE" --seal-key-file "$TMP/seal.key")
start_server "${FLAGS[@]}"; S1_PID=$SERVER_PID P1=$PORT LOG1=$LOG
start_server "${FLAGS[@]}"; S2_PID=$SERVER_PID P2=$PORT LOG2=$LOG
SERVER_PID=""

echo "== sessions made before the failover, replicated"
for i in 1 2 3 4; do new_on_1 "pre$i.sess"; done
redis-cli -p "$MASTER" wait 1 5000 >/dev/null
wait_for "the replica holds them" 30 sh -c "test \$(redis-cli -p $REPLICA dbsize) -ge 4"

echo "== the master killed under load: 4 clients alternating between the servers"
out=$TMP/load stop=$TMP/stop
"$PY" "$ROOT/tests/blackbox/lib/alternate.py" "$out" "$stop" 4 "$P1" "$P2" &
LOAD=$!
wait_for "load resumes across servers before the failover" 60 \
    sh -c "test \$(cat $out.[0-9]* 2>/dev/null | grep -c resumed) -ge 300"
t0=$(now)
kill -9 "$MASTER_PID"
wait_for "the sentinels promote the replica" 60 sh -c "test \"\$(redis-cli -p ${SENTINELS[0]} sentinel get-master-addr-by-name snicache | sed -n 2p)\" = $REPLICA"
t1=$(now)
failover_ms=$(python3 -c "print(int(1000 * ($t1 - $t0)))")
echo "       failover (master killed -> sentinels name the replica): $failover_ms ms"
wait_for "3 s of load after the failover" 30 past "$(python3 -c "print($t1 + 3)")"
touch "$stop"; wait "$LOAD"
figures=$(python3 "$ROOT/tests/blackbox/lib/recovery.py" "$out" "$t0" "$t1")
echo "       $figures"
get() { sed -n "s/.*\b$1=\(-\?[0-9]*\).*/\1/p" <<<"$figures"; }
for p in "$P1" "$P2"; do
    on "$p"; json=$(stats_json)
    echo "       server :$p /stats remote: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1])["remote"]; print(", ".join(f"{k}={r[k]}" for k in ("hits","misses","timeouts","errors","breaker_trips","breaker_skips","writes","write_drops")))' "$json")"
done
expect_eq "failed client connections" 0 "$(get failed)"
check ">= 70% resumed across servers before the failover ($(get before)%)" test "$(get before)" -ge 70
check "cross-server resumption back within failover + 1 s ($(get recovered_ms) ms after the sentinels switched)" \
    test "$(get recovered_ms)" -ge 0 -a "$(get recovered_ms)" -le 1000

echo "== sessions written before the failover resume from the promoted replica"
on "$P2"
for i in 1 2 3 4; do
    out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/pre$i.sess")
    expect_eq "server 2 resumes pre-failover session $i" Reused "$(outcome <<<"$out")"
done
json=$(stats_json)
check "server 2 counted remote hits ($(stat "$json" remote hits))" test "$(stat "$json" remote hits)" -ge 4
stop_servers
finish
