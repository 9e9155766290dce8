#!/usr/bin/env bash
# Sessions per MB: stock nginx (`ssl_session_cache shared:SSL:SIZE`) against the module
# (`snicache_store shm:SIZE`), same size, 4 workers, TLS 1.3, tickets off (every session in
# the server's cache: OpenSSL stores two per full handshake). N clients each make a full
# handshake and keep their session, then each offers it once (scripts/capacity.py); the
# number resumed is what the cache kept of the last N clients. Run with N above both
# capacities to read sessions (clients) per MB.
#   scripts/bench-nginx-capacity.sh [SIZE_MB [N...]]      (default: 1 MB, N = 2000 4000 8000)
# Figures go in BENCHMARKS.md by hand (this prints them).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MB=${1:-1}
shift || true
NS=("${@:-2000 4000 8000}")
# shellcheck disable=SC2206
NS=(${NS[*]})
source "$ROOT/tests/blackbox/lib/common.sh"
source "$ROOT/tests/blackbox/lib/nginx.sh"
make_certs a.test b.test
PORT=$(free_port)
STATUS_PORT=$(free_port)
PY=$ROOT/target/py/bin/python
[ -x "$PY" ] || PY=python3
echo "sessions kept of N clients (TLS 1.3, tickets off, 4 workers, ${MB}m)"
printf '%8s %10s %10s\n' N stock module
for n in "${NS[@]}"; do
    row=()
    for variant in stock module; do
        D=$TMP/$variant.$n
        if [ $variant = stock ]; then
            conf "$D" no 4 "ssl_session_cache shared:SSL:${MB}m; ssl_session_tickets off;"
        else
            conf "$D" yes 4 "snicache on; snicache_store shm:${MB}m;" "ssl_session_tickets off;"
        fi
        start_nginx "$D"
        row+=("$("$PY" "$ROOT/scripts/capacity.py" "$PORT" "$n" 4)")
        stop_nginx "$D"
    done
    printf '%8s %10s %10s\n' "$n" "${row[0]}" "${row[1]}"
done
