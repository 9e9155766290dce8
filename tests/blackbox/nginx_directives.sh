#!/usr/bin/env bash
# nginx's own directives keep their meaning under `snicache on` (Debian's real nginx, the module
# from nginx/, every nginx started here on 127.0.0.1 with its own prefix and stopped on exit):
#  1. A server with an extra listen address (a.test on PORT and PORT2, b.test on PORT only) passes
#     `nginx -t` and works: each address resumes its own servers' sessions, the status location
#     lists both groups of addresses (JSON and Prometheus).
#  2. ssl_session_ticket_key: three nginx instances. N1 has key file K80 (nginx's 80-byte
#     format); N2 has K48 then K80 (K48 seals, K80 only opens); N3 has snicache_ticket_key_file
#     K80 then K48. N1 and N3 resume each other's tickets (TLS 1.2 and 1.3); N2 resumes N1's, N1
#     does not resume N2's (sealed with K48, which N1 lacks). Both directives set: a warning.
#     Servers of one address naming different files, or a 20-byte file: `nginx -t` fails.
#  3. Ticket lifetime follows ssl_session_timeout (1h), not snicache_ticket_rotation (2s): a
#     ticket resumes 5 s later (it died at 4 s before).
#  4. `ssl_session_cache off; ssl_session_tickets off;` resumes nothing (as stock nginx);
#     `ssl_session_cache off` alone still resumes tickets.
#  5. Prometheus text parsed by prometheus_client: HELP and TYPE for every family, each family
#     once, the listener counters (unknown_sni counted without strict SNI), shm health counters
#     for an shm store, Redis counters for a redis:// store.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/nginx.sh"
PY=$ROOT/target/py/bin/python
[ -x "$PY" ] || { echo "FAIL: $PY missing (scripts/deps.sh makes target/py with prometheus_client)"; exit 1; }
make_certs a.test b.test
PORT=$(free_port)
PORT2=$(free_port)
STATUS_PORT=$(free_port)
head -c 80 /dev/urandom >"$TMP/k80.key"
head -c 48 /dev/urandom >"$TMP/k48.key"
head -c 20 /dev/urandom >"$TMP/k20.key"

# nconf DIR HTTP_DIRECTIVES A_LISTENS B_LISTENS [A_EXTRA]: $WORKERS (1) workers, a.test on
# A_LISTENS (ports) and b.test on B_LISTENS (none when empty), a status server on $STATUS_PORT
# unless NO_STATUS is set.
nconf() {
    local dir=$1 http=$2 alist=$3 blist=$4 aextra=${5:-} p
    mkdir -p "$dir/tmp"
    {
        echo "load_module $MODULE;"
        echo "worker_processes ${WORKERS:-1};"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/error.log info;"
        echo "events { worker_connections 256; }"
        echo "http {"
        for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $dir/tmp;"; done
        echo "  access_log off;"
        echo "  ssl_protocols TLSv1.2 TLSv1.3;"
        echo "  $http"
        echo "  server {"
        for p in $alist; do echo "    listen 127.0.0.1:$p ssl;"; done
        echo "    server_name a.test;"
        echo "    ssl_certificate $TMP/a.test.crt; ssl_certificate_key $TMP/a.test.key;"
        echo "    $aextra"
        echo "    location / { return 200 'server=a.test reused=\$ssl_session_reused sni=\$ssl_server_name\n'; }"
        echo "  }"
        if [ -n "$blist" ]; then
            echo "  server {"
            for p in $blist; do echo "    listen 127.0.0.1:$p ssl;"; done
            echo "    server_name b.test;"
            echo "    ssl_certificate $TMP/b.test.crt; ssl_certificate_key $TMP/b.test.key;"
            echo "    location / { return 200 'server=b.test reused=\$ssl_session_reused sni=\$ssl_server_name\n'; }"
            echo "  }"
        fi
        [ -z "${NO_STATUS:-}" ] && echo "  server { listen 127.0.0.1:$STATUS_PORT; location /status { snicache_status; } }"
        echo "}"
    } >"$dir/nginx.conf"
}
# try NAME PORT SESS_IN|- SESS_OUT|- FLAGS...: one request; prints "New|Reused server=..."
try() {
    local name=$1 port=$2 in=$3 outf=$4 out
    shift 4
    local args=(-connect "127.0.0.1:$port" -servername "$name" -ign_eof "$@")
    [ "$in" != - ] && args+=(-sess_in "$in")
    [ "$outf" != - ] && args+=(-sess_out "$outf")
    out=$(printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$name" |
        timeout 10 openssl s_client "${args[@]}" 2>"$TMP/client.err")
    echo "$(outcome <<<"$out") $(served <<<"$out" | cut -d' ' -f1)"
}
nginx_t() { nginx -t -p "$1" -c "$1/nginx.conf" 2>&1; }

