#!/usr/bin/env bash
# The server_name may not change across a HelloRetryRequest (RFC 8446 §4.1.2). A hand-built
# TLS 1.3 client (tlslite-ng, lib/hrr_sni.py) offers a.test's PSK with no key share, so the demo
# server (OpenSSL) answers with a HelloRetryRequest, then sends a second ClientHello whose SNI
# is another name, absent, or newly added: a fatal illegal_parameter alert (47), no request
# served, nothing resumed, counted as listener hrr_sni_changed. The legitimate retry with the
# same name (and the same name in other letter case, which routes the same) still resumes.
# Tickets on (stateless) and off (stateful sessions).
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
    for pair in "a.test b.test" "a.test -" "- a.test"; do
        set -- $pair
        out=$(hrr "$1" "$2")
        expect_eq "SNI $1 then $2 across HelloRetryRequest: illegal_parameter, nothing served" \
            "alert=47 resumed=0 served=- hellos_with_psk=2" "$out"
    done
    check "server alive" server_alive
    json=$(stats_json)
    expect_eq "/stats listener hrr_sni_changed" 3 "$(stat "$json" listener hrr_sni_changed)"
    # Two full handshakes made the sessions, two retries resumed; the refused ones count nothing.
    expect_eq "/stats total hits (only the two legitimate retries)" 2 "$(stat "$json" total hits)"
    expect_eq "/stats b.test hits" 0 "$(stat "$json" vhosts b.test hits)"
    expect_eq "server log: 3 handshakes failed" 3 "$(grep -c '^handshake failed' "$LOG")"
    expect_eq "server log: 3 refusals logged" 3 "$(grep -c 'server_name changed across HelloRetryRequest' "$LOG")"
    stop_server
done

finish
