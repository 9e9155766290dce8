#!/usr/bin/env bash
# Fleet resumption through Redis: two demo servers share one redis-server (Debian's, started
# here on a free loopback port and stopped on exit; the test fails if it is missing).
#  - a session made on server 1 resumes on server 2, and not under another SNI or without SNI;
#  - a record altered in Redis, or moved to another id or vhost, gives a full handshake and is
#    counted (remote seal_failures in /stats);
#  - Redis stopped in the middle of a run: every handshake still completes (full);
#    started again: resumption across servers comes back without restarting them;
#  - a slow Redis (DEBUG SLEEP): handshakes finish within the lookup budget plus a margin.
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/redis.sh"
make_certs a.test b.test

start_redis
STORE="redis://127.0.0.1:$REDIS_PORT/0?budget_ms=5&backoff_ms=300"
FLAGS=(--vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --tickets off --store "$STORE" --seal-key-file "$TMP/seal.key")
start_server "${FLAGS[@]}"; S1_PID=$SERVER_PID P1=$PORT LOG1=$LOG
start_server "${FLAGS[@]}"; S2_PID=$SERVER_PID P2=$PORT LOG2=$LOG
SERVER_PID=""

echo "== a session made on server 1 resumes on server 2"
for tls in 1.2 1.3; do
    new_on_1 "a$tls.sess" "-tls1_${tls#1.}"
    on "$P2"
    out=$(client / "-tls1_${tls#1.}" -servername a.test -sess_in "$TMP/a$tls.sess")
    expect_eq "TLS $tls: server 2 resumes server 1's session" Reused "$(outcome <<<"$out")"
    expect_eq "TLS $tls: server 2 GET /" "vhost=a.test sni=a.test resumed=1 proto=TLSv$tls" "$(whoami <<<"$out")"
done
out=$(client / -tls1_2 -servername b.test -sess_in "$TMP/a1.2.sess")
expect_eq "server 2, b.test with a.test's session: full handshake" New "$(outcome <<<"$out")"
out=$(client / -tls1_2 -noservername -sess_in "$TMP/a1.2.sess")
expect_eq "server 2, no SNI with a.test's session: full handshake" New "$(outcome <<<"$out")"
check "server 2 log: refused (sni)" grep -q 'sni=- result=refused reason=sni$' <<<"$(grep '^handshake worker' "$LOG2" | tail -1)"
json=$(client /stats -servername a.test -quiet | sed -n '/^{/p')
expect_eq "server 2 /stats remote hits (TLS 1.2 and 1.3 sessions)" 2 "$(stat "$json" remote hits)"
expect_eq "server 2 /stats hits" 2 "$(stat "$json" total hits)"
check "keys are namespaced per vhost" test "$(rcli --scan --pattern 'snicache:v1:a.test:*' | wc -l)" -ge 2
check "Redis holds no plaintext session" \
    sh -c "! redis-cli -p $REDIS_PORT --raw get '$(rkey a.test "$TMP/a1.2.sess")' | grep -qa a.test"
ttl=$(rcli ttl "$(rkey a.test "$TMP/a1.2.sess")")
check "TTL is the session's remaining lifetime ($ttl s of 300)" test "$ttl" -gt 290 -a "$ttl" -le 300

echo "== records altered or moved in Redis: full handshake, counted"
new_on_1 t.sess
tkey=$(rkey a.test "$TMP/t.sess")
# Overwrite byte 30 with a byte it does not already hold.
[ "$(rcli --raw getrange "$tkey" 30 30)" = X ] && flip=Y || flip=X
rcli setrange "$tkey" 30 "$flip" >/dev/null
new_on_1 x.sess
new_on_1 y.sess
rcli copy "$(rkey a.test "$TMP/y.sess")" "$(rkey a.test "$TMP/x.sess")" replace >/dev/null
rcli copy "$(rkey a.test "$TMP/y.sess")" "$(rkey b.test "$TMP/y.sess")" >/dev/null
on "$P2"
out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/t.sess")
expect_eq "a byte of the sealed record changed (SETRANGE): full handshake" New "$(outcome <<<"$out")"
out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/x.sess")
expect_eq "another session's record copied under this id: full handshake" New "$(outcome <<<"$out")"
out=$(client / -tls1_2 -servername b.test -sess_in "$TMP/y.sess")
expect_eq "a.test's record copied under b.test: full handshake" New "$(outcome <<<"$out")"
out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/y.sess")
expect_eq "the original record still resumes" Reused "$(outcome <<<"$out")"
json=$(stats_json)
expect_eq "server 2 /stats remote seal_failures" 3 "$(stat "$json" remote seal_failures)"
expect_eq "server 2 /stats remote errors" 0 "$(stat "$json" remote errors)"

