#!/usr/bin/env bash
# Garbage in the shared-memory store of a prefork server under load: the demo server with
# --store shm:10m --workers 4 (tickets off, so every resumption goes through the store), six
# client threads reconnecting with TLS 1.2 session ids all the time (lib/shm_scribble.py).
# While they run, another process writes garbage into the mapping through a worker's
# /proc/PID/mem (the mapping is shared: every worker sees it), for 3 s each:
#   - locks: every shard's lock word, every 2 ms: words naming no thread, live processes that
#     never unlock (init, the scribbler), and 0 under a holder;
#   - whole: 256 random bytes all over the mapping every 2 ms, and now and then all of it.
# No worker may die (same 4 worker pids before and after, none logged as exiting), no
# connection may fail, and once the garbage stops resumption must be back: >= 90% from 1 s
# after it stopped. /stats shows the store's health counters (repairs, lock_errors, ...).
source "$(dirname "$0")/lib/common.sh"
make_certs a.test b.test
PY=$ROOT/target/py/bin/python
[ -x "$PY" ] || PY=python3

start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --workers 4 --threads 1 \
    --store shm:10m --tickets off
workers() { pgrep -P "$SERVER_PID" | sort | xargs; }
four_workers() { [ "$(workers | wc -w)" -eq 4 ]; }
poll 100 0.1 four_workers
before=$(workers)
expect_eq "4 worker processes" 4 "$(wc -w <<<"$before")"
victim=${before%% *}

for mode in locks whole; do
    echo "== garbage into the $mode for 3 s, under load"
    out=$("$PY" "$ROOT/tests/blackbox/lib/shm_scribble.py" "$PORT" "$victim" "$mode" 3)
    echo "       $out"
    field() { python3 -c 'import json,sys
v = json.loads(sys.argv[1])
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$out" "$@"; }
    check "$mode: resumption before the garbage >= 90% ($(field before rate))" \
        python3 -c "import sys; sys.exit(not float('$(field before rate)') >= 0.9)"
    expect_eq "$mode: no failed connection" 0 "$(field failed)"
    check "$mode: resumption from 1 s after the garbage stopped >= 90% ($(field after_1s rate) of $(field after_1s connections))" \
        python3 -c "import sys; sys.exit(not float('$(field after_1s rate)') >= 0.9)"
    expect_eq "$mode: the same 4 workers, none died" "$before" "$(workers)"
    check "$mode: the server is alive" server_alive
done
json=$(stats_json)
echo "       /stats shm: $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["shm"])' "$json")"
check "/stats shows repairs after garbage" test "$(stat "$json" shm repairs)" -gt 0
check "no worker logged as dead" test "$(grep -c '^worker process .* died' "$LOG")" -eq 0
stop_server
finish
