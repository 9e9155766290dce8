#!/usr/bin/env bash
# The client matrix: real client stacks, each keeping its sessions its own way, make 10
# sequential connections (9 could resume) to one name, against
#   - stock nginx (`ssl_session_cache shared:SSL:10m`, 2 workers): the reference,
#   - nginx with the snicache module (shm store, 2 workers),
#   - the demo server with the memory store (2 threads) and the shm store (2 worker processes),
# each with tickets on and off, TLS 1.2 and TLS 1.3 (pinned on the server; clients offer both).
# Clients:
#   openssl  Python's ssl (OpenSSL 3), offering the newest session it was given (lib/py_client.py)
#   gnutls   libgnutls, keeping its latest session data (lib/gnutls_client.c)
#   curl     one curl process (OpenSSL), 10 URLs, `Connection: close`
#   nss      tstclnt -L 10 (NSS's own client session cache, tickets enabled with -u)
#   boring   BoringSSL through `boring`: the newest session, TLS 1.3 sessions used once, as Chrome
#            (examples/client_matrix.rs)
#   rustls   rustls's default ticket store (examples/client_matrix.rs)
# Resumption is counted from the client side with each stack's own indication (session_reused,
# gnutls_session_is_resumed, no Certificate message in curl -v, NSS's cache-hit counter,
# SSL_session_reused, HandshakeKind::Resumed) and cross-checked per connection with what the
# server said in the response (demo: resumed=1, nginx: $ssl_session_reused), and per server
# configuration with its counters (demo /stats hits, module status hits, nginx access log).
# The check: every (client, configuration) cell resumes 9 of 9 wherever stock nginx does for that
# client, tickets setting and TLS version. Prints the matrix (resumed/9 per cell).
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/nginx.sh"
make_certs a.test b.test
N=10
NAME=a.test
CLIENT_NAMES=(openssl gnutls curl nss boring rustls)

(cd "$ROOT" && cargo build --locked --quiet --example client_matrix) || { echo "FAIL: cannot build examples/client_matrix"; exit 1; }
RUST_CLIENT=$ROOT/target/debug/examples/client_matrix
# shellcheck disable=SC2046
cc -Wall -Wextra -Werror -o "$TMP/gnutls_client" "$ROOT/tests/blackbox/lib/gnutls_client.c" \
    $(pkg-config --cflags --libs gnutls) || { echo "FAIL: cannot build the GnuTLS client (libgnutls28-dev)"; exit 1; }
printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$NAME" >"$TMP/request"

# Each run_CLIENT PORT prints one line per connection: "CLIENT_SAYS SERVER_SAYS" (1 resumed,
# 0 full, x failed); the server's word comes from the response body.
# server_says FILE: 1 or 0 for each response body line in FILE (demo: resumed=1, nginx: reused=r).
server_says() { awk '/resumed=[01]|reused=[r.]/ { print ($0 ~ /resumed=1|reused=r/) ? 1 : 0 }' "$1"; }
conn_lines() { # output of the clients that print "conn=I resumed=R proto=P body=B"
    awk '{ r = "x"; if ($0 ~ /^conn=[0-9]+ resumed=[01] proto=TLS/) r = substr($2, 9, 1)
           b = $0; sub(/^[^ ]* [^ ]* [^ ]* body=/, "", b)
           s = (b ~ /resumed=1|reused=r/) ? 1 : (b ~ /resumed=0|reused=\./) ? 0 : "x"
           print r, s }'
}
run_openssl() { timeout 60 python3 "$ROOT/tests/blackbox/lib/py_client.py" "$1" "$NAME" "$N" | conn_lines; }
run_gnutls() { timeout 60 "$TMP/gnutls_client" "$1" "$NAME" "$N" | conn_lines; }
run_boring() { timeout 60 "$RUST_CLIENT" boring "$1" "$NAME" "$N" | conn_lines; }
run_rustls() { timeout 60 "$RUST_CLIENT" rustls "$1" "$NAME" "$N" | conn_lines; }
run_curl() {
    local urls=() i
    for i in $(seq "$N"); do urls+=("https://$NAME:$1/"); done
    timeout 60 curl -sk -v --resolve "$NAME:$1:127.0.0.1" -H 'Connection: close' "${urls[@]}" \
        >"$TMP/curl.out" 2>"$TMP/curl.err"
    # curl -v lists the handshake messages: a full handshake has the server's Certificate.
    awk '/^\* Connected to / { if (n++) print (cert ? 0 : 1); cert = 0 }
         /\(IN\), TLS handshake, Certificate \(11\)/ { cert = 1 }
         END { if (n) print (cert ? 0 : 1) }' "$TMP/curl.err" >"$TMP/curl.client"
    server_says "$TMP/curl.out" >"$TMP/curl.server"
    paste -d' ' "$TMP/curl.client" "$TMP/curl.server"
}
run_nss() {
    timeout 60 tstclnt -h 127.0.0.1 -p "$1" -a "$NAME" -D -o -u -L "$N" -A "$TMP/request" \
        </dev/null >"$TMP/nss.out" 2>"$TMP/nss.err"
    # After each connection tstclnt prints NSS's client statistics: "H cache hits; ..." counts
    # the handshakes that resumed so far.
    awk '/ cache hits; / { print ($1 > last ? 1 : 0); last = $1 }' "$TMP/nss.err" >"$TMP/nss.client"
    server_says "$TMP/nss.out" >"$TMP/nss.server"
    paste -d' ' "$TMP/nss.client" "$TMP/nss.server"
}