echo "== Redis stopped in the middle of a run"
for i in $(seq 6); do new_on_1 "d$i.sess"; done
stop_redis
done_count=0 full=0
for i in $(seq 6); do
    for p in "$P1" "$P2"; do
        on "$p"
        out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/d$i.sess")
        [ -n "$(whoami <<<"$out")" ] && done_count=$((done_count + 1))
        [ "$p" = "$P2" ] && [ "$(outcome <<<"$out")" = New ] && full=$((full + 1))
    done
    on "$P1"; out=$(client / -tls1_2 -servername a.test)
    [ -n "$(whoami <<<"$out")" ] && done_count=$((done_count + 1))
done
expect_eq "every handshake completed while Redis was down" 18 "$done_count"
expect_eq "server 2 (sessions it never saw): all full handshakes" 6 "$full"
json=$(stats_json)
check "server 2 /stats: remote errors counted ($(stat "$json" remote errors))" test "$(stat "$json" remote errors)" -ge 1
expect_eq "server 2 /stats: breaker opened" 1 "$(stat "$json" remote breaker_trips)"
check "server 2 /stats: lookups skipped while open ($(stat "$json" remote breaker_skips))" \
    test "$(stat "$json" remote breaker_skips)" -ge 1
check "server 2 log: breaker warning without credentials" grep -q "redis store redis://127.0.0.1:$REDIS_PORT/0: .*skipping it for 300 ms" "$LOG2"
check "both servers still running" kill -0 "$S1_PID" "$S2_PID"

echo "== Redis started again: resumption across servers comes back"
start_redis
sleep 0.5  # past the breaker's back-off: the next call probes
on "$P1"; client / -tls1_2 -servername a.test >/dev/null  # a write: server 1's probe
new_on_1 back.sess
on "$P2"
out=$(client / -tls1_2 -servername b.test) # server 2's probe (a miss)
sleep 0.1
out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/back.sess")
expect_eq "server 2 resumes server 1's new session" Reused "$(outcome <<<"$out")"
expect_eq "server 2 /stats: breaker closed" 0 "$(stat "$(stats_json)" remote breaker_state)"

echo "== a slow Redis (DEBUG SLEEP 2): handshakes finish within the budget plus a margin"
for i in $(seq 5); do new_on_1 "s$i.sess"; done
on "$P2"
t0=$(date +%s%N); client / -tls1_2 -servername a.test >/dev/null; base=$((($(date +%s%N) - t0) / 1000000))
rcli debug sleep 2 >/dev/null &
sleeper=$!
sleep 0.1
worst=0 resumed=0
for i in $(seq 5); do
    t0=$(date +%s%N)
    out=$(client / -tls1_2 -servername a.test -sess_in "$TMP/s$i.sess")
    ms=$((($(date +%s%N) - t0) / 1000000))
    ((ms > worst)) && worst=$ms
    [ -n "$(whoami <<<"$out")" ] && resumed=$((resumed + 1))
done
wait "$sleeper"
expect_eq "5 handshakes completed during DEBUG SLEEP" 5 "$resumed"
check "slowest handshake ${worst} ms (a healthy one took ${base} ms; budget 5 ms; Redis stalls 2000 ms)" \
    test "$worst" -lt $((base + 300))
json=$(stats_json)
check "server 2 /stats: timeouts counted ($(stat "$json" remote timeouts))" test "$(stat "$json" remote timeouts)" -ge 1

# The key is random bytes: look for it whole (raw and hex), never as a grep pattern list, where a
# newline in the key would make an empty pattern that matches everything.
check "no seal key in the logs (raw or hex)" python3 -c '
import sys
key = open(sys.argv[1], "rb").read()
logs = [open(f, "rb").read() for f in sys.argv[2:]]
sys.exit(any(key in log or key.hex().encode() in log for log in logs))
' "$TMP/seal.key" "$LOG1" "$LOG2"
stop_servers
finish
