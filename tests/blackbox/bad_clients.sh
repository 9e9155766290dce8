#!/usr/bin/env bash
# Bad clients do not stop the demo server: garbage bytes, 1500 half-open TCP connections, clients
# that stop in the middle of a handshake, a trickling (slowloris) request, an oversized request,
# and more idle connections than the server has file descriptors for. While and after each, a
# normal client must still get its answer quickly, and the server must still be running.
source "$(dirname "$0")/lib/common.sh"
BAD="python3 $(dirname "$0")/lib/badclient.py"
make_certs a.test b.test
IO_TIMEOUT=3

# A normal client gets its answer within 3 seconds.
serves() { # label
    local start=$SECONDS out
    out=$(client / -servername a.test)
    if [ "$(whoami <<<"$out")" = "vhost=a.test sni=a.test resumed=0 proto=TLSv1.3" ] && ((SECONDS - start <= 3)); then
        ok "$1: a normal client is served ($((SECONDS - start)) s)"
    else
        not_ok "$1: a normal client was not served in time"
    fi
    check "$1: server still running" server_alive
}

# hold MODE N LABEL: holds N bad connections open while a normal client is served.
hold() {
    local mode=$1 n=$2 label=$3
    coproc HOLDER { $BAD "$PORT" "$mode" "$n"; }
    local ready
    read -r ready <&"${HOLDER[0]}"
    echo "       $label: ${ready#ready } connections open"
    serves "$label, while they are open"
    exec {HOLDER[1]}>&-   # closing the holder's stdin releases its connections
    wait "$HOLDER_PID" 2>/dev/null
}

echo "== server with --io-timeout $IO_TIMEOUT"
start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --threads 2 --io-timeout "$IO_TIMEOUT"
serves "baseline"

echo "-- garbage bytes"
expect_eq "40 connections of random bytes or plaintext HTTP are closed by the server" "closed by server: 40" \
    "$($BAD "$PORT" garbage 40)"
serves "after garbage"

echo "-- half-open connections"
hold halfopen 1500 "1500 half-open TCP connections"
hold partial 500 "500 clients stopped halfway through their ClientHello"
hold stalled 500 "500 clients stopped after the server's first flight"
serves "after the held connections"

echo "-- a client that stops mid-handshake is timed out"
t=$($BAD "$PORT" closed-by-server $((IO_TIMEOUT + 5)))
check "closed by the server after about --io-timeout ($t s)" python3 -c "import sys; sys.exit(not ($IO_TIMEOUT - 1 <= float('$t') <= $IO_TIMEOUT + 2))"
check "server log: handshake timed out" grep -q '^handshake failed .*: timed out$' "$LOG"

echo "-- slowloris"
t=$($BAD "$PORT" slowloris $((IO_TIMEOUT + 8)))
check "a request trickled byte by byte is cut off after about --io-timeout ($t s)" python3 -c "import sys; sys.exit(not (float('$t') <= $IO_TIMEOUT + 3))"
serves "after slowloris"

echo "-- oversized request"
status=$($BAD "$PORT" oversized)
check "20 KiB request header: 431 or closed ($status)" grep -qE '^(HTTP/1.1 431 |closed$)' <<<"$status"
serves "after the oversized request"

json=$(stats_json)
check "/stats still answers" test -n "$(stat "$json" total hits)"
stop_server

echo "== server with only 200 file descriptors (ulimit -n 200), 1000 idle connections"
# The server makes room by closing its oldest connection when it reaches its limit.
(ulimit -n 200 && exec "$SERVER" --listen 127.0.0.1:0 --vhost "$(vhost a.test)" --threads 2) 2>"$TMP/small.log" &
SERVER_PID=$!
LOG=$TMP/small.log
wait_listening
hold halfopen 1000 "1000 idle connections, 200 descriptors"
check "server log: oldest connections closed to make room" grep -q 'closed to make room' "$LOG"
serves "after the idle connections"
stop_server

finish
