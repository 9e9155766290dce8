#!/usr/bin/env bash
# Asynchronous lookups on OpenSSL (--async-lookup): two demo servers share one redis-server
# (Debian's, on a free loopback port). A session the local tier does not have pauses its
# handshake in the ClientHello callback (SSL_ERROR_WANT_CLIENT_HELLO_CB) while snicache fetches
# it; the demo parks the connection and drives it again when snicache's ready callback names it.
#  - a session made on server 1 resumes on server 2 through the pause, TLS 1.2 and TLS 1.3
#    (stateful sessions: --tickets off);
#  - Redis stalled (DEBUG SLEEP 2) with one worker thread: a resuming connection is parked, a
#    plain connection to the same thread completes meanwhile, well before the stall ends, and
#    the parked one completes (resumed) after it;
#  - Redis down: every handshake completes, full.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/redis.sh"
make_certs a.test
now_ms() { echo $(($(date +%s%N) / 1000000)); }

start_redis
# async_ms well past the 2 s stall: the parked connection waits for Redis's answer.
STORE="redis://127.0.0.1:$REDIS_PORT/0?async_ms=6000&backoff_ms=300"
FLAGS=(--vhost "$(vhost a.test)" --tickets off --threads 1 --async-lookup --store "$STORE" --seal-key-file "$TMP/seal.key")
start_server "${FLAGS[@]}"; S1_PID=$SERVER_PID P1=$PORT
start_server "${FLAGS[@]}"; S2_PID=$SERVER_PID P2=$PORT LOG2=$LOG
SERVER_PID=""
check "server 2 log: async lookup on" grep -q 'async lookup on$' "$LOG2"

echo "== a session made on server 1 resumes on server 2 after a pause"
for tls in 1.2 1.3; do
    new_on_1 "a$tls.sess" "-tls1_${tls#1.}"
    on "$P2"
    paused=$(grep -c 'handshake paused' "$LOG2")
    out=$(client / "-tls1_${tls#1.}" -servername a.test -sess_in "$TMP/a$tls.sess")
    expect_eq "TLS $tls: server 2 resumes server 1's session" Reused "$(outcome <<<"$out")"
    expect_eq "TLS $tls: server 2 GET /" "vhost=a.test sni=a.test resumed=1 proto=TLSv$tls" "$(whoami <<<"$out")"
    expect_eq "TLS $tls: the handshake paused once for the lookup" $((paused + 1)) "$(grep -c 'handshake paused' "$LOG2")"
done
out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/a1.2.sess")
expect_eq "again: found in server 2's local tier" Reused "$(outcome <<<"$out")"
expect_eq "again: no pause" 2 "$(grep -c 'handshake paused' "$LOG2")"
out=$(client / -tls1_2 -servername a.test)
expect_eq "no session offered: full handshake" New "$(outcome <<<"$out")"
expect_eq "no session offered: no pause" 2 "$(grep -c 'handshake paused' "$LOG2")"
json=$(stats_json)
expect_eq "server 2 /stats: pending" 2 "$(stat "$json" total pending)"
expect_eq "server 2 /stats: remote fetches" 2 "$(stat "$json" remote fetches)"
expect_eq "server 2 /stats: remote hits" 2 "$(stat "$json" remote hits)"

echo "== Redis stalled (DEBUG SLEEP 2), one worker thread: it serves others while one is parked"
new_on_1 s.sess
on "$P2"
(rcli debug sleep 2 >/dev/null; now_ms >"$TMP/stall.end") &
sleeper=$!
for _ in $(seq 100); do   # until the stall has begun: a PING goes unanswered
    timeout 0.5 redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 || break
    sleep 0.01
done
t0=$(now_ms)
(client / -tls1_2 -servername a.test -sess_in "$TMP/s.sess" >"$TMP/parked.out"; now_ms >"$TMP/parked.end") &
parked_client=$!
paused_3() { [ "$(grep -c 'handshake paused' "$LOG2")" -ge 3 ]; }
poll 200 0.01 paused_3
expect_eq "the resuming connection is parked" 3 "$(grep -c 'handshake paused' "$LOG2")"
t1=$(now_ms)
out=$(client / -tls1_2 -servername a.test)
plain_ms=$(($(now_ms) - t1))
expect_eq "a plain connection to the same worker thread completes meanwhile" \
    "vhost=a.test sni=a.test resumed=0 proto=TLSv1.2" "$(whoami <<<"$out")"
wait "$sleeper"
wait "$parked_client"
stall_end=$(cat "$TMP/stall.end") parked_end=$(cat "$TMP/parked.end")
echo "  (plain connection: ${plain_ms} ms; the stall ended $((stall_end - t0)) ms and the parked one $((parked_end - t0)) ms after it connected)"
check "the plain connection finished before the stall ended" test $((t1 + plain_ms)) -lt "$stall_end"
expect_eq "the parked connection completes after the stall, resumed" Reused "$(outcome <"$TMP/parked.out")"
check "the parked connection finished after the stall" test "$parked_end" -ge $((stall_end - 100))

echo "== Redis down: every handshake completes, full"
for i in 1 2 3; do new_on_1 "d$i.sess"; done
stop_redis
on "$P2"
done_count=0
for i in 1 2 3; do
    out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/d$i.sess")
    [ "$(whoami <<<"$out")" = "vhost=a.test sni=a.test resumed=0 proto=TLSv1.2" ] && done_count=$((done_count + 1))
done
expect_eq "3 handshakes with sessions Redis no longer has: all completed, full" 3 "$done_count"
check "server 2 /stats: remote errors counted" test "$(stat "$(stats_json)" remote errors)" -ge 1

stop_servers
finish