# measure ROW PORT: runs every client against the server on PORT; stores the cells in CELL[ROW,CLIENT]
# (resumed of the 9 possible, from the client side) and checks that client and server agree on
# every connection. Sets ROW_RESUMED to the resumptions the server reported in the responses.
declare -A CELL
ROWS=()
measure() {
    local row=$1 port=$2 c lines conns resumed_c resumed_s disagree t0
    ROWS+=("$row")
    ROW_RESUMED=0
    for c in "${CLIENT_NAMES[@]}"; do
        t0=${EPOCHREALTIME/./}
        lines=$("run_$c" "$port")
        t0=$(((${EPOCHREALTIME/./} - t0) / 1000))
        conns=$(grep -c '^[01] [01]$' <<<"$lines")
        resumed_c=$(grep -c '^1 ' <<<"$lines")
        resumed_s=$(grep -c ' 1$' <<<"$lines")
        disagree=$(grep -c '^0 1$\|^1 0$' <<<"$lines")
        CELL[$row,$c]=$resumed_c
        ROW_RESUMED=$((ROW_RESUMED + resumed_s))
        if [ "$conns" != "$N" ] || [ "$disagree" != 0 ]; then
            not_ok "$row, $c: $conns of $N connections answered, $disagree where client and server disagree on resumption ($(tr '\n' ',' <<<"$lines"))"
        else
            echo "       $row, $c: resumed $resumed_c/9 ($(cut -d' ' -f1 <<<"$lines" | tr -d '\n'), $t0 ms)"
        fi
    done
}

STATUS_PORT=$(free_port)
# nginx ROW MODULE(yes|no) TICKETS TLS HTTP_DIRECTIVES: one nginx, the clients, its counters.
nginx_row() {
    local row=$1 module=$2 tickets=$3 tls=$4 http=$5 d
    d=$TMP/ngx.$RANDOM
    PORT=$(free_port)
    conf "$d" "$module" "$WORKERS" "$http ssl_session_tickets $tickets;"
    sed -i "s/ssl_protocols .*/ssl_protocols TLSv$tls;/" "$d/nginx.conf"
    start_nginx "$d"
    measure "$row" "$PORT"
    expect_eq "$row: access log: resumed requests = resumptions the responses showed" "$ROW_RESUMED" \
        "$(grep -c "^$NAME r TLSv$tls$" "$d/access.log")"
    if [ "$module" = yes ]; then
        expect_eq "$row: status total hits = resumptions the responses showed" "$ROW_RESUMED" \
            "$(stat "$(status)" total hits)"
    fi
    stop_nginx "$d"
}

# nginx_rows LABEL MODULE(yes|no) HTTP_DIRECTIVES: nginx_row with tickets on and off, TLS 1.2 and 1.3.
nginx_rows() {
    local tickets tls
    for tickets in on off; do
        for tls in 1.2 1.3; do
            nginx_row "$1, tickets $tickets, TLS $tls" "$2" "$tickets" "$tls" "$3"
        done
    done
}

