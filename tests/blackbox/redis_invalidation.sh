#!/usr/bin/env bash
# Invalidations reaching another server's local tier (issue 11 items 4 and 5): two demo servers
# share one redis-server (Debian's, on a free loopback port). Server 2 resumes a session made on
# server 1 (fetched from Redis, then answered from its own memory tier); a resumption of it on
# server 1 then ends with a fatal alert (lib/corrupt_proxy.py corrupts a client record); server
# 2 must refuse it from then on (`invalidated`), although its local tier held it: the tombstone
# reaches it by Redis pub/sub. The same for stateless tickets (both servers share a ticket
# secret): a ticket revoked on server 1 is refused on server 2, which checks its local
# revocation set only. TLS 1.2 and 1.3. The time until server 2 refuses is printed (each probe
# is a whole s_client handshake, so it is an upper bound; tests/redis_invalidation.rs measures
# the propagation itself).
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/redis.sh"
make_certs a.test
head -c 32 /dev/urandom >"$TMP/ticket.key"

# until_refused_on_2 LABEL TLSFLAG SESSION: offers SESSION to server 2 until it is a full
# handshake (deadline 10 s); checks it was refused as invalidated; prints the time taken.
until_refused_on_2() {
    local label=$1 t=$2 sess=$3 start out ref tries=0
    on "$P2"
    ref=$(stat "$(stats_json)" total refusals invalidated)
    start=$(date +%s%N)
    while :; do
        tries=$((tries + 1))
        out=$(client / "$t" -servername a.test -sess_in "$sess")
        [ "$(outcome <<<"$out")" = New ] && break
        if [ $(($(date +%s%N) - start)) -gt 10000000000 ]; then
            not_ok "$label: server 2 still resumes it after 10 s"
            return
        fi
    done
    echo "       $label: server 2 refused it $(( ($(date +%s%N) - start) / 1000000 )) ms after server 1 counted the alert ($tries probe(s), each a whole s_client handshake)"
    expect_eq "$label: server 2 refuses it as invalidated" $((ref + 1)) "$(stat "$(stats_json)" total refusals invalidated)"
}

# wait_invalidated_on_1 BEFORE: until server 1's /stats counts more invalidations.
wait_invalidated_on_1() {
    on "$P1"
    poll 200 0.05 invalidated_above "$1"
}

# alert_on_1 LABEL KIND MODE TLS SESSION WHAT: a resumption of SESSION on server 1 ends with a
# fatal alert (proxied MODE; WHAT says who sends it); server 1 counts the invalidation, and
# server 2 refuses SESSION from then on.
alert_on_1() {
    local label=$1 kind=$2 mode=$3 tls=$4 sess=$5 what=$6 t before out
    t=$(tls_flag "$tls")
    on "$P1"
    before=$(invalidations)
    out=$(proxied "$mode" "$(request_record "$tls")" "$t" -sess_in "$sess")
    expect_eq "$label: server 1 resumes it, then $what" Reused "$(outcome <<<"$out")"
    check "$label: server 1 counts the invalidation" wait_invalidated_on_1 "$before"
    until_refused_on_2 "$label $kind" "$t" "$sess"
}

fleet() { # LABEL SERVER_FLAGS...
    local label=$1
    shift
    echo "== $label"
    start_server "$@"; S1_PID=$SERVER_PID P1=$PORT
    start_server "$@"; S2_PID=$SERVER_PID P2=$PORT
    SERVER_PID=""
}

start_redis
STORE="redis://127.0.0.1:$REDIS_PORT/0?budget_ms=50"
COMMON=(--vhost "$(vhost a.test)" --store "$STORE" --seal-key-file "$TMP/seal.key")

fleet "stateful sessions (tickets off): a tombstone replaces the session in server 2's local tier" \
    "${COMMON[@]}" --tickets off
for tls in 1.2 1.3; do
    t=$(tls_flag "$tls")
    new_on_1 "s$tls.sess" "$t"
    on "$P2"
    out=$(client / "$t" -servername a.test -sess_in "$TMP/s$tls.sess")
    expect_eq "TLS $tls: server 2 resumes server 1's session (from Redis)" Reused "$(outcome <<<"$out")"
    remote_hits=$(stat "$(stats_json)" remote hits)
    out=$(client / "$t" -servername a.test -sess_in "$TMP/s$tls.sess")
    expect_eq "TLS $tls: server 2 resumes it again" Reused "$(outcome <<<"$out")"
    expect_eq "TLS $tls: ... from its local tier (no Redis hit)" "$remote_hits" "$(stat "$(stats_json)" remote hits)"
    alert_on_1 "TLS $tls" stateful server-alert "$tls" "$TMP/s$tls.sess" "sends a fatal alert"
done
stop_servers

fleet "stateless tickets (shared ticket secret): a ticket revoked on server 1 is refused on server 2" \
    "${COMMON[@]}" --ticket-secret-file "$TMP/ticket.key"
for tls in 1.2 1.3; do
    t=$(tls_flag "$tls")
    on "$P1"
    out=$(client / "$t" -servername a.test -sess_out "$TMP/t$tls.sess")
    expect_eq "TLS $tls: server 1 issues a ticket" New "$(outcome <<<"$out")"
    on "$P2"
    out=$(client / "$t" -servername a.test -sess_in "$TMP/t$tls.sess")
    expect_eq "TLS $tls: server 2 resumes server 1's ticket" Reused "$(outcome <<<"$out")"
    alert_on_1 "TLS $tls" ticket client-alert "$tls" "$TMP/t$tls.sess" "the client sends a fatal alert"
done
check "the revocations are kept in Redis too (vhost + ticket identity keys with a TTL)" \
    test "$(rcli --scan --pattern 'snicache:v1:a.test:ff727632*' | wc -l)" -ge 2
# Server 3 starts after the revocations, so it heard no message: it loads them from Redis when
# it subscribes (its first ticket check waits for that, at most the budget).
start_server "${COMMON[@]}" --ticket-secret-file "$TMP/ticket.key"
P3=$PORT
for tls in 1.2 1.3; do
    t="-tls1_${tls#1.}"
    tries=0
    while :; do
        tries=$((tries + 1))
        out=$(client / "$t" -servername a.test -sess_in "$TMP/t$tls.sess")
        [ "$(outcome <<<"$out")" = New ] && break
        [ "$tries" -ge 50 ] && break
        sleep 0.2
    done
    expect_eq "TLS $tls: server 3, started after the revocation, refuses the ticket (probe $tries)" New "$(outcome <<<"$out")"
done
on "$P3"
expect_eq "server 3 refuses both as invalidated" 2 "$(stat "$(stats_json)" total refusals invalidated)"
grep -q 'ticket revocations loaded from Redis' "$LOG" && ok "server 3 logged the load: $(grep -o '[0-9]* ticket revocations loaded from Redis' "$LOG")" ||
    not_ok "server 3 did not log the load"
stop_server
stop_servers
stop_redis
finish