echo "== 1. a.test on two addresses, b.test on one (shm store)"
D=$TMP/multi
WORKERS=2 nconf "$D" "snicache on; snicache_store shm:4m;" "$PORT $PORT2" "$PORT"
out=$(nginx_t "$D")
check "nginx -t passes ($(tail -1 <<<"$out"))" grep -q 'test is successful' <<<"$out"
WORKERS=2 start_nginx "$D"
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    for port in "$PORT" "$PORT2"; do
        expect_eq "TLS $tls :$port a.test full" "New server=a.test" "$(try a.test "$port" - "$TMP/a.$port.$tls" "$v")"
        expect_eq "TLS $tls :$port a.test resumes" "Reused server=a.test" "$(try a.test "$port" "$TMP/a.$port.$tls" - "$v")"
    done
    expect_eq "TLS $tls :$PORT b.test full" "New server=b.test" "$(try b.test "$PORT" - "$TMP/b.$tls" "$v")"
    expect_eq "TLS $tls :$PORT b.test resumes" "Reused server=b.test" "$(try b.test "$PORT" "$TMP/b.$tls" - "$v")"
    expect_eq "TLS $tls :$PORT a.test does not resume b.test's" "New server=a.test" "$(try a.test "$PORT" "$TMP/b.$tls" - "$v")"
    # b.test is not on PORT2: nginx serves its default server there, and b.test's session stays home.
    expect_eq "TLS $tls :$PORT2 b.test is served by a.test, no resumption" "New server=a.test" \
        "$(try b.test "$PORT2" "$TMP/b.$tls" - "$v")"
done
json=$(status_all)
expect_eq "status lists both groups of addresses" "$(printf '127.0.0.1:%s\n' "$PORT" "$PORT2" | LC_ALL=C sort | paste -sd'|')" \
    "$(python3 -c 'import json,sys; print("|".join(sorted(",".join(l["listen"]) for l in json.loads(sys.argv[1])["listeners"])))' "$json")"
expect_eq "status: hits on PORT2's group (a.test, TLS 1.2 and 1.3)" 2 \
    "$(python3 -c 'import json,sys,os; print([l for l in json.loads(sys.argv[1])["listeners"] if l["listen"] == ["127.0.0.1:"+sys.argv[2]]][0]["cache"]["total"]["hits"])' "$json" "$PORT2")"
# unknown SNI without strict SNI: served by the default server and counted.
try unknown.test "$PORT" - - >/dev/null
try unknown.test "$PORT2" - - >/dev/null
status '?format=prometheus' >"$TMP/prom.txt"
cat >"$TMP/prom.py" <<'EOF'
import re, sys
from prometheus_client.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
want = sys.argv[2:]
fams = list(text_string_to_metric_families(text))
names = [f.name for f in fams]
problems = []
if len(names) != len(set(names)):
    problems.append("families repeated: %s" % sorted({n for n in names if names.count(n) > 1}))
helps = re.findall(r"^# HELP (\S+) ", text, re.M)
types = re.findall(r"^# TYPE (\S+) ", text, re.M)
sampled = {re.match(r"[a-z_]+", l).group(0) for l in text.splitlines() if l and not l.startswith("#")}
for n in sampled:
    if n not in helps or n not in types:
        problems.append("%s without HELP or TYPE" % n)
for f in fams:
    if not f.documentation:
        problems.append("%s: empty HELP" % f.name)
values = {}
for f in fams:
    for s in f.samples:
        values.setdefault(s.name, []).append((s.labels, s.value))