WORKERS=2
nginx_rows "stock nginx" no "ssl_session_cache shared:SSL:10m;"

# The module's shm store, as nginx.sh probes it; the memory store with one worker otherwise.
STORE=shm:16m
D=$TMP/probe
PORT=$(free_port)
conf "$D" yes 2 "snicache on; snicache_store $STORE;"
if ! nginx -t -p "$D" -c "$D/nginx.conf" >"$D/t.out" 2>&1; then
    echo "       shm store refused by the module: memory store, 1 worker"
    STORE=memory:16m
    WORKERS=1
fi
nginx_rows "nginx+snicache $STORE" yes "snicache on; snicache_store $STORE;"

for store in memory shm; do
    for tickets in on off; do
        for tls in 1.2 1.3; do
            row="demo $store, tickets $tickets, TLS $tls"
            if [ "$store" = memory ]; then flags=(--store memory:10m --threads 2); else flags=(--store shm:10m --workers 2 --threads 1); fi
            start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --tickets "$tickets" \
                --tls-min "$tls" --tls-max "$tls" "${flags[@]}"
            measure "$row" "$PORT"
            expect_eq "$row: /stats total hits = resumptions the responses showed" "$ROW_RESUMED" \
                "$(stat "$(stats_json)" total hits)"
            expect_eq "$row: server log: resumed handshakes = resumptions the responses showed" "$ROW_RESUMED" \
                "$(logged "$NAME" resumed)"
            stop_server
        done
    done
done

# The matrix, each configuration beside stock nginx's with the same tickets setting and TLS version,
# and the rule: 9/9 wherever stock nginx resumes 9/9 (same client, tickets, TLS).
# SNICACHE_CLIENTS_MD=FILE also writes it as a Markdown table (for BENCHMARKS.md).
ORDERED=()
for tickets in on off; do
    for tls in 1.2 1.3; do
        for row in "${ROWS[@]}"; do
            [[ $row == *", tickets $tickets, TLS $tls" ]] && ORDERED+=("$row")
        done
    done
done
echo
echo "== client matrix: resumed of 9 possible (10 sequential connections per client)"
printf '%-44s' "server configuration"
for c in "${CLIENT_NAMES[@]}"; do printf ' %7s' "$c"; done
echo
md="| server configuration |$(printf ' %s |' "${CLIENT_NAMES[@]}")"$'\n'"|---|$(printf -- '---:|%.0s' "${CLIENT_NAMES[@]}")"
for row in "${ORDERED[@]}"; do
    printf '%-44s' "$row"
    md+=$'\n'"| $row |"
    ref="stock nginx, ${row#*, }"
    for c in "${CLIENT_NAMES[@]}"; do
        mark=" "
        [ "${CELL[$ref,$c]}" = 9 ] && [ "${CELL[$row,$c]}" != 9 ] && mark="!"
        printf ' %5s%s ' "${CELL[$row,$c]}/9" "$mark"
        md+=" ${CELL[$row,$c]}/9$([ "$mark" = "!" ] && echo " **!**") |"
    done
    echo
done
echo "(! = below stock nginx's 9/9 for the same client, tickets setting and TLS version)"
[ -z "${SNICACHE_CLIENTS_MD:-}" ] || echo "$md" >"$SNICACHE_CLIENTS_MD"
stock_short=()
for row in "${ROWS[@]}"; do
    [[ $row == stock* ]] || continue
    for c in "${CLIENT_NAMES[@]}"; do
        [ "${CELL[$row,$c]}" = 9 ] || stock_short+=("$row, $c: ${CELL[$row,$c]}/9")
    done
done
# The reference itself: every client resumes 9/9 on stock nginx (as measured when this was
# written); a reference that resumes nothing would make the comparison empty.
expect_eq "stock nginx: every client resumes 9/9 in every configuration" "" "${stock_short[*]}"
for row in "${ROWS[@]}"; do
    [[ $row == stock* ]] && continue
    ref="stock nginx, ${row#*, }"
    for c in "${CLIENT_NAMES[@]}"; do
        [ "${CELL[$ref,$c]}" = 9 ] || continue
        expect_eq "$row, $c: resumed/9 as stock nginx" 9 "${CELL[$row,$c]}"
    done
done

finish
