#!/usr/bin/env bash
# Stateless tickets revoked after a fatal alert (RFC 5246 §7.2.2; issue 11 item 4), with real
# clients: openssl s_client keeps each ticket in a session file (-sess_out / -sess_in, so every
# offer is a fresh copy) and a record-aware proxy (lib/corrupt_proxy.py) corrupts one record of
# a connection so that it ends with a fatal alert:
#   - sent by the server (a client record it cannot authenticate),
#   - sent by the client after the handshake (a server record it cannot authenticate),
#   - sent by the client in place of its Finished (the server's Finished corrupted),
#   - and on the connection that issued the ticket.
# Each time the same ticket offered again is a full handshake refused as `invalidated`, counted
# in /stats; a ticket no alert touched keeps resuming. TLS 1.2 and 1.3, tickets on, one process
# with the memory store and 3 prefork workers sharing the shm store (the revoked ticket is
# offered 12 times at once so several worker processes see it).
source "$(dirname "$0")/lib/common.sh"
make_certs a.test

refused() { stat "$(stats_json)" total refusals invalidated; }
# wait_invalidated BEFORE: until /stats counts more invalidations than BEFORE (deadline 10 s).
wait_invalidated() { poll 200 0.05 invalidated_above "$1"; }

suite() { # LABEL SERVER_FLAGS...
    local label=$1 tls t n mode out before ref pids all i
    shift
    echo "== $label"
    start_server --vhost "$(vhost a.test)" "$@"
    for tls in 1.2 1.3; do
        t=$(tls_flag "$tls")
        n=$(request_record "$tls")
        out=$(client / "$t" -servername a.test -sess_out "$TMP/keep.sess")
        expect_eq "TLS $tls: a ticket no alert touches" New "$(outcome <<<"$out")"
        for mode in server-alert client-alert finished-alert; do
            out=$(client / "$t" -servername a.test -sess_out "$TMP/$mode.sess")
            expect_eq "TLS $tls $mode: full handshake, a ticket issued" New "$(outcome <<<"$out")"
            out=$(client / "$t" -servername a.test -sess_in "$TMP/$mode.sess")
            expect_eq "TLS $tls $mode: the ticket resumes" Reused "$(outcome <<<"$out")"
            before=$(invalidations) ref=$(refused)
            out=$(proxied "$mode" "$n" "$t" -sess_in "$TMP/$mode.sess")
            [ "$mode" != finished-alert ] &&
                expect_eq "TLS $tls $mode: resumed, then the alert" Reused "$(outcome <<<"$out")"
            check "TLS $tls $mode: /stats counts the invalidation" wait_invalidated "$before"
            out=$(client / "$t" -servername a.test -sess_in "$TMP/$mode.sess")
            expect_eq "TLS $tls $mode: the same ticket again is a full handshake" New "$(outcome <<<"$out")"
            expect_eq "TLS $tls $mode: refused as invalidated" $((ref + 1)) "$(refused)"
        done
        # The connection that issued the ticket ends with a fatal alert.
        before=$(invalidations) ref=$(refused)
        out=$(proxied server-alert "$n" "$t" -sess_out "$TMP/born.sess")
        expect_eq "TLS $tls issued: full handshake, then the server's alert" New "$(outcome <<<"$out")"
        check "TLS $tls issued: /stats counts the invalidation" wait_invalidated "$before"
        out=$(client / "$t" -servername a.test -sess_in "$TMP/born.sess")
        expect_eq "TLS $tls issued: its ticket is a full handshake" New "$(outcome <<<"$out")"
        expect_eq "TLS $tls issued: refused as invalidated" $((ref + 1)) "$(refused)"
        # Every worker refuses it (12 offers at once), and the untouched ticket still resumes.
        local offers=()
        for i in $(seq 12); do
            client / "$t" -servername a.test -sess_in "$TMP/server-alert.sess" >"$TMP/again.$i" &
            offers+=($!)
        done
        wait "${offers[@]}"
        all=$(cat "$TMP"/again.* | outcome_all)
        pids=$(cat "$TMP"/again.* | grep -ao 'pid=[0-9]*' | sort -u | wc -l)
        rm -f "$TMP"/again.*
        expect_eq "TLS $tls: the revoked ticket offered 12 times at once (to $pids worker process(es))" \
            "New x12" "$all"
        out=$(client / "$t" -servername a.test -sess_in "$TMP/keep.sess")
        expect_eq "TLS $tls: the untouched ticket still resumes" Reused "$(outcome <<<"$out")"
    done
    check "the log says which rule refused" grep -q 'result=refused reason=invalidated$' "$LOG"
    stop_server
}
# outcome_all: "New x12" style summary of every New/Reused line on stdin.
outcome_all() { sed -n 's/^\(New\|Reused\), .*/\1/p' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=" "}'; }

suite "one process, memory store" --store memory:10m
suite "--workers 3 --threads 1, shm store" --workers 3 --threads 1 --store shm:10m
finish
