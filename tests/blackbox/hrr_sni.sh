#!/usr/bin/env bash
# The server_name may not change across a HelloRetryRequest (RFC 8446 §4.1.2). A hand-built
# TLS 1.3 client (tlslite-ng, lib/hrr_sni.py) offers a.test's PSK with no key share, so the demo
# server (OpenSSL) answers with a HelloRetryRequest, then sends a second ClientHello whose SNI
# is another name, absent, or newly added: a fatal illegal_parameter alert (47), no request
# served, nothing resumed, counted as listener hrr_sni_changed. The legitimate retry with the
# same name (and the same name in other letter case, which routes the same) still resumes, on
# the default vhost (a.test) and on another one (b.test: the connection switched to b.test's
# context before the retry), with a session made under that vhost; a.test's session offered to
# b.test does not resume there (R10), with or without a retry. Tickets on (stateless) and off
# (stateful sessions).
source "$(dirname "$0")/lib/common.sh"
PY=$ROOT/target/py/bin/python
[ -x "$PY" ] || { echo "FAIL: $PY missing (run scripts/deps.sh)"; exit 1; }
make_certs a.test b.test

hrr() { timeout 30 "$PY" "$ROOT/tests/blackbox/lib/hrr_sni.py" "$PORT" "$@" 2>"$TMP/hrr.err"; }

for tickets in on off; do
    echo "== TLS 1.3, tickets $tickets"
    start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --tickets "$tickets" --tls-min 1.3 --tls-max 1.3
    out=$(hrr a.test a.test)
    expect_eq "same SNI across HelloRetryRequest: resumed and served" \
        "alert=none resumed=1 served=vhost=a.test sni=a.test resumed=1 proto=TLSv1.3 hellos_with_psk=2" "$out"
    out=$(hrr a.test A.TEST)
    expect_eq "same name in capitals across HelloRetryRequest: resumed and served" \
        "alert=none resumed=1 served=vhost=a.test sni=a.test resumed=1 proto=TLSv1.3 hellos_with_psk=2" "$out"
    # The non-default vhost: its session (made under b.test) resumes across the retry.
    out=$(hrr b.test b.test b.test)
    expect_eq "b.test (not the default vhost), same SNI across HelloRetryRequest: resumed and served" \
        "alert=none resumed=1 served=vhost=b.test sni=b.test resumed=1 proto=TLSv1.3 hellos_with_psk=2" "$out"
    out=$(hrr b.test B.TEST b.test)
    expect_eq "b.test, same name in capitals across HelloRetryRequest: resumed and served" \
        "alert=none resumed=1 served=vhost=b.test sni=b.test resumed=1 proto=TLSv1.3 hellos_with_psk=2" "$out"
    # a.test's session offered under b.test: a full handshake on b.test (R10), retry or not.
    out=$(hrr b.test b.test a.test)
    expect_eq "a.test's session offered to b.test across HelloRetryRequest: full handshake on b.test" \
        "alert=none resumed=0 served=vhost=b.test sni=b.test resumed=0 proto=TLSv1.3 hellos_with_psk=2" "$out"
    for pair in "a.test b.test" "a.test -" "- a.test" "b.test a.test b.test"; do
        set -- $pair
        out=$(hrr "$@")
        expect_eq "SNI $1 then $2 across HelloRetryRequest (session of ${3:-a.test}): illegal_parameter, nothing served" \
            "alert=47 resumed=0 served=- hellos_with_psk=2" "$out"
    done
    check "server alive" server_alive
    json=$(stats_json)
    expect_eq "/stats listener hrr_sni_changed" 4 "$(stat "$json" listener hrr_sni_changed)"
    # Full handshakes made the sessions, four retries resumed (two per vhost); the refused ones
    # and the cross-vhost offer count no hit.
    expect_eq "/stats total hits (only the four legitimate retries)" 4 "$(stat "$json" total hits)"
    expect_eq "/stats a.test hits" 2 "$(stat "$json" vhosts a.test hits)"
    expect_eq "/stats b.test hits" 2 "$(stat "$json" vhosts b.test hits)"
    # a.test's session offered to b.test: a ticket naming a key b.test does not have, or a
    # session id b.test's store does not hold; counted once for the connection although OpenSSL
    # looks it up again for the second ClientHello.
    if [ "$tickets" = on ]; then counter=ticket_unknown_key; else counter=misses; fi
    expect_eq "/stats b.test $counter (once for the cross-vhost connection)" 1 "$(stat "$json" vhosts b.test $counter)"
    expect_eq "/stats a.test $counter" 0 "$(stat "$json" vhosts a.test $counter)"
    expect_eq "server log: 4 handshakes failed" 4 "$(grep -c '^handshake failed' "$LOG")"
    expect_eq "server log: 4 refusals logged" 4 "$(grep -c 'server_name changed across HelloRetryRequest' "$LOG")"
    stop_server
done

echo "== TLS 1.3, tickets off, --single-use"
# OpenSSL looks the session up again for the second ClientHello: the connection that took its
# single-use session on the first one still resumes it across the retry.
start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --tickets off --single-use --tls-min 1.3 --tls-max 1.3
out=$(hrr a.test a.test)
expect_eq "single-use session, same SNI across HelloRetryRequest: resumed and served" \
    "alert=none resumed=1 served=vhost=a.test sni=a.test resumed=1 proto=TLSv1.3 hellos_with_psk=2" "$out"
stop_server

finish
