#!/usr/bin/env bash
# Every resumed TLS 1.3 connection gets a fresh NewSessionTicket, tickets on (stateless) and
# off (stateful sessions), measured as a single-use client sees it: ten sequential
# `openssl s_client -tls1_3` connections, each offering only the newest session the previous
# connection received (-sess_in the previous -sess_out, which s_client writes only when a
# NewSessionTicket arrives; with none, the next connection has nothing to offer). 9 of the 9
# that can resume must resume; without renewal it is about 5. TLS 1.2 is unchanged: a resumed
# TLS 1.2 connection under a current key gets no new ticket.
source "$(dirname "$0")/lib/common.sh"
make_certs a.test b.test

# chain TLS: ten connections under SNI a.test, each offering the session the one before it
# received; prints how many of connections 2..10 were resumed.
chain() {
    local v=-tls1_${1#1.} i prev="" out resumed=0
    for i in $(seq 1 10); do
        local sess_in=()
        [ -n "$prev" ] && [ -s "$prev" ] && sess_in=(-sess_in "$prev")
        out=$(client / "$v" -servername a.test "${sess_in[@]}" -sess_out "$TMP/chain.$i.sess")
        if [ "$i" -gt 1 ] && [ "$(outcome <<<"$out")" = Reused ]; then
            resumed=$((resumed + 1))
        fi
        prev=$TMP/chain.$i.sess
    done
    echo "$resumed"
}

# new_tickets TRANSCRIPT: NewSessionTicket messages the server sent (s_client -msg).
new_tickets() { grep -c '<<< .*NewSessionTicket' || true; }

for tickets in on off; do
    echo "== TLS 1.3, tickets $tickets"
    start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --tickets "$tickets" --tls-min 1.3 --tls-max 1.3
    rm -f "$TMP"/*.sess
    out=$(client / -tls1_3 -servername a.test -sess_out "$TMP/a.sess")
    expect_eq "full handshake" New "$(outcome <<<"$out")"
    out=$(client / -tls1_3 -servername a.test -sess_in "$TMP/a.sess" -msg)
    expect_eq "resumed" Reused "$(outcome <<<"$out")"
    check "a resumed TLS 1.3 connection gets a NewSessionTicket" test "$(new_tickets <<<"$out")" -ge 1
    n=$(chain 1.3)
    expect_eq "single-use client, 10 connections: resumed of 9" 9 "$n"
    stop_server
done

echo "== TLS 1.2, tickets on: no new ticket on a resumption under a current key"
start_server --vhost "$(vhost a.test)" --tickets on --tls-min 1.2 --tls-max 1.2
out=$(client / -tls1_2 -servername a.test -sess_out "$TMP/a12.sess")
expect_eq "full handshake" New "$(outcome <<<"$out")"
out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/a12.sess" -msg)
expect_eq "resumed" Reused "$(outcome <<<"$out")"
expect_eq "no NewSessionTicket on the TLS 1.2 resumption" 0 "$(new_tickets <<<"$out")"
stop_server

finish
