#!/usr/bin/env bash
# Load with resumption: two h2load runs in parallel, one per vhost (a.test, b.test), 10,000
# connections in all (one request each, `Connection: close`). h2load resumes sessions across its
# connections, so nearly every handshake after each client's first must resume. Checked three
# ways: stateless tickets (TLS 1.3), session ids (TLS 1.2, tickets off) and stateful TLS 1.3
# sessions (tickets off). Every request must succeed; >= 95% of the handshakes must resume; the
# server's /stats hits must equal the resumed handshakes it logged, per vhost.
source "$(dirname "$0")/lib/common.sh"
make_certs a.test b.test
PER_VHOST=${PER_VHOST:-5000}
CLIENTS=${CLIENTS:-8}

run() { # label, server flags...
    local label=$1
    shift
    echo "== $label: 2 x h2load --h1 -c $CLIENTS -n $PER_VHOST"
    start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --threads 2 "$@"
    h2load_names "$PER_VHOST" a.test b.test
    logged_totals server a.test b.test
    local name resumed
    for name in a.test b.test; do
        # Newer h2load versions print their own resumption count; this one may not.
        grep -i 'resum' "$TMP/h2load.$name" | sed 's/^/       h2load: /'
        resumed=${RESUMED[$name]}
        expect_eq "$name: one handshake per request" "$PER_VHOST" "$((resumed + FULL[$name]))"
        check "$name: >= 95% resumed ($((100 * resumed / PER_VHOST))%)" test $((100 * resumed)) -ge $((95 * PER_VHOST))
        json=$(stats_json)
        # stats_json's own connection is a full handshake on a.test: it adds no hit.
        expect_eq "$name: /stats hits = resumed handshakes in the server log" "$resumed" \
            "$(stat "$json" vhosts "$name" hits)"
    done
    json=$(stats_json)
    expect_eq "/stats total hits" "$TOTAL_RESUMED" "$(stat "$json" total hits)"
    expect_eq "/stats refusals (each client kept to its own name)" 0 \
        "$(stat "$json" total refusals | sum_refusals)"
    check "no failed handshakes logged" test "$(grep -c '^handshake failed' "$LOG")" -eq 0
    echo "       total: $TOTAL_RESUMED of $TOTAL_HANDSHAKES handshakes resumed; /stats: $(python3 -c 'import json,sys; t=json.loads(sys.argv[1])["total"]; print(", ".join(f"{k}={t[k]}" for k in ("hits","misses","stores","entries","evictions")))' "$json")"
    stop_server
}

run "stateless tickets, TLS 1.3" --tickets on
run "session ids, TLS 1.2" --tickets off --tls-max 1.2
run "stateful sessions, TLS 1.3" --tickets off --tls-min 1.3

finish
