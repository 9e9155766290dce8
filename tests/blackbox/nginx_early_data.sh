#!/usr/bin/env bash
# 0-RTT accepted at most once (RFC 8446 §8), nginx 1.30.4 on BoringSSL (scripts/build-nginx-
# boringssl.sh) with `ssl_early_data on`, TLS 1.3 tickets on. One ticket (openssl s_client
# -sess_out), then the same ticket offered again and again with early data (-sess_in -early_data
# REQUEST): how many times is its early data accepted?
#  1. stock nginx (ssl_session_cache shared, 2 workers): measured and printed (BoringSSL has no
#     replay protection of its own, and OpenSSL's single-use stateful tickets do not hold with
#     nginx's shared cache: more than one attempt accepted, asserted);
#  2. the module, shm store, 2 workers (reuseport; attempts go on until both workers have had
#     some): exactly once; every other attempt still resumes (1-RTT, early data rejected), is
#     served, and is counted as early_data_replayed;
#  3. two nginx servers (1 worker each) sharing Redis and a ticket key file: a ticket from server 1, offered
#     alternately to both servers: exactly once in the fleet (Redis DEL answers 1 once); with
#     Redis stopped, a new ticket's early data is rejected (1-RTT), the server keeps serving.
# NGINX_DEBIAN=1 runs the same cases against Debian's nginx 1.22 on OpenSSL 3.0 with the dynamic
# module (nginx_early_data_debian.sh), where the module decides in OpenSSL's allow-early-data
# callback instead.
source "$(dirname "$0")/lib/common.sh"
if [ "${NGINX_DEBIAN:-}" != 1 ]; then
    NGINX_BIN=$("$ROOT/scripts/build-nginx-boringssl.sh") || { echo "FAIL: cannot build nginx on BoringSSL"; exit 1; }
fi
source "$(dirname "$0")/lib/nginx.sh"
source "$(dirname "$0")/lib/redis.sh"
trap 'for d in "${STARTED[@]}"; do stop_nginx "$d"; done
      [ -n "$REDIS_PID" ] && kill -9 $REDIS_PID 2>/dev/null; cleanup' EXIT
make_certs a.test b.test
printf 'GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n' >"$TMP/early.req"
LISTEN_FLAGS=" reuseport"
EARLY="ssl_early_data on; ssl_session_tickets on;"

