#!/usr/bin/env bash
# ngx_http_snicache_module in Debian's real nginx (nginx/, built here with `make -C nginx`).
# Two server blocks with different certificates on one port, 2 workers, each nginx started by
# this test on 127.0.0.1 with its own prefix, config and pid file, and stopped on exit.
#  1. Baseline: stock nginx (`ssl_session_cache shared:SSL:1m; ssl_session_tickets off;`) resumes
#     a session made on a.test when the client sends SNI b.test.
#  2. With the module (shm store, 2 workers): same-name resumption works, the other name gets a
#     full handshake, TLS 1.2 and 1.3, session ids and tickets; the request is served by the
#     server block of the SNI; the status location's counts match what the clients saw.
#  3. A fatal alert (a forged record after a resumed handshake) invalidates the session.
#  4. h2load: 10,000 connections (`Connection: close`) over both names: no errors, >= 95%
#     resumed (counted from the status location's hits and the access log).
#  5. The server_name extension comes back for a.test and b.test, not for an unknown name served
#     by the default server (stock nginx acknowledges it), TLS 1.2 and 1.3.
#  6. `nginx -t` with each bad directive value names the directive and the problem.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/nginx.sh"
make_certs a.test b.test
PORT=$(free_port)
STATUS_PORT=$(free_port)

# stock_expect CERTS TICKETS TLS: what stock nginx does when b.test is offered a.test's session.
# Debian's nginx 1.22 (OpenSSL 3.0) resumes it in every case. nginx 1.30 on BoringSSL picks the
# server block in the ClientHello callback and BoringSSL then checks the block's session id
# context (nginx derives it from the certificates): refused with different certificates, resumed
# with a shared one; and BoringSSL issues no TLS 1.3 session at all with tickets off.
stock_expect() {
    if [ "$NGINX_SSL" = openssl ] || [ "$1" = shared ]; then echo Reused; else echo New; fi
}
# no_session TICKETS TLS: true where the SSL library issues no session to resume (BoringSSL's TLS
# 1.3 resumption is ticket-only: with tickets off there is nothing to resume).
no_session() { [ "$NGINX_SSL" = boringssl ] && [ "$1" = off ] && [ "$2" = 1.3 ]; }

