# Helpers for the black-box tests that share one redis-server (sourced after common.sh):
# Debian's redis-server on a free loopback port, started with start_redis and stopped with
# stop_redis; two demo servers, S1_PID on port P1 and S2_PID on P2. The EXIT trap kills all
# three if the test ends early. $TMP/seal.key is a random seal key for the demo servers.
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    { echo "FAIL: redis-server/redis-cli not installed (scripts/deps.sh installs redis-server)"; exit 1; }
REDIS_PORT=$(free_port)
REDIS_PID=""
head -c 32 /dev/urandom >"$TMP/seal.key"
S1_PID="" S2_PID=""
trap '[ -n "$S1_PID" ] && kill -9 $S1_PID 2>/dev/null; [ -n "$S2_PID" ] && kill -9 $S2_PID 2>/dev/null;
      [ -n "$REDIS_PID" ] && kill -9 $REDIS_PID 2>/dev/null; cleanup' EXIT

start_redis() {
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --enable-debug-command local >"$TMP/redis.log" 2>&1 &
    REDIS_PID=$!
    poll 100 0.05 redis_up && return 0
    echo "FAIL: redis-server did not start"; cat "$TMP/redis.log"; exit 1
}
redis_up() { [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }
# redis_holds N: Redis holds at least N keys.
redis_holds() { [ "$(rcli dbsize)" -ge "$1" ]; }
stop_redis() { kill -TERM "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null; REDIS_PID=""; }
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# The Redis key of a session file's id under a vhost.
rkey() { # VHOST SESSION_FILE
    echo "snicache:v1:$1:$(openssl sess_id -in "$2" -noout -text | sed -n 's/^ *Session-ID: *//p' | tr A-F a-f)"
}

on() { PORT=$1; }  # the server the next client talks to

# new_on_1 SESSION_OUT [TLS FLAG]: a full handshake on server 1 ($P1) that leaves a session in Redis.
new_on_1() {
    local out before
    on "$P1"
    before=$(rcli dbsize)
    out=$(client / "${2:--tls1_2}" -servername a.test -sess_out "$TMP/$1")
    [ "$(outcome <<<"$out")" = New ] || not_ok "server 1: full handshake for $1"
    # The background writer puts the record; wait until Redis holds one more key (a loaded
    # machine can take longer than any fixed sleep; a TLS 1.3 session file does not show the
    # id the record is stored under, so count keys).
    poll 200 0.025 redis_holds $((before + 1)) || not_ok "server 1: the record for $1 never reached Redis"
}

# stop_servers: SIGTERM to both demo servers; each must exit 0.
stop_servers() {
    local pid rc
    for pid in "$S1_PID" "$S2_PID"; do
        kill -TERM "$pid"; rc=0; wait "$pid" || rc=$?
        expect_eq "server exits 0 on SIGTERM" 0 "$rc"
    done
    S1_PID="" S2_PID=""
}