# attempt SESSION: offers SESSION's ticket with the request as early data; prints
# "accepted|rejected|none Reused|New|failed pid=N" (pid of the worker that served the request).
attempt() {
    local out ed
    out=$(printf 'GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -servername a.test -tls1_3 -ign_eof \
            -sess_in "$1" -early_data "$TMP/early.req" 2>"$TMP/client.err")
    ed=$(grep -o 'Early data was \(accepted\|rejected\)' <<<"$out" | awk '{print $4}')
    echo "${ed:-none} $(outcome <<<"$out") $(grep -ao 'pid=[0-9]*' <<<"$out" | head -1)"
}

# replays DIR SESSION MIN: attempts with SESSION until at least MIN were made and both workers of
# the nginx in DIR served one (60 at most); sets ACCEPTED, REJECTED_RESUMED, ATTEMPTS, WORKERS.
replays() {
    local r pids=()
    declare -A seen=()
    ACCEPTED=0 REJECTED_RESUMED=0 ATTEMPTS=0
    while [ $ATTEMPTS -lt 60 ]; do
        r=$(attempt "$2")
        ATTEMPTS=$((ATTEMPTS + 1))
        case $r in
            accepted\ Reused*) ACCEPTED=$((ACCEPTED + 1)) ;;
            rejected\ Reused*) REJECTED_RESUMED=$((REJECTED_RESUMED + 1)) ;;
            *) echo "       attempt $ATTEMPTS: $r" ;;
        esac
        [ -n "${r##*pid=}" ] && [ "${r##*pid=}" != "$r" ] && seen[${r##*pid=}]=1
        [ $ATTEMPTS -ge "$3" ] && [ ${#seen[@]} -ge 2 ] && break
    done
    WORKERS=${#seen[@]}
}

PORT=$(free_port) STATUS_PORT=$(free_port)
echo "== stock nginx ($NGINX_SSL), ssl_session_cache shared:SSL:1m, ssl_early_data on, 2 workers"
D=$TMP/stock
conf "$D" no 2 "ssl_session_cache shared:SSL:1m; $EARLY"
start_nginx "$D"
out=$(ngx a.test -tls1_3 -sess_out "$TMP/stock.sess")
expect_eq "stock: a.test full handshake" New "$(outcome <<<"$out")"
check "stock: the ticket allows early data" grep -q 'Max Early Data: [1-9]' <(openssl sess_id -in "$TMP/stock.sess" -noout -text)
replays "$D" "$TMP/stock.sess" 6
echo "       STOCK: one ticket's early data accepted $ACCEPTED times of $ATTEMPTS attempts over $WORKERS workers"
check "stock nginx accepts the replayed early data more than once (the flaw: $ACCEPTED of $ATTEMPTS)" test $ACCEPTED -gt 1
stop_nginx "$D"

echo "== module: snicache on, snicache_store shm:4m, ssl_early_data on, 2 workers"
D=$TMP/module
conf "$D" yes 2 "snicache on; snicache_store shm:4m; $EARLY"
start_nginx "$D"
out=$(ngx a.test -tls1_3 -sess_out "$TMP/m.sess")
expect_eq "a.test full handshake" New "$(outcome <<<"$out")"
check "the ticket allows early data" grep -q 'Max Early Data: [1-9]' <(openssl sess_id -in "$TMP/m.sess" -noout -text)
replays "$D" "$TMP/m.sess" 6
echo "       MODULE: one ticket's early data accepted $ACCEPTED times of $ATTEMPTS attempts over $WORKERS workers"
expect_eq "both workers took attempts" 2 "$WORKERS"
expect_eq "early data accepted exactly once" 1 "$ACCEPTED"
expect_eq "every other attempt resumed in 1-RTT (early data rejected)" $((ATTEMPTS - 1)) "$REJECTED_RESUMED"
json=$(status)
expect_eq "status early_data_accepted" 1 "$(stat "$json" total early_data_accepted)"
expect_eq "status early_data_replayed" $((ATTEMPTS - 1)) "$(stat "$json" total early_data_replayed)"
expect_eq "status: a.test hits = every attempt resumed" "$ATTEMPTS" "$(stat "$json" vhosts a.test hits)"
out=$(ngx a.test -tls1_3 -sess_out "$TMP/m2.sess")
r=$(attempt "$TMP/m2.sess")
expect_eq "a second ticket's early data is accepted once too" accepted "${r%% *}"
out=$(ngx b.test -tls1_3 -sess_in "$TMP/m2.sess")
expect_eq "b.test offered a.test's ticket: full handshake" New "$(outcome <<<"$out")"
stop_nginx "$D"

# One worker each: without shm, counters are per worker, and the status location would show
# one worker's (the workers' sharing is what step 2 shows).
echo "== two nginx servers sharing Redis and a ticket key file, 1 worker each"
head -c 48 /dev/urandom >"$TMP/ticket.key"
start_redis
STORE="redis://127.0.0.1:$REDIS_PORT/0?budget_ms=200"
declare -A NGX_PORT NGX_STATUS
for n in 1 2; do
    PORT=$(free_port) STATUS_PORT=$(free_port)
    NGX_PORT[$n]=$PORT NGX_STATUS[$n]=$STATUS_PORT
    conf "$TMP/ngx$n" yes 1 "snicache on; snicache_store \"$STORE\"; snicache_ticket_key_file $TMP/ticket.key; $EARLY"
    start_nginx "$TMP/ngx$n"
done
PORT=${NGX_PORT[1]}
before=$(rcli dbsize)
out=$(ngx a.test -tls1_3 -sess_out "$TMP/r.sess")
expect_eq "server 1: a.test full handshake" New "$(outcome <<<"$out")"
# The ticket's single-use entry is written to Redis by the worker's writer thread: wait for it.
for _ in $(seq 400); do [ "$(rcli dbsize)" -gt "$before" ] && break; sleep 0.025; done
check "Redis holds the ticket's single-use entry" test "$(rcli dbsize)" -gt "$before"
accepted=0 resumed=0 total=0
for i in $(seq 5); do
    for n in 2 1; do
        PORT=${NGX_PORT[$n]}
        r=$(attempt "$TMP/r.sess")
        total=$((total + 1))
        [ "${r%% *}" = accepted ] && accepted=$((accepted + 1))
        [ "$(cut -d' ' -f2 <<<"$r")" = Reused ] && resumed=$((resumed + 1))
    done
done
echo "       REDIS: one ticket's early data accepted $accepted times of $total attempts over 2 servers"
expect_eq "early data accepted exactly once across both servers" 1 "$accepted"
expect_eq "every attempt resumed" "$total" "$resumed"
STATUS_PORT=${NGX_STATUS[1]} s1=$(status)
STATUS_PORT=${NGX_STATUS[2]} s2=$(status)
expect_eq "status: early_data_accepted summed over both servers" 1 \
    $(($(stat "$s1" total early_data_accepted) + $(stat "$s2" total early_data_accepted)))
expect_eq "status: early_data_replayed summed over both servers" $((total - 1)) \
    $(($(stat "$s1" total early_data_replayed) + $(stat "$s2" total early_data_replayed)))

echo "== Redis down: no single-use entry can be taken, so no early data (1-RTT), never a crash"
stop_redis
PORT=${NGX_PORT[1]}
out=$(ngx a.test -tls1_3 -sess_out "$TMP/down.sess")
expect_eq "server 1, Redis down: a.test full handshake" New "$(outcome <<<"$out")"
r=$(attempt "$TMP/down.sess")
expect_eq "server 1, Redis down: the ticket resumes, its early data is rejected" "rejected Reused" "$(cut -d' ' -f1-2 <<<"$r")"
check "server 1 still serves" test -n "$(ngx a.test -tls1_3 | served)"
finish
