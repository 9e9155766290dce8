#!/usr/bin/env bash
# ngx_stream_snicache_module in Debian's real nginx with libnginx-mod-stream: TLS termination of
# TCP (`listen ... ssl` in stream{}, answering with `return`), every nginx started here on
# 127.0.0.1 with its own prefix and stopped on exit.
#  1. Baseline: stock nginx, one stream server whose ssl_certificate holds $ssl_server_name
#     (a.test and b.test certificates), ssl_session_cache shared: a session made under a.test
#     resumes under b.test.
#  2. With the module (shm store, 2 workers): a.test resumes its own session, b.test offered
#     a.test's gets a full handshake, TLS 1.2 and 1.3, session ids and tickets.
#  3. The http status location lists the stream server's cache (JSON and Prometheus, parsed by
#     prometheus_client).
#  4. ssl_session_ticket_key: two stream servers naming the same key file resume each other's
#     tickets; ssl_session_cache off with tickets off resumes nothing.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/nginx.sh"
STREAM_SO=/usr/lib/nginx/modules/ngx_stream_module.so
[ -f "$STREAM_SO" ] || { echo "FAIL: $STREAM_SO missing (scripts/deps.sh installs libnginx-mod-stream)"; exit 1; }
STREAM_MODULE=$ROOT/target/nginx/ngx_stream_snicache_module.so
PY=$ROOT/target/py/bin/python
make_certs a.test b.test
# ssl_certificate with variables: the workers read the files (as nginx's unprivileged user).
chmod 755 "$TMP" && chmod 644 "$TMP"/*.key
PORT=$(free_port)
PORT2=$(free_port)
STATUS_PORT=$(free_port)
head -c 80 /dev/urandom >"$TMP/ticket.key"

# sconf DIR MODULE(yes|no) WORKERS STREAM_DIRECTIVES [SECOND_SERVER(yes)]: one stream server on
# $PORT (and one on $PORT2) with the certificate of the SNI; an http status server with the module.
sconf() {
    local dir=$1 module=$2 workers=$3 directives=$4 second=${5:-} p
    mkdir -p "$dir/tmp"
    {
        echo "load_module $STREAM_SO;"
        [ "$module" = yes ] && echo "load_module $MODULE;" && echo "load_module $STREAM_MODULE;"
        echo "worker_processes $workers;"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/error.log info;"
        echo "events { worker_connections 256; }"
        echo "stream {"
        echo "  ssl_protocols TLSv1.2 TLSv1.3;"
        echo "  $directives"
        for p in $PORT $([ -n "$second" ] && echo "$PORT2"); do
            echo "  server {"
            echo "    listen 127.0.0.1:$p ssl;"
            echo "    ssl_certificate $TMP/\$ssl_server_name.crt;"
            echo "    ssl_certificate_key $TMP/\$ssl_server_name.key;"
            echo "    return \"port=$p sni=\$ssl_server_name reused=\$ssl_session_reused\\n\";"
            echo "  }"
        done
        echo "}"
        echo "http {"
        for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $dir/tmp;"; done
        echo "  access_log off;"
        echo "  server { listen 127.0.0.1:$STATUS_PORT; $([ "$module" = yes ] && echo 'location /status { snicache_status; }') }"
        echo "}"
    } >"$dir/nginx.conf"
}
# try NAME PORT SESS_IN|- SESS_OUT|- FLAGS...: "New|Reused sni=NAME"
try() {
    local name=$1 port=$2 in=$3 outf=$4 out
    shift 4
    local args=(-connect "127.0.0.1:$port" -servername "$name" -ign_eof "$@")
    [ "$in" != - ] && args+=(-sess_in "$in")
    [ "$outf" != - ] && args+=(-sess_out "$outf")
    out=$(timeout 10 openssl s_client "${args[@]}" </dev/null 2>"$TMP/client.err")
    echo "$(outcome <<<"$out") $(grep -ao 'sni=[^ ]*' <<<"$out" | head -1)"
}

echo "== 1. baseline: stock stream server, ssl_certificate \$ssl_server_name, shared cache"
D=$TMP/stock
sconf "$D" no 1 "ssl_session_cache shared:S:1m; ssl_session_tickets off;"
start_nginx "$D"
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    expect_eq "stock TLS $tls: a.test full" "New sni=a.test" "$(try a.test "$PORT" - "$TMP/stock.$tls" "$v")"
    # (on TLS 1.2 the resumed session even reports the old name: $ssl_server_name is a.test)
    got=$(try b.test "$PORT" "$TMP/stock.$tls" - "$v")
    expect_eq "stock TLS $tls: b.test RESUMES a.test's session (the flaw snicache closes; $got)" Reused "${got%% *}"
done
stop_nginx "$D"

echo "== 2. module: snicache on, shm store, 2 workers"
for tickets in off on; do
    D=$TMP/module.$tickets
    sconf "$D" yes 2 "snicache on; snicache_store shm:4m; ssl_session_tickets $tickets;"
    start_nginx "$D"
    for tls in 1.2 1.3; do
        v=-tls1_${tls#1.}
        s=$TMP/m.$tickets.$tls
        expect_eq "tickets $tickets TLS $tls: a.test full" "New sni=a.test" "$(try a.test "$PORT" - "$s" "$v")"
        # Two workers: repeat so both are likely asked; every try must resume.
        for i in 1 2 3; do
            expect_eq "tickets $tickets TLS $tls: a.test resumes its own session ($i)" "Reused sni=a.test" \
                "$(try a.test "$PORT" "$s" - "$v")"
        done
        expect_eq "tickets $tickets TLS $tls: b.test does not resume a.test's session" "New sni=b.test" \
            "$(try b.test "$PORT" "$s" - "$v")"
    done
    if [ $tickets = on ]; then
        json=$(status_all)
        expect_eq "http status lists the stream server's addresses" "127.0.0.1:$PORT" \
            "$(python3 -c 'import json,sys; print(",".join(",".join(l["listen"]) for l in json.loads(sys.argv[1])["listeners"]))' "$json")"
        expect_eq "status hits: 3 resumptions x 2 versions" 6 "$(stat "$(status)" total hits)"
        expect_eq "status refusals by the sni rule (b.test offered a.test's session)" 2 \
            "$(stat "$(status)" total refusals sni)"
        status '?format=prometheus' >"$TMP/prom.txt"
        expect_eq "Prometheus text parses (prometheus_client) with the stream listener's families" ok \
            "$("$PY" - "$TMP/prom.txt" "$PORT" <<'EOF'
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
listen = "127.0.0.1:" + sys.argv[2]
hits = [s for s in fams["snicache_hits"].samples if s.labels.get("listen") == listen]
sni = [s for s in fams["snicache_refusals_by_reason"].samples
       if s.labels.get("listen") == listen and s.labels.get("reason") == "sni"]
ok = hits and hits[0].value == 6 and sni and sni[0].value == 2 and "snicache_shm_mapped_bytes" in fams \
     and all(f.documentation for f in fams.values())
print("ok" if ok else "bad: %s %s %s" % (hits, sni, sorted(fams)))
EOF
)"
    fi
    stop_nginx "$D"
done

echo "== 3. ssl_session_ticket_key shared by two stream servers; ssl_session_cache off"
D=$TMP/keys
sconf "$D" yes 1 "snicache on; ssl_session_ticket_key $TMP/ticket.key;" yes
start_nginx "$D"
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    try a.test "$PORT" - "$TMP/k.$tls" "$v" >/dev/null
    expect_eq "TLS $tls: the server on PORT2 resumes PORT's ticket (same key file)" "Reused sni=a.test" \
        "$(try a.test "$PORT2" "$TMP/k.$tls" - "$v")"
    expect_eq "TLS $tls: ... not under another name" "New sni=b.test" "$(try b.test "$PORT2" "$TMP/k.$tls" - "$v")"
done
stop_nginx "$D"
D=$TMP/off
sconf "$D" yes 1 "snicache on; ssl_session_cache off; ssl_session_tickets off;"
start_nginx "$D"
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    try a.test "$PORT" - "$TMP/off.$tls" "$v" >/dev/null
    expect_eq "TLS $tls: ssl_session_cache off, tickets off: no resumption" "New sni=a.test" \
        "$(try a.test "$PORT" "$TMP/off.$tls" - "$v")"
done
stop_nginx "$D"
finish
