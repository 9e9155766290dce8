#!/usr/bin/env bash
# Single-use sessions across a Redis fleet (RFC 8446 §8.1): a session of a single-use vhost
# resumes at most once, whichever servers it is offered to and however close together. Two demo
# servers (--single-use, tickets off: TLS 1.2 session ids, TLS 1.3 stateful sessions) share one
# redis-server; each round, two clients offer the same fresh session at the same moment, one to
# server 1 (which holds it in its local tier) and one to server 2 (which fetches it from Redis).
# Redis `DEL` answering 1 to one of them is the arbiter (`Store::take`): never both resume.
# Prints how many rounds resumed 0, 1 or 2 times (lib/single_use_race.py).
source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/redis.sh"
LIB=$(cd "$(dirname "$0")/lib" && pwd)
ROUNDS=${ROUNDS:-100}
make_certs a.test

start_redis
STORE="redis://127.0.0.1:$REDIS_PORT/0?budget_ms=200"
COMMON=(--vhost "$(vhost a.test)" --store "$STORE" --seal-key-file "$TMP/seal.key" --tickets off --single-use)
start_server "${COMMON[@]}"; S1_PID=$SERVER_PID P1=$PORT
start_server "${COMMON[@]}"; S2_PID=$SERVER_PID P2=$PORT
SERVER_PID=""

resumed=0
for tls in 1.2 1.3; do
    echo "== TLS $tls: $ROUNDS rounds, one fresh session offered to both servers at once"
    out=$(python3 "$LIB/single_use_race.py" "$P1" "$P2" "$ROUNDS" "$tls" "$REDIS_PORT")
    rc=$?
    sed 's/^/       /' <<<"$out"
    expect_eq "TLS $tls: no session resumed twice" 0 "$rc"
    expect_eq "TLS $tls: every round's session reached Redis" "stored=$ROUNDS rounds=$ROUNDS" "$(head -1 <<<"$out")"
    once=$(sed -n 's/^resumed=1 rounds=//p' <<<"$out")
    check "TLS $tls: most sessions resumed once (the race is run, not refused wholesale): $once of $ROUNDS" \
        test "$once" -ge $((ROUNDS / 2))
    resumed=$((resumed + once + 2 * $(sed -n 's/^resumed=2 rounds=//p' <<<"$out")))
done
on "$P1"; hits=$(stat "$(stats_json)" total hits)
on "$P2"; hits=$((hits + $(stat "$(stats_json)" total hits)))
expect_eq "the servers count as many resumptions as the clients saw" "$resumed" "$hits"
stop_servers
stop_redis
finish
