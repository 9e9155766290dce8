#!/usr/bin/env bash
# The Redis store in prefork demo servers (--workers 2, one thread each): the cache is made
# before the fork and every worker process starts its own Redis writer, connections and (with
# --async-lookup) fetcher threads on first use. Two demo servers share one redis-server
# (Debian's, on a free loopback port):
#  - server 1 (--workers 2): sessions made there (in parallel, so both workers take some),
#    TLS 1.2 and 1.3, reach Redis;
#  - server 2 (--workers 2 --async-lookup): each resumes there through a background fetch
#    (handshakes paused for it), under the same name, and not under another.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/redis.sh"
make_certs a.test b.test

start_redis
STORE="redis://127.0.0.1:$REDIS_PORT/0?budget_ms=200&async_ms=2000"
FLAGS=(--vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --tickets off --workers 2 --threads 1
       --store "$STORE" --seal-key-file "$TMP/seal.key")
start_server "${FLAGS[@]}"; S1_PID=$SERVER_PID P1=$PORT
start_server "${FLAGS[@]}" --async-lookup; S2_PID=$SERVER_PID P2=$PORT LOG2=$LOG
SERVER_PID=""
check "server 2 log: prefork with async lookup" grep -q 'async lookup on$' "$LOG2"
pid_of() { grep -ao 'pid=[0-9]*' | head -1; }
declare -A made_by served_by

SESSIONS=6
echo "== sessions made on server 1's workers reach Redis and resume on server 2's"
for tls in 1.2 1.3; do
    # Made in parallel, so that both worker processes of server 1 take connections.
    on "$P1"
    before=$(rcli dbsize) clients=()
    for i in $(seq $SESSIONS); do
        client / "-tls1_${tls#1.}" -servername a.test -sess_out "$TMP/s$tls.$i.sess" >"$TMP/s$tls.$i.out" &
        clients+=($!)
    done
    wait "${clients[@]}"
    for i in $(seq $SESSIONS); do
        [ "$(outcome <"$TMP/s$tls.$i.out")" = New ] || not_ok "server 1, TLS $tls session $i: full handshake"
        made_by[$(pid_of <"$TMP/s$tls.$i.out")]=1
    done
    # Each worker's writer puts its records: wait (10 s deadline) until Redis holds them all.
    poll 400 0.025 redis_holds $((before + SESSIONS))
    check "TLS $tls: Redis holds the $SESSIONS new sessions ($(($(rcli dbsize) - before)) keys)" \
        test "$(rcli dbsize)" -ge $((before + SESSIONS))
    resumed=0 refused=0
    on "$P2"
    for i in $(seq $SESSIONS); do
        out=$(client / "-tls1_${tls#1.}" -servername a.test -sess_in "$TMP/s$tls.$i.sess")
        [ "$(whoami <<<"$out")" = "vhost=a.test sni=a.test resumed=1 proto=TLSv$tls" ] && resumed=$((resumed + 1))
        served_by[$(pid_of <<<"$out")]=1
        out=$(client / "-tls1_${tls#1.}" -servername b.test -sess_in "$TMP/s$tls.$i.sess")
        [ "$(whoami <<<"$out")" = "vhost=b.test sni=b.test resumed=0 proto=TLSv$tls" ] && refused=$((refused + 1))
    done
    expect_eq "TLS $tls: server 2 resumes server 1's sessions" $SESSIONS $resumed
    expect_eq "TLS $tls: server 2 gives b.test a full handshake with them" $SESSIONS $refused
done
echo "  (server 1 worker processes seen: ${#made_by[@]}; server 2: ${#served_by[@]})"
# A fetch that ends before the worker parks the connection resumes it without a logged pause.
check "server 2 log: handshakes paused for background fetches ($(grep -c 'handshake paused' "$LOG2"))" \
    test "$(grep -c 'handshake paused' "$LOG2")" -ge 1
check "Redis holds a.test's sessions ($(rcli --scan --pattern 'snicache:v1:a.test:*' | wc -l) keys)" \
    test "$(rcli --scan --pattern 'snicache:v1:a.test:*' | wc -l)" -ge $((2 * SESSIONS))

echo "== again on server 2 (from a worker's local tier, or fetched anew)"
on "$P2"
out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/s1.2.1.sess")
expect_eq "server 2 resumes again" "vhost=a.test sni=a.test resumed=1 proto=TLSv1.2" "$(whoami <<<"$out")"
check "server 2 log: no redis store warning" sh -c "! grep -q 'redis store.*cannot\|skipping' '$LOG2'"

stop_servers
finish