for certs in different shared; do
    for tickets in off on; do
        echo "== baseline: stock nginx ($NGINX_SSL), ssl_session_cache shared:SSL:1m, tickets $tickets, $certs certificates, 2 workers"
        D=$TMP/stock.$certs.$tickets
        SHARED_CERT=$([ $certs = shared ] && echo yes) conf "$D" no 2 "ssl_session_cache shared:SSL:1m; ssl_session_tickets $tickets;"
        start_nginx "$D"
        for tls in 1.2 1.3; do
            v=-tls1_${tls#1.}
            f=$TMP/stock.$certs.$tickets.$tls.sess
            out=$(ngx a.test "$v" -sess_out "$f")
            expect_eq "stock TLS $tls: a.test full handshake" New "$(outcome <<<"$out")"
            if no_session "$tickets" "$tls"; then
                check "stock TLS $tls, tickets off: $NGINX_SSL issues no session to resume" test ! -s "$f"
                continue
            fi
            out=$(ngx b.test "$v" -sess_in "$f")
            o=$(outcome <<<"$out")
            echo "       stock TLS $tls: b.test offered a.test's session: $o, $(served <<<"$out")"
            if [ "$(stock_expect $certs)" = Reused ]; then
                expect_eq "stock TLS $tls: b.test RESUMES a.test's session (the flaw snicache closes)" Reused "$o"
                expect_eq "stock TLS $tls: ... and the b.test block serves it" "server=b.test reused=r" \
                    "$(served <<<"$out" | cut -d' ' -f1-2)"
            else
                expect_eq "stock TLS $tls: b.test refuses a.test's session (certificates differ)" New "$o"
            fi
        done
        stop_nginx "$D"
    done
done

# TLS 1.3 stateful sessions: two stored per full handshake and one more per resumption, about
# 320 bytes each (one slot): 16m keeps all of the h2load run's without eviction.
# SNICACHE_NGINX_STORE=memory runs the memory-store variant (1 worker) instead.
STORE=shm:16m
WORKERS=2
D=$TMP/probe
conf "$D" yes 2 "snicache on; snicache_store $STORE;"
if [ "${SNICACHE_NGINX_STORE:-}" = memory ]; then
    STORE=memory:16m
    WORKERS=1
    echo "       SNICACHE_NGINX_STORE=memory: memory store, 1 worker"
elif ! nginx -t -p "$D" -c "$D/nginx.conf" >"$D/t.out" 2>&1; then
    # shm not available in this build: the memory store is per worker (copy-on-write after the
    # fork), so same-name resumption is only certain with one worker.
    echo "       shm store refused ($(grep -o 'refused.*\|snicache.*' "$D/t.out" | head -1)): memory store, 1 worker"
    STORE=memory:16m
    WORKERS=1
fi
for certs in different shared; do
for tickets in off on; do
    echo "== module: snicache on, snicache_store $STORE, $WORKERS worker(s), $certs certificates"
    D=$TMP/module.$certs.$tickets
    SHARED_CERT=$([ $certs = shared ] && echo yes) \
        conf "$D" yes "$WORKERS" "snicache on; snicache_store $STORE;" "ssl_session_tickets $tickets;"
    start_nginx "$D"
    reused=0
    for tls in 1.2 1.3; do
        v=-tls1_${tls#1.}
        echo "   -- TLS $tls, tickets $tickets"
        out=$(ngx a.test "$v" -sess_out "$TMP/m.$tickets.$tls.sess")
        expect_eq "a.test, no session: full handshake" New "$(outcome <<<"$out")"
        if no_session "$tickets" "$tls"; then
            check "TLS $tls, tickets off: $NGINX_SSL issues no session to resume" test ! -s "$TMP/m.$tickets.$tls.sess"
            continue
        fi
        out=$(ngx a.test "$v" -sess_in "$TMP/m.$tickets.$tls.sess")
        expect_eq "a.test, a.test's session: resumed" Reused "$(outcome <<<"$out")"
        expect_eq "a.test, a.test's session: served by a.test" "server=a.test reused=r sni=a.test" "$(served <<<"$out")"
        reused=$((reused + 1))
        out=$(ngx b.test "$v" -sess_in "$TMP/m.$tickets.$tls.sess")
        expect_eq "b.test, a.test's session: refused, full handshake" New "$(outcome <<<"$out")"
        expect_eq "b.test, a.test's session: served by b.test" "server=b.test reused=. sni=b.test" "$(served <<<"$out")"
        out=$(ngx b.test "$v" -sess_out "$TMP/mb.$tickets.$tls.sess")
        out=$(ngx b.test "$v" -sess_in "$TMP/mb.$tickets.$tls.sess")
        expect_eq "b.test, b.test's session: resumed" Reused "$(outcome <<<"$out")"
        reused=$((reused + 1))
    done
    json=$(status)
    n=$((reused / 2)) # TLS versions with a session to resume
    expect_eq "status total hits = resumptions the clients saw" "$reused" "$(stat "$json" total hits)"
    expect_eq "status a.test hits" "$n" "$(stat "$json" vhosts a.test hits)"
    expect_eq "status b.test hits" "$n" "$(stat "$json" vhosts b.test hits)"
    if [ "$tickets" = on ]; then
        expect_eq "status b.test ticket_unknown_key (a.test's tickets, TLS 1.2 and 1.3)" "$n" \
            "$(stat "$json" vhosts b.test ticket_unknown_key)"
    else
        expect_eq "status b.test misses (a.test's session ids are not in b.test's partition)" "$n" \
            "$(stat "$json" vhosts b.test misses)"
    fi
    expect_eq "status: no refusals by rule (other vhost's sessions are not even found)" 0 \
        "$(stat "$json" total refusals | sum_refusals)"
    prom=$(status '?format=prometheus')
    expect_eq "prometheus: snicache_hits_total summed over vhosts = JSON total hits" "$reused" \
        "$(awk '/^snicache_hits_total\{/ {s += $2} END {print s + 0}' <<<"$prom")"
    check "prometheus: refusals by reason listed" grep -qE '^snicache_refusals_by_reason_total\{listen="127.0.0.1:[0-9]+",vhost="b.test",reason="sni"\} 0$' <<<"$prom"

    if [ "$tickets" = on ] && [ "$certs" = different ]; then
        # TLS 1.3 ticket renewal: a client that uses each ticket once (-sess_in the last one,
        # -sess_out the next) keeps resuming only if every resumption brings a fresh ticket.
        ngx a.test -tls1_3 -sess_out "$TMP/chain.0" >/dev/null
        chain=0
        for i in 1 2 3 4 5; do
            out=$(ngx a.test -tls1_3 -sess_in "$TMP/chain.$((i - 1))" -sess_out "$TMP/chain.$i")
            [ "$(outcome <<<"$out")" = Reused ] && chain=$((chain + 1))
        done
        echo "       TLS 1.3 single-use ticket chain: $chain of 5 resumed ($NGINX_SSL)"
        # BoringSSL issues a new ticket after every resumption; OpenSSL renews because
        # snicache's ticket callbacks ask for it.
        expect_eq "TLS 1.3 ticket renewal: every single-use resumption resumed" 5 "$chain"
    fi
    if [ "$tickets" = off ] && [ "$certs" = different ]; then
        for tls in 1.2 1.3; do
            no_session off "$tls" && continue
            before=$(stat "$(status)" total invalidations)
            got=$(timeout 30 python3 "$ROOT/tests/blackbox/lib/fatal_alert.py" "$PORT" a.test "$tls")
            echo "       fatal alert, TLS $tls: $got"
            expect_eq "TLS $tls: session resumed, forged record, server's fatal alert, then a full handshake" \
                "first=New second=Reused third=New alert=yes" "$got"
            check "TLS $tls: status invalidations grew" test "$(stat "$(status)" total invalidations)" -gt "$before"
        done
        check "error log: snicache's refusal lines at info" grep -q '\[info\].*snicache: ' "$D/error.log"
    fi
    stop_nginx "$D"
done
done

# BoringSSL resumes TLS 1.3 by tickets only: its load run uses TLS 1.2 session ids, so the
# sessions still go through the store, across the workers.
LOAD_TLS=$([ "$NGINX_SSL" = boringssl ] && echo "ssl_protocols TLSv1.2;")
echo "== h2load: 2 x 5000 connections (Connection: close), a.test and b.test, $WORKERS workers, $STORE${LOAD_TLS:+, TLS 1.2}"
D=$TMP/load
conf "$D" yes "$WORKERS" "snicache on; snicache_store $STORE;" "ssl_session_tickets off; $LOAD_TLS"
start_nginx "$D"
h2load_names 5000 a.test b.test
json=$(status)
for name in a.test b.test; do
    hits=$(stat "$json" vhosts "$name" hits)
    logged=$(grep -c "^$name r " "$D/access.log")
    check "$name: >= 95% resumed (status hits $hits of 5000: $((100 * hits / 5000))%)" test $((100 * hits)) -ge $((95 * 5000))
    expect_eq "$name: status hits = resumed requests in the access log" "$logged" "$hits"
done
expect_eq "h2load: no refusals" 0 "$(stat "$json" total refusals | sum_refusals)"
stop_nginx "$D"

echo "== snicache_strict_sni on: an unknown name gets unrecognized_name; stock nginx serves it from the default server"
D=$TMP/strict
conf "$D" no 1 "ssl_session_tickets off;"
start_nginx "$D"
out=$(ngx c.test -tls1_2)
expect_eq "stock nginx, SNI c.test: served by the default server" "server=a.test reused=. sni=c.test" "$(served <<<"$out")"
stop_nginx "$D"
conf "$D" yes 1 "snicache on; snicache_store $STORE; snicache_strict_sni on;" "ssl_session_tickets off;"
start_nginx "$D"
for tls in 1.2 1.3; do
    out=$(ngx c.test "-tls1_${tls#1.}")
    expect_eq "TLS $tls, SNI c.test: no response" "" "$(served <<<"$out")"
    check "TLS $tls, SNI c.test: the client got a fatal unrecognized_name alert" \
        grep -qi 'unrecognized name\|alert number 112' "$TMP/client.err"
    out=$(ngx b.test "-tls1_${tls#1.}")
    expect_eq "TLS $tls, SNI b.test: served by its own block" "server=b.test reused=. sni=b.test" "$(served <<<"$out")"
done
check "status: unknown names counted ($(stat "$(status)" listener unknown_sni))" test "$(stat "$(status)" listener unknown_sni)" -ge 2
stop_nginx "$D"

# acked NAME|- TLS: yes when the server_name extension came back (TLS 1.2 ServerHello, TLS 1.3
# EncryptedExtensions; s_client -tlsextdebug shows both), on a full handshake; "-": no SNI.
acked() {
    local out
    if [ "$1" = - ]; then
        out=$(timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -noservername "-tls1_${2#1.}" \
            -tlsextdebug </dev/null 2>"$TMP/client.err")
    else
        out=$(ngx "$1" "-tls1_${2#1.}" -tlsextdebug)
    fi
    [ "$(outcome <<<"$out")" = New ] || { echo "failed"; return; }
    if grep -q 'TLS server extension "server name"' <<<"$out"; then echo yes; else echo no; fi
}
echo "== server_name acknowledged only for a name that selected a server block (RFC 6066 section 3)"
D=$TMP/ack
conf "$D" no 1 "ssl_session_tickets off;"
start_nginx "$D"
for tls in 1.2 1.3; do
    expect_eq "stock TLS $tls: unknown c.test served by the default server, yet acknowledged" yes "$(acked c.test $tls)"
done
stop_nginx "$D"
conf "$D" yes 1 "snicache on; snicache_store $STORE;" "ssl_session_tickets off;"
start_nginx "$D"
for tls in 1.2 1.3; do
    expect_eq "TLS $tls: a.test (the default server's own name) acknowledged" yes "$(acked a.test $tls)"
    expect_eq "TLS $tls: b.test acknowledged" yes "$(acked b.test $tls)"
    expect_eq "TLS $tls: unknown c.test (default server) not acknowledged" no "$(acked c.test $tls)"
    expect_eq "TLS $tls: no SNI: not acknowledged" no "$(acked - $tls)"
    out=$(ngx c.test "-tls1_${tls#1.}" -sess_out "$TMP/ack.$tls.sess")
    expect_eq "TLS $tls: c.test still served by the default server" "server=a.test reused=. sni=c.test" "$(served <<<"$out")"
    no_session off "$tls" && continue
    # (OpenSSL keeps only an acknowledged name in a TLS 1.2 session: $ssl_server_name is then empty)
    out=$(ngx c.test "-tls1_${tls#1.}" -sess_in "$TMP/ack.$tls.sess")
    expect_eq "TLS $tls: c.test's session resumes under c.test, in the default server" "Reused server=a.test reused=r" \
        "$(outcome <<<"$out") $(served <<<"$out" | cut -d' ' -f1-2)"
done
stop_nginx "$D"

echo "== nginx -t: bad directive values"
printf 'x%.0s' $(seq 10) >"$TMP/short.key"
head -c 48 /dev/urandom >"$TMP/good.key"
bad() { # DESCRIPTION EXPECTED_REGEX HTTP_DIRECTIVES [SERVER_DIRECTIVES [A_TEST_ONLY]]
    local d=$TMP/bad.$RANDOM out
    conf "$d" yes 1 "$3" "${4:-}" "${5:-}"
    out=$(nginx -t -p "$d" -c "$d/nginx.conf" 2>&1)
    local rc=$?
    out=$(grep -m1 'emerg' <<<"$out")
    echo "       ${out#*\] }"
    if [ $rc -ne 0 ] && grep -Eq "$2" <<<"$out"; then ok "nginx -t: $1"; else not_ok "nginx -t: $1 (rc $rc)"; fi
}
bad "snicache maybe" '"snicache" directive.*"on" or "off"' "snicache maybe;"
bad "snicache_store bogus" '"snicache_store" value "bogus:1m" refused: .+' "snicache on; snicache_store bogus:1m;"
bad "snicache_store memory:lots" '"snicache_store" value "memory:lots" refused: .+' "snicache on; snicache_store memory:lots;"
bad "snicache_store redis:// without a shared secret" 'snicache_store "redis://localhost".*: .*secret' \
    "snicache on; snicache_store redis://localhost;"
bad "snicache_store shm below 64k, refused at parse time with file:line" \
    '"snicache_store" value "shm:1k" refused: .*too small.* in .*nginx.conf:[0-9]+' "snicache on; snicache_store shm:1k;"
bad "snicache_timeout 0" '"snicache_timeout" directive must be between 1s and 24h' "snicache on; snicache_timeout 0;"
bad "snicache_timeout 2d" '"snicache_timeout" directive must be between 1s and 24h' "snicache on; snicache_timeout 2d;"
bad "snicache_timeout soon" '"snicache_timeout" directive invalid value' "snicache on; snicache_timeout soon;"
bad "snicache_strict_sni maybe" '"snicache_strict_sni" directive.*"on" or "off"' "snicache on; snicache_strict_sni maybe;"
bad "snicache_ticket_key_file of 10 bytes" '"snicache_ticket_key_file" ".*short.key" holds 10 bytes, it must hold 32 to 80 bytes' \
    "snicache on; snicache_ticket_key_file $TMP/short.key;"
bad "snicache_ticket_key_file missing" '"snicache_ticket_key_file": cannot open ".*missing.key"' \
    "snicache on; snicache_ticket_key_file $TMP/missing.key;"
bad "snicache_ticket_rotation 30d" '"snicache_ticket_rotation" directive must be between 1s and 7d' \
    "snicache on; snicache_ticket_rotation 30d;"
bad "snicache on in one server only" '"snicache" is on for some servers listening on 127.0.0.1:[0-9]+ and off for others' \
    "" "" "snicache on;"
d=$TMP/good
conf "$d" yes 1 "snicache on; snicache_store $STORE; snicache_timeout 10m; snicache_strict_sni on; snicache_ticket_key_file $TMP/good.key; snicache_ticket_rotation 12h;"
check "nginx -t: every directive with a good value" nginx -q -t -p "$d" -c "$d/nginx.conf"

finish
