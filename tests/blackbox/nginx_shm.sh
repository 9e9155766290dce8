#!/usr/bin/env bash
# The module's shm store as an nginx shared zone (Debian's nginx, the module built here).
#  1. Reload keeps sessions: 2 workers, `snicache_store shm:16m`; sessions made before
#     `nginx -s reload` (TLS 1.2 session ids, TLS 1.3 stateful sessions with tickets off, and
#     with tickets on and a ticket key file, TLS 1.2 and 1.3 tickets) resume after it, once
#     every old worker is gone; the error log says the store was kept. A reload adding a
#     server name (another layout) makes a new store in the zone, which works at once.
#  2. A failed reload keeps the old configuration serving: `shm:1k` (refused at parse time,
#     naming file:line), and a zone nginx cannot make (`shm:900g`, past RAM + swap; only where
#     the kernel refuses such a mapping, overcommit_memory 0): the master stays up, the old
#     workers serve, and the sessions still resume.
#  3. Memory at start with a large store (`shm:300m`): the master's and each worker's RssShmem
#     (shared pages they touched) and the system's Shmem growth stay small (stock nginx's
#     `shared:SSL:300m` is measured beside it); `nginx -t` too.
#  4. No snicache_store with 4 workers: the store is a shared zone, a session resumes in
#     every worker.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/nginx.sh"
make_certs a.test b.test
PORT=$(free_port)
STATUS_PORT=$(free_port)
head -c 48 /dev/urandom >"$TMP/ticket.key"

master() { cat "$1/nginx.pid"; }
workers() { pgrep -P "$(master "$1")" | sort | xargs; }
# reload DIR: SIGHUP, then waits until none of the workers from before is left.
reload() {
    local dir=$1 old
    old=$(workers "$dir")
    kill -HUP "$(master "$dir")"
    for _ in $(seq 300); do
        local left=0 p
        for p in $old; do kill -0 "$p" 2>/dev/null && left=1; done
        [ $left = 0 ] && [ -n "$(workers "$dir")" ] && return 0
        sleep 0.1
    done
    echo "       old workers still there after 30 s: $old / now $(workers "$dir")"
    return 1
}
# sessions LABEL FLAGS...: makes one session per TLS version into $TMP/LABEL.VERSION.sess.
sessions() {
    local label=$1 tls out
    shift
    for tls in 1.2 1.3; do
        out=$(ngx a.test "-tls1_${tls#1.}" -sess_out "$TMP/$label.$tls.sess" "$@")
        expect_eq "$label TLS $tls: full handshake before the reload" New "$(outcome <<<"$out")"
    done
}
# resumes LABEL WHEN: each session made by `sessions LABEL` resumes.
resumes() {
    local label=$1 when=$2 tls out
    for tls in 1.2 1.3; do
        out=$(ngx a.test "-tls1_${tls#1.}" -sess_in "$TMP/$label.$tls.sess")
        expect_eq "$label TLS $tls: resumes $when" Reused "$(outcome <<<"$out")"
    done
}

echo "== 1. reload keeps sessions (shm:16m, 2 workers)"
D=$TMP/reload
KEYS="snicache on; snicache_store shm:16m; snicache_ticket_key_file $TMP/ticket.key;"
conf "$D" yes 2 "$KEYS" "ssl_session_tickets off;"
start_nginx "$D"
sessions ids
# Same store, another header: a reload that keeps the zone.
conf "$D" yes 2 "$KEYS" "ssl_session_tickets off; add_header X-Reloaded 1;"
check "reload: old workers gone" reload "$D"
resumes ids "after nginx -s reload (session ids, stateful TLS 1.3: from the kept zone)"
check "error log: the store was kept" grep -q 'kept the store in shared memory zone "snicache_store#0"' "$D/error.log"
# Tickets on (OpenSSL then reads a TLS 1.3 PSK identity as a ticket, not as a session id).
conf "$D" yes 2 "$KEYS" "ssl_session_tickets on;"
check "reload to tickets on: old workers gone" reload "$D"
sessions tickets
conf "$D" yes 2 "$KEYS" "ssl_session_tickets on; add_header X-Reloaded 2;"
check "reload again: old workers gone" reload "$D"
resumes tickets "after nginx -s reload (tickets, same key file)"
# One more name: another store layout (vhost count) in the same zone. The new store is made
# over it; the old workers, until they exit, stop using it instead of writing into it.
conf "$D" yes 2 "$KEYS" "ssl_session_tickets off;" "server_name alias.test;"
check "reload with one more server name: old workers gone" reload "$D"
check "error log: a new store was made in the kept zone" grep -q 'made a new store in shared memory zone "snicache_store#0"' "$D/error.log"
sessions relayout
resumes relayout "in the new layout"

