#!/usr/bin/env bash
# Resumption through the demo server with real `openssl s_client` connections, for TLS 1.2 and
# 1.3, stateless tickets on and off: a session resumes under its own name, is refused under the
# other vhost's name and without SNI (full handshake), GET / reports vhost/sni/resumed, and the
# server's /stats counts (hits, stores, misses, refusals) match what the clients saw.
source "$(dirname "$0")/lib/common.sh"
make_certs a.test b.test

for tickets in on off; do
    for tls in 1.2 1.3; do
        echo "== TLS $tls, tickets $tickets"
        start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --tickets "$tickets" --tls-min "$tls" \
            --tls-max "$tls"
        v=-tls1_${tls#1.}
        proto=TLSv$tls
        new=0 reused=0

        out=$(client / "$v" -servername a.test -sess_out "$TMP/a.sess")
        expect_eq "a.test, no session: full handshake" New "$(outcome <<<"$out")"
        expect_eq "a.test, no session: GET /" "vhost=a.test sni=a.test resumed=0 proto=$proto" "$(whoami <<<"$out")"
        new=$((new + 1))

        out=$(client / "$v" -servername a.test -sess_in "$TMP/a.sess")
        expect_eq "a.test, a.test's session: resumed" Reused "$(outcome <<<"$out")"
        expect_eq "a.test, a.test's session: GET /" "vhost=a.test sni=a.test resumed=1 proto=$proto" "$(whoami <<<"$out")"
        reused=$((reused + 1))

        out=$(client / "$v" -servername b.test -sess_in "$TMP/a.sess")
        expect_eq "b.test, a.test's session: refused, full handshake" New "$(outcome <<<"$out")"
        expect_eq "b.test, a.test's session: GET /" "vhost=b.test sni=b.test resumed=0 proto=$proto" "$(whoami <<<"$out")"
        line=$(grep '^handshake worker' "$LOG" | tail -1)
        if [ "$tickets" = on ]; then
            # Ticket keys are per vhost: b.test cannot even open a.test's ticket.
            check "b.test, a.test's ticket: server log says full (key unknown to b.test)" grep -q 'result=full$' <<<"$line"
        else
            # Session ids are kept per vhost: b.test does not know a.test's id.
            check "b.test, a.test's session id: server log says full (miss)" grep -q 'result=full$' <<<"$line"
        fi
        new=$((new + 1))

        out=$(client / "$v" -noservername -sess_in "$TMP/a.sess")
        expect_eq "no SNI, a.test's session: refused, full handshake" New "$(outcome <<<"$out")"
        expect_eq "no SNI, a.test's session: GET / (default vhost)" "vhost=a.test sni=- resumed=0 proto=$proto" \
            "$(whoami <<<"$out")"
        check "no SNI, a.test's session: server log says refused (sni)" \
            grep -q 'sni=- result=refused reason=sni$' <<<"$(grep '^handshake worker' "$LOG" | tail -1)"
        new=$((new + 1))

        out=$(client / "$v" -servername b.test -sess_out "$TMP/b.sess")
        expect_eq "b.test, no session: full handshake" New "$(outcome <<<"$out")"
        new=$((new + 1))
        out=$(client / "$v" -servername b.test -sess_in "$TMP/b.sess")
        expect_eq "b.test, b.test's session: resumed" Reused "$(outcome <<<"$out")"
        expect_eq "b.test, b.test's session: GET /" "vhost=b.test sni=b.test resumed=1 proto=$proto" "$(whoami <<<"$out")"
        reused=$((reused + 1))

        # /stats is fetched over one more full handshake (a.test, s_client, whose ClientHello the
        # expectations below know), counted here before it answers.
        json=$(client /stats "$v" -servername a.test -quiet | sed -n '/^{/p')
        new=$((new + 1))
        expect_eq "/stats total hits = resumptions the clients saw" "$reused" "$(stat "$json" total hits)"
        expect_eq "/stats a.test hits" 1 "$(stat "$json" vhosts a.test hits)"
        expect_eq "/stats b.test hits" 1 "$(stat "$json" vhosts b.test hits)"
        expect_eq "/stats a.test refusals (sni: the no-SNI client)" 1 "$(stat "$json" vhosts a.test refusals sni)"
        if [ "$tickets" = on ]; then
            expect_eq "/stats b.test ticket_unknown_key (a.test's ticket)" 1 "$(stat "$json" vhosts b.test ticket_unknown_key)"
            expect_eq "/stats total refusals" 1 "$(stat "$json" total refusals | python3 -c 'import ast,sys; print(sum(ast.literal_eval(sys.stdin.read()).values()))')"
            expect_eq "/stats ticket_forged" 0 "$(stat "$json" total ticket_forged)"
            expect_eq "/stats misses" 0 "$(stat "$json" total misses)"
            # Stateless tickets are not stored (TLS 1.2 with a ticket gets no session id either).
            expect_eq "/stats stores (tickets are not stored)" 0 "$(stat "$json" total stores)"
        else
            expect_eq "/stats b.test misses (a.test's id)" 1 "$(stat "$json" vhosts b.test misses)"
            expect_eq "/stats total refusals" 1 "$(stat "$json" total refusals | python3 -c 'import ast,sys; print(sum(ast.literal_eval(sys.stdin.read()).values()))')"
            # TLS 1.2: one session id per full handshake. TLS 1.3 stateful: OpenSSL issues two
            # sessions per full handshake and one per resumption.
            if [ "$tls" = 1.2 ]; then stores=$new; else stores=$((2 * new + reused)); fi
            expect_eq "/stats stores = sessions issued ($new full, $reused resumed handshakes)" "$stores" \
                "$(stat "$json" total stores)"
            expect_eq "/stats entries = stores" "$stores" "$(stat "$json" total entries)"
        fi
        stop_server
    done
done

echo "== strict SNI, wildcard vhost, default vhost"
make_certs '*.example.com'
start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --vhost "$(vhost '*.example.com')" --default b.test \
    --strict-sni
out=$(client / -servername x.example.com -sess_out "$TMP/x.sess")
expect_eq "x.example.com is served by *.example.com" "vhost=*.example.com sni=x.example.com resumed=0 proto=TLSv1.3" \
    "$(whoami <<<"$out")"
out=$(client / -servername x.example.com -sess_in "$TMP/x.sess")
expect_eq "x.example.com resumes its own session" Reused "$(outcome <<<"$out")"
out=$(client / -servername y.example.com -sess_in "$TMP/x.sess")
expect_eq "y.example.com (same wildcard vhost) may not resume x.example.com's session" New "$(outcome <<<"$out")"
check "server log: refused (sni)" grep -q 'sni=y.example.com result=refused reason=sni$' <<<"$(grep '^handshake worker' "$LOG" | tail -1)"
out=$(client / -noservername)
expect_eq "no SNI goes to --default b.test" "vhost=b.test sni=- resumed=0 proto=TLSv1.3" "$(whoami <<<"$out")"
out=$(client / -servername unknown.test)
check "--strict-sni: unknown name gets a fatal unrecognized_name alert" grep -q 'SSL alert number 112' "$TMP/client.err"
check "--strict-sni: no response for the unknown name" test -z "$(whoami <<<"$out")"
json=$(stats_json)
expect_eq "/stats listener unknown_sni" 1 "$(stat "$json" listener unknown_sni)"
check "GET /nope answers 404" grep -q '^HTTP/1.1 404' <<<"$(curl_get /nope)"
check "GET /stats is application/json" grep -qi '^Content-Type: application/json' <<<"$(curl_get /stats)"
stop_server

finish
