#!/usr/bin/env bash
# The nginx module keeps snicache's TLS 1.3 ticket renewal: a single-use client (ten sequential
# `openssl s_client -tls1_3` connections, each offering only the newest session the previous
# one received) resumes 9 of 9 against nginx with the module, tickets on and off, as against
# stock nginx (the baseline, run first).
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/nginx.sh"
make_certs a.test b.test
PORT=$(free_port)
STATUS_PORT=$(free_port)

# chain: ten connections under SNI a.test; prints how many of connections 2..10 resumed.
chain() {
    local i prev="" out resumed=0
    rm -f "$TMP"/chain.*.sess
    for i in $(seq 1 10); do
        local sess_in=()
        [ -n "$prev" ] && [ -s "$prev" ] && sess_in=(-sess_in "$prev")
        out=$(ngx a.test -tls1_3 "${sess_in[@]}" -sess_out "$TMP/chain.$i.sess")
        if [ "$i" -gt 1 ] && [ "$(outcome <<<"$out")" = Reused ]; then
            resumed=$((resumed + 1))
        fi
        prev=$TMP/chain.$i.sess
    done
    echo "$resumed"
}

for tickets in on off; do
    D=$TMP/stock.$tickets
    conf "$D" no 1 "ssl_session_cache shared:SSL:1m; ssl_session_tickets $tickets;"
    start_nginx "$D"
    expect_eq "stock nginx, tickets $tickets: single-use client resumed of 9" 9 "$(chain)"
    stop_nginx "$D"

    D=$TMP/module.$tickets
    conf "$D" yes 1 "snicache on; snicache_store shm:1m;" "ssl_session_tickets $tickets;"
    start_nginx "$D"
    expect_eq "nginx + snicache, tickets $tickets: single-use client resumed of 9" 9 "$(chain)"
    check "nginx + snicache, tickets $tickets: the status location counts 9 hits" \
        grep -q '"total":{"hits":9,' <(status)
    stop_nginx "$D"
done

finish
