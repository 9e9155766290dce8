#!/usr/bin/env bash
# Prefork with the shared-memory store: the demo server makes the cache with --store shm:10m,
# then forks 4 worker processes (--workers 4, one thread each) that accept on the one listening
# socket. Checked with stateful sessions only (tickets off), where every resumption goes through
# the shared store: TLS 1.2 session ids and TLS 1.3 stateful sessions.
#   - s_client: a session made in one worker process resumes in another (GET / shows the pid);
#   - h2load: 2 x 5,000 connections (one request each, `Connection: close`) over two vhosts;
#     >= 95% of the handshakes must resume, and /stats (kept in the mapping, so any worker
#     answers for all) must count exactly the resumed handshakes the workers logged;
#   - SIGTERM stops the master and every worker.
source "$(dirname "$0")/lib/common.sh"
make_certs a.test b.test
PER_VHOST=${PER_VHOST:-5000}

run() { # label, server flags...
    local label=$1
    shift
    echo "== $label: --workers 4 --store shm:10m"
    start_server --vhost "$(vhost a.test)" --vhost "$(vhost b.test)" --workers 4 --threads 1 \
        --store shm:10m --tickets off "$@"

    local out first_pid pid other=0 resumed_s=0 i worker_pids
    out=$(client / -servername a.test -sess_out "$TMP/a.sess")
    first_pid=$(grep -ao 'worker=[0-9]* pid=[0-9]*' <<<"$out" | sed 's/.*pid=//' | head -1)
    check "s_client: a full handshake answered by a worker process (pid ${first_pid:-?})" test -n "$first_pid"
    worker_pids=$first_pid
    # 20 reconnections at once, so the kernel hands them to several workers.
    local again=()
    for i in $(seq 20); do
        client / -servername a.test -sess_in "$TMP/a.sess" >"$TMP/again.$i" 2>/dev/null &
        again+=($!)
    done
    wait "${again[@]}"
    for i in $(seq 20); do
        out=$(cat "$TMP/again.$i")
        pid=$(grep -ao 'worker=[0-9]* pid=[0-9]*' <<<"$out" | sed 's/.*pid=//' | head -1)
        worker_pids="$worker_pids $pid"
        [ "$(outcome <<<"$out")" = Reused ] && resumed_s=$((resumed_s + 1))
        [ -n "$pid" ] && [ "$pid" != "$first_pid" ] && [ "$(outcome <<<"$out")" = Reused ] && other=$((other + 1))
    done
    expect_eq "s_client: the session resumes on all 20 reconnections" 20 "$resumed_s"
    check "s_client: $other of them in another worker process than the one that made it" test "$other" -gt 0

    h2load_names "$PER_VHOST" a.test b.test
    logged_totals workers a.test b.test
    local total_resumed=$TOTAL_RESUMED total=$TOTAL_HANDSHAKES workers_seen
    workers_seen=$(sed -n 's/^handshake worker=\([0-9]*\) .*result=resumed$/\1/p' "$LOG" | sort -u | wc -l)
    check "resumed handshakes in all 4 worker processes ($workers_seen)" test "$workers_seen" -eq 4
    check ">= 95% of $total handshakes resumed ($((100 * total_resumed / total))%, $total_resumed)" \
        test $((100 * total_resumed)) -ge $((95 * total))
    local json
    json=$(stats_json)
    expect_eq "/stats total hits (from any worker) = resumed handshakes logged by all workers" \
        "$total_resumed" "$(stat "$json" total hits)"
    check "no failed handshakes logged" test "$(grep -c '^handshake failed' "$LOG")" -eq 0
    echo "       /stats: $(python3 -c 'import json,sys; t=json.loads(sys.argv[1])["total"]; print(", ".join(f"{k}={t[k]}" for k in ("hits","misses","stores","entries","bytes","evictions","store_errors")))' "$json")"
    stop_server
    local alive=0
    for pid in $worker_pids; do
        kill -0 "$pid" 2>/dev/null && alive=$((alive + 1))
    done
    expect_eq "no worker process left behind (the pids GET / showed: $(tr " " "\n" <<<"$worker_pids" | sort -u | xargs))" 0 "$alive"
}

run "session ids, TLS 1.2" --tls-max 1.2
run "stateful sessions, TLS 1.3" --tls-min 1.3

finish