echo "== 2. a failed reload keeps the old configuration serving"
good_master=$(master "$D")
cp "$D/nginx.conf" "$TMP/good.conf"
conf "$D" yes 2 "snicache on; snicache_store shm:1k;" "ssl_session_tickets on;"
out=$(nginx -t -p "$D" -c "$D/nginx.conf" 2>&1)
echo "       $(grep -m1 emerg <<<"$out")"
check "nginx -t: shm:1k refused, naming nginx.conf:LINE" grep -Eq '"snicache_store" value "shm:1k" refused: .* in .*nginx.conf:[0-9]+' <<<"$out"
check "nginx -t: test failed" grep -q 'test failed' <<<"$out"
old=$(workers "$D")
kill -HUP "$good_master"
for _ in $(seq 100); do grep -q 'shm:1k' "$D/error.log" && break; sleep 0.1; done
check "reload with shm:1k: the emerg is logged" grep -q '"snicache_store" value "shm:1k" refused' "$D/error.log"
check "reload with shm:1k: the master is still up" kill -0 "$good_master"
expect_eq "reload with shm:1k: the same workers serve" "$old" "$(workers "$D")"
resumes relayout "after the failed reload"
mem_kb=$(awk '/MemTotal|SwapTotal/ {s += $2} END {print s}' /proc/meminfo)
if [ "$(cat /proc/sys/vm/overcommit_memory)" = 0 ] && [ "$mem_kb" -lt $((800 * 1024 * 1024)) ]; then
    conf "$D" yes 2 "snicache on; snicache_store shm:900g;" "ssl_session_tickets on;"
    kill -HUP "$good_master"
    for _ in $(seq 100); do grep -q 'snicache_store#0.*failed\|shm.*900g\|mmap.*failed' "$D/error.log" && break; sleep 0.1; done
    echo "       $(grep -m1 'mmap\|ngx_shm_alloc\|no room' "$D/error.log" | sed 's/^.*\] //')"
    check "reload with shm:900g: nginx cannot make the zone (logged)" grep -q 'mmap(MAP_ANON|MAP_SHARED, [0-9]*) failed' "$D/error.log"
    check "reload with shm:900g: the master is still up" kill -0 "$good_master"
    expect_eq "reload with shm:900g: the same workers serve" "$old" "$(workers "$D")"
    resumes relayout "after the second failed reload"
else
    echo "       (shm:900g not tried: overcommit_memory $(cat /proc/sys/vm/overcommit_memory), RAM+swap ${mem_kb} kB)"
fi
stop_nginx "$D"

echo "== 3. memory at start with a large store"
shmem() { awk '/^Shmem:/ {print $2}' /proc/meminfo; }
rss_shmem() { local p t=0; for p in "$@"; do t=$((t + $(awk '/^RssShmem:/ {print $2}' "/proc/$p/status"))); done; echo $t; }
for variant in stock module; do
    D=$TMP/big.$variant
    if [ $variant = stock ]; then
        conf "$D" no 2 "ssl_session_cache shared:SSL:300m;"
    else
        conf "$D" yes 2 "snicache on; snicache_store shm:300m;"
    fi
    s0=$(shmem)
    start_nginx "$D"
    ngx a.test >/dev/null
    s1=$(shmem)
    m=$(rss_shmem "$(master "$D")")
    w=$(rss_shmem $(workers "$D"))
    echo "       $variant 300m: system Shmem +$((s1 - s0)) kB (other processes count too), master RssShmem $m kB, workers RssShmem $w kB (all $(workers "$D" | wc -w))"
    if [ $variant = module ]; then
        check "module shm:300m: master touched < 8 MB of the zone ($m kB)" test "$m" -lt 8192
        check "module shm:300m: workers touched < 8 MB of it ($w kB)" test "$w" -lt 8192
    fi
    stop_nginx "$D"
    t_kb=$("$ROOT/target/py/bin/python" -c 'import resource,subprocess,sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' nginx -t -p "$D" -c "$D/nginx.conf" 2>/dev/null || echo 0)
    echo "       $variant 300m: nginx -t max RSS $t_kb kB"
    [ $variant = module ] && check "module shm:300m: nginx -t max RSS < 64 MB (${t_kb} kB)" test "$t_kb" -lt 65536
done

echo "== 4. no snicache_store, 4 workers: a shared zone"
D=$TMP/default
conf "$D" yes 4 "snicache on;" "ssl_session_tickets off;"
start_nginx "$D"
out=$(ngx a.test -sess_out "$TMP/default.sess")
expect_eq "full handshake" New "$(outcome <<<"$out")"
resumed=0
pids=""
for i in $(seq 20); do
    out=$(ngx a.test -sess_in "$TMP/default.sess")
    [ "$(outcome <<<"$out")" = Reused ] && resumed=$((resumed + 1))
    pids="$pids $(grep -ao 'pid=[0-9]*' <<<"$out" | head -1)"
done
expect_eq "20 of 20 reconnections resume" 20 "$resumed"
echo "       served by: $(tr ' ' '\n' <<<"$pids" | sort | uniq -c | xargs)"
check "the default store is a shared zone (error log)" grep -q 'store in shared memory zone "snicache_store#0"' "$D/error.log"
check "status JSON has the store health (\"shm\")" grep -q "\"shm\":{\"lock_timeouts\":" <<<"$(status)"
stop_nginx "$D"
finish
