#!/usr/bin/env bash
# A fleet of two nginx servers with the module and `snicache_store redis://`, each with 2 prefork
# workers (listening with reuseport, so the kernel spreads connections over both), sharing one
# redis-server (Debian's, on a free loopback port) and one snicache_ticket_key_file (the seal
# key derives from it). The caches are made in each master before the fork; every worker starts
# its own Redis writer and connections on its first handshake.
#  - sessions made on nginx 1 (TLS 1.2 and 1.3, stateful: ssl_session_tickets off) reach Redis
#    from both of its workers, under the vhost's keys;
#  - each resumes on nginx 2 (served by both of its workers) under the same name, and not under
#    the other server name.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/nginx.sh"
source "$(dirname "$0")/lib/redis.sh"
trap 'for d in "${STARTED[@]}"; do stop_nginx "$d"; done
      [ -n "$REDIS_PID" ] && kill -9 $REDIS_PID 2>/dev/null; cleanup' EXIT
make_certs a.test b.test
head -c 48 /dev/urandom >"$TMP/ticket.key"
start_redis

# A generous lookup budget: the first lookup of a worker also connects, on a loaded machine.
STORE="redis://127.0.0.1:$REDIS_PORT/0?budget_ms=200"
LISTEN_FLAGS=" reuseport"
HTTP="snicache on; snicache_store \"$STORE\"; snicache_ticket_key_file $TMP/ticket.key;"
declare -A NGX_PORT
for n in 1 2; do
    PORT=$(free_port) STATUS_PORT=$(free_port)
    NGX_PORT[$n]=$PORT
    conf "$TMP/ngx$n" yes 2 "$HTTP" "ssl_session_tickets off;"
    start_nginx "$TMP/ngx$n"
done
workers() { pgrep -P "$(cat "$TMP/ngx$1/nginx.pid")" | wc -l; }
expect_eq "nginx 1 runs 2 workers" 2 "$(workers 1)"
expect_eq "nginx 2 runs 2 workers" 2 "$(workers 2)"
pid_of() { grep -ao 'pid=[0-9]*' | head -1; }

# wait_keys N: until Redis holds N keys for a.test (10 s deadline); prints how many it holds.
wait_keys() {
    local n=0
    for _ in $(seq 400); do
        n=$(rcli --scan --pattern 'snicache:v1:a.test:*' | wc -l)
        [ "$n" -ge "$1" ] && break
        sleep 0.025
    done
    echo "$n"
}

SESSIONS=8
echo "== $SESSIONS sessions per TLS version made on nginx 1 reach Redis"
declare -A made_by served_by
made=0
for tls in 1.2 1.3; do
    PORT=${NGX_PORT[1]}
    for i in $(seq $SESSIONS); do
        out=$(ngx a.test "-tls1_${tls#1.}" -sess_out "$TMP/s$tls.$i.sess")
        [ "$(outcome <<<"$out")" = New ] || not_ok "nginx 1, TLS $tls session $i: full handshake"
        made_by[$(pid_of <<<"$out")]=1
        made=$((made + 1))
        # Each worker writes from its own thread: wait for this session's key (TLS 1.3 sessions
        # do not show the id they are stored under, so count a.test's keys).
        got=$(wait_keys $made)
        [ "$got" -ge "$made" ] || { not_ok "TLS $tls session $i never reached Redis ($got keys)"; break 2; }
    done
done
expect_eq "sessions made on nginx 1 by both of its workers" 2 "${#made_by[@]}"
check "Redis holds a.test's $made sessions ($(wait_keys $made) keys)" test "$(wait_keys $made)" -ge $made
expect_eq "Redis holds no key for b.test" 0 "$(rcli --scan --pattern 'snicache:v1:b.test:*' | wc -l)"

echo "== they resume on nginx 2 under a.test, and not under b.test"
PORT=${NGX_PORT[2]}
for tls in 1.2 1.3; do
    resumed=0 refused=0
    for i in $(seq $SESSIONS); do
        out=$(ngx a.test "-tls1_${tls#1.}" -sess_in "$TMP/s$tls.$i.sess")
        [ "$(served <<<"$out")" = "server=a.test reused=r sni=a.test" ] && resumed=$((resumed + 1))
        served_by[$(pid_of <<<"$out")]=1
        out=$(ngx b.test "-tls1_${tls#1.}" -sess_in "$TMP/s$tls.$i.sess")
        [ "$(outcome <<<"$out")" = New ] && [ "$(served <<<"$out")" = "server=b.test reused=. sni=b.test" ] &&
            refused=$((refused + 1))
    done
    expect_eq "TLS $tls: nginx 2 resumes nginx 1's sessions under a.test" $SESSIONS $resumed
    expect_eq "TLS $tls: nginx 2 gives b.test a full handshake with them" $SESSIONS $refused
done
expect_eq "resumed on nginx 2 by both of its workers" 2 "${#served_by[@]}"
check "nginx error logs: no redis store warning" sh -c "! grep -h 'redis store' '$TMP/ngx1/error.log' '$TMP/ngx2/error.log' | grep -v '\[info\]' | grep ."
finish
