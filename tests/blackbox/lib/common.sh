# Helpers for the black-box tests (sourced, not run): build the demo server if needed, make
# throwaway certificates, start the server on a free loopback port, talk to it with s_client,
# read /stats, and count checks. Every test sources this file and ends with `finish`.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
LIB=$ROOT/tests/blackbox/lib
SERVER=$ROOT/target/c/snicache-demo-server
TMP=$(mktemp -d)
SERVER_PID=""
PORT=""
LOG=""
FAILURES=0
CHECKS=0

cleanup() {
    [ -n "$SERVER_PID" ] && kill -9 "$SERVER_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

if [ ! -x "$SERVER" ]; then
    (cd "$ROOT" && cargo build --quiet && make -s -C c-tests) || { echo "FAIL: cannot build the demo server"; exit 1; }
fi

ok() { CHECKS=$((CHECKS + 1)); echo "  ok   $*"; }
not_ok() { CHECKS=$((CHECKS + 1)); FAILURES=$((FAILURES + 1)); echo "  FAIL $*"; }
# check DESCRIPTION COMMAND...: runs COMMAND, ok when it succeeds.
check() {
    local what=$1
    shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# expect_eq DESCRIPTION EXPECTED GOT
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1 ($3)"; else not_ok "$1: expected '$2', got '$3'"; fi
}
finish() {
    echo "$CHECKS checks, $FAILURES failed"
    ((FAILURES == 0))
}
# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND every 50 ms until it succeeds; not_ok
# (and false) when SECONDS pass first.
wait_for() {
    local what=$1 secs=$2 end=$((SECONDS + $2))
    shift 2
    until "$@"; do
        ((SECONDS < end)) || { not_ok "$what (not within $secs s)"; return 1; }
        sleep 0.05
    done
}
# poll TRIES INTERVAL COMMAND...: runs COMMAND up to TRIES times, INTERVAL seconds apart, until it
# succeeds; false if it never does (no check counted: the caller checks).
poll() {
    local tries=$1 interval=$2
    shift 2
    for _ in $(seq "$tries"); do
        "$@" && return 0
        sleep "$interval"
    done
    return 1
}
# past EPOCH_SECONDS: true once that time (fractional) has passed.
past() { python3 -c 'import sys,time; sys.exit(0 if time.time() >= float(sys.argv[1]) else 1)' "$1"; }
# free_port: a loopback TCP port free right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Self-signed certificate and key for each name, in $TMP (wildcards as wild.example.com.*).
make_certs() {
    local name file
    for name in "$@"; do
        file=${name/\*/wild}
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$name" \
            -addext "subjectAltName=DNS:$name" -keyout "$TMP/$file.key" -out "$TMP/$file.crt" 2>/dev/null
    done
}
# --vhost flag value for a name made by make_certs.
vhost() { local file=${1/\*/wild}; echo "$1:$TMP/$file.crt:$TMP/$file.key"; }

# start_server FLAGS...: starts the server on 127.0.0.1 port 0 (the kernel picks a free port,
# the server logs it) and waits until it listens. Sets SERVER_PID, PORT, LOG.
start_server() {
    LOG=$TMP/server.$RANDOM.log
    : >"$LOG"
    "$SERVER" --listen 127.0.0.1:0 "$@" 2>"$LOG" &
    SERVER_PID=$!
    wait_listening
}
# wait_listening: waits until the server started as SERVER_PID, logging to LOG, listens; sets
# PORT from its log. Ends the test when it does not start.
wait_listening() {
    PORT=""
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$LOG")
        [ -n "$PORT" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "FAIL: the server did not start"
    cat "$LOG"
    exit 1
}

# stop_server: SIGTERM; the server must exit 0.
stop_server() {
    local rc=0
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    expect_eq "server exits 0 on SIGTERM" 0 "$rc"
}

server_alive() { kill -0 "$SERVER_PID" 2>/dev/null; }

# client PATH S_CLIENT_FLAGS...: one connection sending GET PATH; prints the transcript (stdout;
# stderr, where s_client reports alerts, goes to $TMP/client.err).
client() {
    local path=$1
    shift
    printf 'GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n' "$path" |
        timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -ign_eof "$@" 2>"$TMP/client.err"
}
# proxied MODE N S_CLIENT_FLAGS...: a keep-alive GET (SNI a.test) to $PORT through
# lib/corrupt_proxy.py, which corrupts a record of the connection in MODE (server-alert,
# client-alert, finished-alert; N: which application-data record); prints the s_client
# transcript. The server keeps reading after its answer, so an alert the client sends then
# reaches it. not_ok when the proxy corrupted nothing.
proxied() {
    local mode=$1 n=$2 pport="" ppid
    shift 2
    : >"$TMP/proxy.out"
    python3 "$LIB/corrupt_proxy.py" "$PORT" "$mode" "$n" >"$TMP/proxy.out" 2>"$TMP/proxy.err" &
    ppid=$!
    poll 200 0.025 test -s "$TMP/proxy.out"
    pport=$(head -1 "$TMP/proxy.out")
    printf 'GET / HTTP/1.1\r\nHost: a.test\r\n\r\n' |
        timeout 10 openssl s_client -connect "127.0.0.1:$pport" -ign_eof -servername a.test "$@" 2>/dev/null
    wait "$ppid"
    grep -q '^corrupted=yes$' "$TMP/proxy.out" || not_ok "the proxy corrupted nothing ($mode)"
}
# tls_flag 1.2|1.3: s_client's flag for that version. request_record 1.2|1.3: which
# application-data record of a connection is the client's request, proxied's N (TLS 1.3: the
# second, after the Finished).
tls_flag() { echo "-tls1_${1#1.}"; }
request_record() { if [ "$1" = 1.2 ]; then echo 1; else echo 2; fi; }
# invalidations: /stats total invalidations. invalidated_above N: true when it is above N.
invalidations() { stat "$(stats_json)" total invalidations; }
invalidated_above() { [ "$(invalidations)" -gt "$1" ]; }
# New or Reused (or "failed") from an s_client transcript on stdin.
outcome() { local o; o=$(sed -n 's/^\(New\|Reused\), .*/\1/p' | head -1); echo "${o:-failed}"; }
# The GET / line from an s_client transcript on stdin, without the worker id.
# (s_client may interleave its own session printout with the response, hence no anchors.)
whoami() { grep -ao 'vhost=[^ ]* sni=[^ ]* resumed=[01] proto=TLSv1\.[23]' | head -1; }

# curl_get PATH [CURL FLAGS...]: response headers and body, over a fresh full handshake (SNI a.test).
curl_get() {
    local path=$1
    shift
    curl -sSik --max-time 10 --resolve "a.test:$PORT:127.0.0.1" "$@" "https://a.test:$PORT$path"
}
# stats_json: the server's /stats body.
stats_json() { curl_get /stats | sed -n '/^{/p'; }
# stat JSON PATH...: one value, e.g. `stat "$json" total hits`, `stat "$json" vhosts a.test refusals sni`.
stat() {
    python3 -c 'import json,sys
v = json.loads(sys.argv[1])
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$@"
}
# h2load_names N NAME...: N requests per name to 127.0.0.1:$PORT, all names at once (h2load --h1,
# $CLIENTS connections, `Connection: close`, so one handshake per request); each run's output
# is in $TMP/h2load.NAME. Checks that every request succeeded.
h2load_names() {
    local n=$1 name pids=() started=$SECONDS
    shift
    for name in "$@"; do
        h2load --h1 -c "${CLIENTS:-8}" -n "$n" -H 'Connection: close' --connect-to="127.0.0.1:$PORT" \
            "https://$name/" >"$TMP/h2load.$name" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}"
    echo "       $(($# * n)) connections in $((SECONDS - started)) s"
    for name in "$@"; do
        expect_eq "h2load $name: all requests succeeded" \
            "requests: $n total, $n started, $n done, $n succeeded, 0 failed, 0 errored, 0 timeout" \
            "$(grep '^requests:' "$TMP/h2load.$name")"
    done
}
# logged NAME RESULT: the handshakes the demo server logged for vhost and SNI NAME with RESULT
# (resumed, full).
logged() { grep -c "^handshake worker.* vhost=$1 sni=$1 result=$2$" "$LOG"; }
# logged_totals WHO NAME...: the handshakes the server logged for each NAME (as `logged`), printed
# ("WHO logged ..."); sets RESUMED[NAME], FULL[NAME], TOTAL_RESUMED and TOTAL_HANDSHAKES.
declare -A RESUMED FULL
logged_totals() {
    local who=$1 name
    shift
    TOTAL_RESUMED=0 TOTAL_HANDSHAKES=0
    for name in "$@"; do
        RESUMED[$name]=$(logged "$name" resumed)
        FULL[$name]=$(logged "$name" full)
        echo "       $name: $who logged ${RESUMED[$name]} resumed + ${FULL[$name]} full handshakes"
        TOTAL_RESUMED=$((TOTAL_RESUMED + RESUMED[$name]))
        TOTAL_HANDSHAKES=$((TOTAL_HANDSHAKES + RESUMED[$name] + FULL[$name]))
    done
}
# sum_refusals: the sum of a refusals-by-reason object on stdin (as `stat` prints it).
sum_refusals() { python3 -c 'import ast,sys; print(sum(ast.literal_eval(sys.stdin.read()).values()))'; }