for w in want:  # NAME=LABEL:VALUE... >=MIN
    name, _, rest = w.partition("=")
    cond, _, minimum = rest.partition(">=")
    got = sum(v for labels, v in values.get(name, []) if not cond or cond in labels.values())
    if name not in values or got < float(minimum or 0):
        problems.append("%s{%s}: %s, want >= %s" % (name, cond, values.get(name), minimum or 0))
print("; ".join(problems) or "ok %d families" % len(fams))
EOF
expect_eq "prometheus_client parses it: HELP/TYPE everywhere, no repeats, listener/shm/vhost families" ok \
    "$("$PY" "$TMP/prom.py" "$TMP/prom.txt" "snicache_unknown_sni_total=127.0.0.1:$PORT>=1" \
        "snicache_unknown_sni_total=127.0.0.1:$PORT2>=1" snicache_malformed_sni_total \
        "snicache_hits_total=b.test>=2" "snicache_hits_total=127.0.0.1:$PORT2>=2" \
        snicache_shm_lock_timeouts_total snicache_shm_mapped_bytes snicache_refusals_by_reason_total | sed 's/^ok .*/ok/')"
check "no snicache_refusals_total (it is the sum of refusals_by_reason)" \
    bash -c "! grep -q '^snicache_refusals_total' '$TMP/prom.txt'"
stop_nginx "$D"

echo "== 2. ticket key files shared by nginx instances"
NO_STATUS=1
P1=$(free_port) P2=$(free_port) P3=$(free_port)
nconf "$TMP/n1" "snicache on; ssl_session_ticket_key $TMP/k80.key;" "$P1" ""
nconf "$TMP/n2" "snicache on; ssl_session_ticket_key $TMP/k48.key; ssl_session_ticket_key $TMP/k80.key;" "$P2" ""
nconf "$TMP/n3" "snicache on; snicache_ticket_key_file $TMP/k80.key; snicache_ticket_key_file $TMP/k48.key;" "$P3" ""
for n in 1 2 3; do PORT=$(eval echo "\$P$n") start_nginx "$TMP/n$n"; done
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    for n in 1 2 3; do
        try a.test "$(eval echo "\$P$n")" - "$TMP/t$n.$tls" "$v" >/dev/null
    done
    expect_eq "TLS $tls: N3 resumes N1's ticket (K80 seals on both)" "Reused server=a.test" "$(try a.test "$P3" "$TMP/t1.$tls" - "$v")"
    expect_eq "TLS $tls: N1 resumes N3's ticket" "Reused server=a.test" "$(try a.test "$P1" "$TMP/t3.$tls" - "$v")"
    expect_eq "TLS $tls: N2 resumes N1's ticket (K80: decrypt only on N2)" "Reused server=a.test" "$(try a.test "$P2" "$TMP/t1.$tls" - "$v")"
    expect_eq "TLS $tls: N1 does not resume N2's ticket (sealed with K48)" "New server=a.test" "$(try a.test "$P1" "$TMP/t2.$tls" - "$v")"
done
for n in 1 2 3; do stop_nginx "$TMP/n$n"; done
nconf "$TMP/both" "snicache on; snicache_ticket_key_file $TMP/k48.key; ssl_session_ticket_key $TMP/k80.key;" "$P1" ""
out=$(nginx_t "$TMP/both")
check "both set: warning that ssl_session_ticket_key is ignored" grep -q 'ssl_session_ticket_key.*is ignored: "snicache_ticket_key_file" is set' <<<"$out"
check "both set: nginx -t passes" grep -q 'test is successful' <<<"$out"
nconf "$TMP/diff" "snicache on;" "$P1" "$P1" "ssl_session_ticket_key $TMP/k80.key;"
out=$(nginx_t "$TMP/diff")
check "servers of one address with different ticket key files: nginx -t fails naming both" \
    grep -q 'share listen addresses but not their "ssl_session_ticket_key" files' <<<"$out"
nconf "$TMP/short" "snicache on; snicache_ticket_key_file $TMP/k20.key;" "$P1" ""
out=$(nginx_t "$TMP/short")
check "a 20-byte key file: nginx -t fails ($(grep -o 'holds 20 bytes[^(]*' <<<"$out" | head -1))" grep -q 'holds 20 bytes, it must hold 32 to 80 bytes' <<<"$out"

