#!/usr/bin/env bash
# The demo server's --early-data (OpenSSL 3.0): TLS 1.3 0-RTT accepted at most once per ticket,
# across prefork workers sharing the shm store. One ticket (s_client -sess_out), then the same
# ticket offered again and again with a request as early data (-sess_in -early_data FILE), 10
# at once, until both worker processes answered some (30 at most): the early data is
# accepted exactly once; every other attempt resumes in 1-RTT (early data rejected) and its
# request is still served; the log and /stats count the same. Then with --tickets off (TLS 1.3
# stateful sessions): the same, in one process.
source "$(dirname "$0")/lib/common.sh"
make_certs a.test b.test
printf 'GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n' >"$TMP/early.req"
start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --workers 2 --threads 1 \
    --store shm:4m --early-data

out=$(client / -servername a.test -tls1_3 -sess_out "$TMP/a.sess")
expect_eq "a.test: full handshake" New "$(outcome <<<"$out")"
check "the ticket allows early data" grep -q 'Max Early Data: [1-9]' <(openssl sess_id -in "$TMP/a.sess" -noout -text)

accepted=0 rejected=0 attempts=0 served=0
declare -A pids=()
# Batches of 10 attempts at once (so the kernel hands them to both workers, and they race for
# the ticket's entry), until both workers answered some (3 batches at most).
for batch in 1 2 3; do
    runs=()
    for i in $(seq 10); do
        client / -servername a.test -tls1_3 -sess_in "$TMP/a.sess" -early_data "$TMP/early.req" \
            >"$TMP/try.$batch.$i" 2>/dev/null &
        runs+=($!)
    done
    wait "${runs[@]}"
    for i in $(seq 10); do
        out=$(cat "$TMP/try.$batch.$i")
        attempts=$((attempts + 1))
        ed=$(grep -o 'Early data was \(accepted\|rejected\)' <<<"$out" | awk '{print $4}')
        o=$(outcome <<<"$out")
        [ "$ed $o" = "accepted Reused" ] && accepted=$((accepted + 1))
        [ "$ed $o" = "rejected Reused" ] && rejected=$((rejected + 1))
        [ "$(whoami <<<"$out")" = "vhost=a.test sni=a.test resumed=1 proto=TLSv1.3" ] && served=$((served + 1))
        pid=$(grep -ao 'pid=[0-9]*' <<<"$out" | head -1)
        [ -n "$pid" ] && pids[$pid]=1
    done
    [ ${#pids[@]} -ge 2 ] && break
done
echo "       DEMO: one ticket's early data accepted $accepted times of $attempts attempts over ${#pids[@]} workers"
expect_eq "both worker processes answered attempts" 2 "${#pids[@]}"
expect_eq "early data accepted exactly once" 1 "$accepted"
expect_eq "every other attempt resumed in 1-RTT, early data rejected" $((attempts - 1)) "$rejected"
expect_eq "every attempt's request served, resumed, by a.test" "$attempts" "$served"
expect_eq "log: one handshake with early_data=accepted" 1 "$(grep -c 'result=resumed early_data=accepted$' "$LOG")"
expect_eq "log: the others with early_data=rejected" $((attempts - 1)) "$(grep -c 'result=resumed early_data=rejected$' "$LOG")"
json=$(stats_json)
expect_eq "/stats early_data_accepted" 1 "$(stat "$json" total early_data_accepted)"
expect_eq "/stats early_data_replayed" $((attempts - 1)) "$(stat "$json" total early_data_replayed)"
out=$(client / -servername b.test -tls1_3 -sess_in "$TMP/a.sess" -early_data "$TMP/early.req")
expect_eq "b.test offered a.test's ticket: full handshake" New "$(outcome <<<"$out")"
check "... without early data" sh -c "! grep -q 'Early data was accepted' <<'END'
$out
END"
stop_server

echo "== --tickets off: TLS 1.3 stateful sessions, 1 process"
start_server --vhost "$(vhost a.test)" --threads 2 --store memory --early-data --tickets off
out=$(client / -servername a.test -tls1_3 -sess_out "$TMP/s.sess")
expect_eq "a.test: full handshake" New "$(outcome <<<"$out")"
got=""
for i in 1 2 3; do
    out=$(client / -servername a.test -tls1_3 -sess_in "$TMP/s.sess" -early_data "$TMP/early.req")
    got="$got $(outcome <<<"$out")/$(grep -o 'Early data was \(accepted\|rejected\)' <<<"$out" | awk '{print $4}')"
done
expect_eq "one stateful session, 3 attempts: early data accepted once, all resumed" \
    " Reused/accepted Reused/rejected Reused/rejected" "$got"
stop_server
finish
