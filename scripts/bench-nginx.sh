#!/usr/bin/env bash
# Resumed handshakes per second through Debian's nginx: nginx + ngx_http_snicache_module
# (snicache_store shm:64m) against stock nginx with `ssl_session_cache shared:SSL:10m`, TLS 1.2
# and 1.3 each with `ssl_session_tickets off` and `on`, one worker each, both running at once on loopback and driven
# by h2load in interleaved rounds (`Connection: close`: one handshake per request; all but each
# client's first resume). Figures, not a pass/fail test. Writes its section of BENCHMARKS.md
# (between the nginx markers; scripts/bench.sh keeps it).
#   scripts/bench-nginx.sh            7 rounds x 10000 connections per variant and TLS version
#   scripts/bench-nginx.sh --quick    2 rounds x 3000
#   scripts/bench-nginx.sh --boringssl [--quick]   the same with nginx 1.30.4 on BoringSSL
#       (scripts/build-nginx-boringssl.sh, the module compiled in; its own BENCHMARKS.md section).
#       BoringSSL resumes TLS 1.3 by tickets only: it has no TLS 1.3 tickets-off row.
# Tickets on: stock uses the SSL library's own ticket keys, the module snicache's per-vhost
# ticket AEAD; h2load offers each client's first ticket again on every connection.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

rounds=7
n=10000
boringssl=no
for a in "$@"; do
    case $a in
    --quick) rounds=2 n=3000 ;;
    --boringssl) boringssl=yes ;;
    *) echo "usage: $0 [--quick] [--boringssl]" >&2; exit 2 ;;
    esac
done
clients=8

if [ $boringssl = yes ]; then
    NGINX_BIN=$(scripts/build-nginx-boringssl.sh)
    nginx() { "$NGINX_BIN" "$@"; }
    MODULE=
    tag=nginx-boringssl
else
    make -s -C nginx
    MODULE=$ROOT/target/nginx/ngx_http_snicache_module.so
    tag=nginx