echo "== 3. ticket lifetime: ssl_session_timeout 1h, snicache_ticket_rotation 2s"
PORT=$(free_port)
nconf "$TMP/life" "snicache on; snicache_ticket_rotation 2s; ssl_session_timeout 1h;" "$PORT" ""
start_nginx "$TMP/life"
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    try a.test "$PORT" - "$TMP/life.$tls" "$v" >/dev/null
done
t0=$(date +%s)
while [ "$(date +%s)" -lt $((t0 + 6)) ]; do sleep 0.2; done  # past two rotations and a bit
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    expect_eq "TLS $tls: a 6 s old ticket resumes (rotation 2s; it died at 4 s before)" "Reused server=a.test" \
        "$(try a.test "$PORT" "$TMP/life.$tls" - "$v")"
done
stop_nginx "$TMP/life"

echo "== 4. ssl_session_cache off"
for module in no yes; do
    D=$TMP/off.$module
    nconf "$D" "$([ $module = yes ] && echo 'snicache on; snicache_store shm:1m;') ssl_session_cache off; ssl_session_tickets off;" "$PORT" ""
    [ $module = no ] && sed -i '/load_module/d' "$D/nginx.conf"
    start_nginx "$D"
    for tls in 1.2 1.3; do
        v=-tls1_${tls#1.}
        sess=$TMP/off.$module.$tls
        try a.test "$PORT" - "$sess" "$v" >/dev/null
        # Stock nginx issues no session id then (s_client saves nothing): nothing to offer.
        got=$([ -s "$sess" ] && try a.test "$PORT" "$sess" - "$v" || echo "no session issued")
        check "$([ $module = yes ] && echo module || echo stock) TLS $tls, cache off, tickets off: no resumption ($got)" \
            grep -qE '^(New server=a.test|no session issued)$' <<<"$got"
    done
    stop_nginx "$D"
done
D=$TMP/off.tickets
nconf "$D" "snicache on; ssl_session_cache off; ssl_session_tickets on;" "$PORT" ""
start_nginx "$D"
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    try a.test "$PORT" - "$TMP/offt.$tls" "$v" >/dev/null
    expect_eq "module TLS $tls, cache off, tickets on: the ticket resumes" "Reused server=a.test" \
        "$(try a.test "$PORT" "$TMP/offt.$tls" - "$v")"
done
# TLS 1.2 without the ticket extension offers the session id alone: not stored, not resumed.
try a.test "$PORT" - "$TMP/offid" -tls1_2 -no_ticket >/dev/null
expect_eq "module TLS 1.2, cache off: no session id resumes" "New server=a.test" \
    "$(try a.test "$PORT" "$TMP/offid" - -tls1_2 -no_ticket)"
stop_nginx "$D"

echo "== 5. Redis counters in the Prometheus text"
NO_STATUS=""
if command -v redis-server >/dev/null; then
    source "$(dirname "$0")/lib/redis.sh"
    trap 'for d in "${STARTED[@]}"; do stop_nginx "$d"; done; [ -n "$REDIS_PID" ] && kill -9 $REDIS_PID 2>/dev/null; cleanup' EXIT
    start_redis
    D=$TMP/redis
    nconf "$D" "snicache on; snicache_store redis://127.0.0.1:$REDIS_PORT; snicache_ticket_key_file $TMP/k48.key;" "$PORT" ""
    start_nginx "$D"
    try a.test "$PORT" - "$TMP/r.sess" -tls1_2 -no_ticket >/dev/null
    status '?format=prometheus' >"$TMP/prom.redis.txt"
    expect_eq "redis store: prometheus_client parses it, Redis and listener families present" ok \
        "$("$PY" "$TMP/prom.py" "$TMP/prom.redis.txt" snicache_remote_writes_total snicache_remote_breaker_state \
            snicache_remote_hits_total snicache_unknown_sni_total | sed 's/^ok .*/ok/')"
    check "redis store: no shm families" bash -c "! grep -q '^snicache_shm_' '$TMP/prom.redis.txt'"
    stop_nginx "$D"
    stop_redis
else
    not_ok "redis-server not installed (scripts/deps.sh installs it)"
fi
finish
