#!/usr/bin/env bash
# snicache in one command: builds the demo server, serves two virtual hosts (a.test, b.test) on a
# free loopback port, and drives it with real `openssl s_client` connections to show which
# sessions resume and which snicache refuses, for TLS 1.2 and 1.3, with stateless tickets on and
# off. Prints a table (and the server's /stats), and exits non-zero if any expectation failed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
echo "== building"
cargo build --quiet
make -s -C c-tests
SERVER=target/c/snicache-demo-server

tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Throwaway self-signed certificates, one per virtual host.
for h in a.test b.test; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$h" \
        -addext "subjectAltName=DNS:$h" -keyout "$tmp/$h.key" -out "$tmp/$h.crt" 2>/dev/null
done

port=""
start_server() { # extra server flags...
    : >"$tmp/server.log"
    "$SERVER" --listen 127.0.0.1:0 --vhost "a.test:$tmp/a.test.crt:$tmp/a.test.key" \
        --vhost "b.test:$tmp/b.test.crt:$tmp/b.test.key" --default a.test "$@" 2>"$tmp/server.log" &
    server_pid=$!
    # Port 0: the kernel picks a free port and the server logs it.
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/server.log")
        [ -n "$port" ] && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "demo: the server did not start:" >&2
    cat "$tmp/server.log" >&2
    exit 1
}

stop_server() {
    kill -TERM "$server_pid"
    if ! wait "$server_pid"; then
        echo "demo: the server did not exit cleanly" >&2
        failed=1
    fi
    server_pid=""
}

# One s_client connection sending GET PATH; prints the client's transcript.
client() { # path, s_client flags...
    local path=$1
    shift
    printf 'GET %s HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n' "$path" |
        timeout 10 openssl s_client -connect "127.0.0.1:$port" -ign_eof "$@" 2>&1 || true
}

# "MISSES UNKNOWN_KEY": offered session ids no vhost had, offered tickets sealed with another
# vhost's key.
counters() {
    client /stats -tls1_2 -servername a.test -quiet | sed -n '/^{/p' |
        python3 -c 'import json,sys; t=json.load(sys.stdin)["total"]; print(t["misses"], t["ticket_unknown_key"])'
}

rows=()
failed=0
# step: label, name sent (- for none), session to offer (- for none), session file to write, expected,
#       s_client flags for the version
step() {
    local label=$1 name=$2 offer=$3 save=$4 expect=$5 version=$6 args=() out got line why miss0 key0 miss1 key1
    if [ "$name" = - ]; then args+=(-noservername); else args+=(-servername "$name"); fi
    [ "$offer" = - ] || args+=(-sess_in "$tmp/$offer.sess")
    [ "$save" = - ] || args+=(-sess_out "$tmp/$save.sess")
    read -r miss0 key0 <<<"$(counters)"
    local n0
    n0=$(grep -c '^handshake worker' "$tmp/server.log" || true)
    out=$(client / "$version" "${args[@]}")
    got=$(sed -n 's/^\(New\|Reused\), .*/\1/p' <<<"$out" | head -1)
    [ -n "$got" ] || got="failed"
    line=$(grep '^handshake worker' "$tmp/server.log" | sed -n "$((n0 + 1))p")
    read -r miss1 key1 <<<"$(counters)"
    # Why, in the server's words: its handshake log line, and the miss counter around the step.
    case "$line" in
    *result=resumed*) why="resumed by snicache" ;;
    *result=refused*) why="offered, refused by snicache rule '${line##*reason=}'" ;;
    *result=full*)
        if [ "$offer" = - ]; then
            why="no session offered"
        elif ((miss1 > miss0)); then
            why="offered id unknown to vhost ${name/-/a.test} (miss: ids are kept per vhost)"
        elif ((key1 > key0)); then
            why="offered ticket sealed with another vhost's key (ticket_unknown_key)"
        else
            why="client did not offer the session"
        fi
        ;;
    *) why="no handshake line in the server log" ;;
    esac
    local served
    # (s_client may interleave its session printout with the response: match, don't anchor.)
    served=$(grep -ao 'vhost=[^ ]* sni=' <<<"$out" | sed 's/vhost=\([^ ]*\) sni=/\1/' | head -1)
    local mark="ok"
    [ "$got" = "$expect" ] || { mark="FAIL"; failed=1; }
    rows+=("$(printf '%-7s %-7s %-36s %-7s %-7s %-8s %-6s %-7s %-4s %s' "$PROTO" "$TICKETS" "$label" "$name" \
        "$offer" "${served:--}" "$expect" "$got" "$mark" "$why")")
}

scenario() { # s_client version flag, label
    local v=$1
    PROTO=$2
    step "1 new session" a.test - a New "$v"
    step "2 resume under the same name" a.test a - Reused "$v"
    step "3 same session under the other name" b.test a - New "$v"
    step "4 no SNI, new session" - - none New "$v"
    step "5 a.test's session without SNI" - a - New "$v"
    step "6 no-SNI session again without SNI" - none - Reused "$v"
}

print_stats() {
    client /stats -tls1_2 -servername a.test -quiet | sed -n '/^{/p' >"$tmp/stats.json"
    python3 - "$tmp/stats.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
def line(name, d):
    refused = ", ".join(f"{k}={v}" for k, v in d["refusals"].items() if v) or "none"
    print(f"  {name:8} hits={d['hits']} misses={d['misses']} stores={d['stores']} entries={d['entries']} "
          f"ticket_unknown_key={d.get('ticket_unknown_key', 0)} refusals: {refused}")
line("total", s["total"])
for name, d in s["vhosts"].items():
    line(name, d)
print(f"  listener unknown_sni={s['listener']['unknown_sni']} malformed_sni={s['listener']['malformed_sni']}")
EOF
}

for TICKETS in on off; do
    start_server --tickets "$TICKETS"
    scenario -tls1_2 "TLS1.2"
    scenario -tls1_3 "TLS1.3"
    print_stats >"$tmp/stats.$TICKETS"
    stop_server
done

echo
printf '%-7s %-7s %-36s %-7s %-7s %-8s %-6s %-7s %-4s %s\n' proto tickets step "sent" offers "served" expect got "" why
printf '%s\n' "${rows[@]}"
echo
echo "names: 'sent' is the SNI the client sent (- none); 'offers' the session it was given (a: made"
echo "under a.test, none: made without SNI); 'served' the vhost that answered GET /. Clients without"
echo "SNI go to the default vhost, a.test. 'why' is the server's view (its handshake log line, its"
echo "miss and ticket_unknown_key counters), so 'offered' means the session really reached the server:"
echo "OpenSSL's s_client offers a session under any -servername, and without SNI, when given -sess_in."
for TICKETS in on off; do
    echo
    echo "== /stats of the server with --tickets $TICKETS (the demo's /stats requests are full handshakes too)"
    cat "$tmp/stats.$TICKETS"
done
if ((failed)); then
    echo "demo: some expectations FAILED" >&2
    exit 1
fi
echo "demo: all expectations met"