fi
# The runs: protocol and ssl_session_tickets value.
runs=("TLSv1.2 off" "TLSv1.2 on" "TLSv1.3 off" "TLSv1.3 on")
[ $boringssl = yes ] && runs=("TLSv1.2 off" "TLSv1.2 on" "TLSv1.3 on")
tmp=$(mktemp -d)
dirs=()
stop_all() {
    local d pid
    for d in "${dirs[@]}"; do
        pid=$(cat "$d/nginx.pid" 2>/dev/null) || continue
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    rm -rf "$tmp"
}
trap stop_all EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=a.test" \
    -addext "subjectAltName=DNS:a.test" -keyout "$tmp/a.key" -out "$tmp/a.crt" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=b.test" \
    -addext "subjectAltName=DNS:b.test" -keyout "$tmp/b.key" -out "$tmp/b.crt" 2>/dev/null
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start VARIANT PROTOCOLS TICKETS: sets PORT (no subshell, so stop_all sees the directory)
start() {
    local variant=$1 protocols=$2 tickets=$3 d=$tmp/$1.$2.$3 port
    port=$(free_port)
    mkdir -p "$d/tmp"
    {
        [ "$variant" = module ] && [ -n "$MODULE" ] && echo "load_module $MODULE;"
        echo "worker_processes 1; pid $d/nginx.pid; error_log $d/error.log;"
        echo "events { worker_connections 1024; }"
        echo "http {"
        for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $d/tmp;"; done
        echo "  log_format r '\$ssl_session_reused';"
        echo "  access_log $d/access.log r buffer=64k flush=1s; ssl_protocols $protocols; ssl_session_tickets $tickets;"
        if [ "$variant" = module ]; then
            echo "  snicache on; snicache_store shm:64m;"
        else
            echo "  ssl_session_cache shared:SSL:10m;"
        fi
        for name in a b; do
            echo "  server { listen 127.0.0.1:$port ssl; server_name $name.test;"
            echo "    ssl_certificate $tmp/$name.crt; ssl_certificate_key $tmp/$name.key;"
            echo "    location / { return 200 'ok\n'; } }"
        done
        echo "}"
    } >"$d/nginx.conf"
    nginx -p "$d" -c "$d/nginx.conf"
    dirs+=("$d")
    for _ in $(seq 50); do
        timeout 2 bash -c "</dev/tcp/127.0.0.1/$port" 2>/dev/null && break
        sleep 0.1
    done
    PORT=$port
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=""
for run in "${runs[@]}"; do
    read -r protocols tickets <<<"$run"
    start stock "$protocols" "$tickets"
    stock_port=$PORT
    start module "$protocols" "$tickets"
    module_port=$PORT
    : >"$tmp/rates"
    for r in $(seq "$rounds"); do
        for variant in stock module; do
            port=$stock_port
            [ "$variant" = module ] && port=$module_port
            out=$(h2load --h1 -c $clients -n $n -H 'Connection: close' --connect-to="127.0.0.1:$port" https://a.test/ 2>&1)
            grep -q "$n succeeded, 0 failed, 0 errored" <<<"$out" || { echo "h2load failed: $out" >&2; exit 1; }
            rate=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
            echo "$protocols tickets $tickets round $r $variant: $rate req/s" >&2
            echo "$r $variant $rate" >>"$tmp/rates"
        done
    done
    sleep 1.5 # the access logs' buffers flush
    stock_r=$(grep -c '^r$' "$tmp/stock.$protocols.$tickets/access.log" || true)
    module_r=$(grep -c '^r$' "$tmp/module.$protocols.$tickets/access.log" || true)
    line=$(python3 - "$tmp/rates" "$protocols" "$tickets" "$stock_r" "$module_r" "$((rounds * n))" <<'EOF'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for r, v, rate in rows:
    by.setdefault(v, {})[r] = float(rate)
s, m = by["stock"], by["module"]
sr, mr, total = (int(x) for x in sys.argv[4:7])
ratios = [m[r] / s[r] for r in s]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {statistics.median(s.values()):.0f} ({min(s.values()):.0f}-{max(s.values()):.0f}) "
      f"| {statistics.median(m.values()):.0f} ({min(m.values()):.0f}-{max(m.values()):.0f}) "
      f"| {statistics.median(ratios):.3f}x ({min(ratios):.3f}-{max(ratios):.3f}) "
      f"| {100 * sr / total:.1f}% / {100 * mr / total:.1f}% |")
EOF
)
    results+="$line"$'\n'
    echo "$line" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

section=$(
    echo "<!-- $tag:begin (written by scripts/bench-nginx.sh) -->"
    if [ $boringssl = yes ]; then
        echo "## nginx 1.30.4 on BoringSSL: resumed handshakes per second"
    else
        echo "## nginx: resumed handshakes per second"
    fi
    echo
    echo "\`scripts/bench-nginx.sh${*:+ $*}\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nginx -v 2>&1 | sed 's/^nginx version: //'),"
    echo "$(nproc) CPUs, load average before: $load_before; after: $load_after; commit $(git rev-parse --short HEAD)."
    echo "Stock nginx (\`ssl_session_cache shared:SSL:10m\`) and nginx + ngx_http_snicache_module"
    echo "(\`snicache on; snicache_store shm:64m;\`) run at the same time, one worker each, with"
    echo "\`ssl_session_tickets\` off (session ids / stateful sessions) and on (stock: the SSL library's own"
    echo "ticket keys; module: snicache's per-vhost ticket AEAD)$([ $boringssl = yes ] && echo '; BoringSSL resumes TLS 1.3 by tickets only, so it has no TLS 1.3 tickets-off row');"
    echo "h2load (\`--h1 -c $clients -n $n -H 'Connection: close'\`, SNI a.test) drives them in $rounds interleaved"
    echo "rounds, so every request is a handshake and all but each client's first resume. h2load shares"
    echo "the machine's CPUs with nginx. Figures: requests (= handshakes) per second, median (min-max);"
    echo 'the ratio is the median of the per-round ratios; the last column counts `$ssl_session_reused` in'
    echo "each access log."
    echo
    echo "| protocol | tickets | stock nginx, shared:SSL:10m | nginx + snicache, shm:64m | module / stock | resumed (stock / module, access log) |"
    echo "|---|---|---:|---:|---:|---:|"
    printf '%s' "$results"
    echo "<!-- $tag:end -->"
)
if [ -f BENCHMARKS.md ] && grep -q "<!-- $tag:begin" BENCHMARKS.md; then
    python3 - "$section" "$tag" <<'EOF'
import re, sys
text = open("BENCHMARKS.md").read()
tag = re.escape(sys.argv[2])
text = re.sub(r"<!-- " + tag + r":begin.*?<!-- " + tag + r":end -->", lambda _: sys.argv[1], text, flags=re.S)
open("BENCHMARKS.md", "w").write(text)
EOF
else
    printf '\n%s\n' "$section" >>BENCHMARKS.md
fi
echo "wrote the $tag section of BENCHMARKS.md" >&2
