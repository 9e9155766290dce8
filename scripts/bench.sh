#!/usr/bin/env bash
# Runs every benchmark the project has and writes BENCHMARKS.md with the machine, the commands,
# the figures (as ratios against a baseline in the same run) and the date: the in-process
# handshake benchmark (snicache vs OpenSSL's internal cache, 1 and 2 threads, callgrind), the
# memory store and the shm store micro-benchmarks, then scripts/bench-redis.sh (needs
# redis-server) and scripts/bench-nginx.sh (needs nginx and h2load), which write their own
# sections, and last a chart of handshakes per second per configuration
# (docs/benchmarks-handshakes.png, scripts/bench-chart.py; installs python3-matplotlib if missing).
# Figures only: nothing here passes or fails on speed (shared machines are noisy).
#   scripts/bench.sh            full run (several minutes)
#   scripts/bench.sh --quick    short run, to check that everything works
# SNICACHE_BENCH_SKIP="nginx redis" leaves those out (their sections already in BENCHMARKS.md
# are kept as they are), e.g. while someone else is measuring with them.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=()
store_args=()
if [ "${1:-}" = "--quick" ]; then
    quick=(-q)
    store_args=(-- --quick)
fi

cargo build --release --locked
make -s -C c-tests bench PROFILE=release
bench=target/c/release/bench_handshake

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

echo "=== store micro-benchmark" >&2
cargo bench --locked --bench store "${store_args[@]}" 2>/dev/null | tee "$tmp/store" >&2
echo "=== handshakes, 1 thread" >&2
"$bench" -t 1 "${quick[@]}" | tee "$tmp/hs1" >&2
echo "=== handshakes, 2 threads" >&2
"$bench" -t 2 "${quick[@]}" | tee "$tmp/hs2" >&2
shm=""
if [ -f benches/shm.rs ]; then
    echo "=== shm store vs memory store" >&2
    cargo bench --locked --bench shm "${store_args[@]}" 2>/dev/null | tee "$tmp/shm" >&2
    shm=$tmp/shm
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# Instructions per resumed handshake under callgrind: deterministic where wall time is not.
# Totals (client + server) for each variant, two runs each, and the instructions spent in
# snicache's callbacks (the snicache_ssl.h trampolines, inclusive).
callgrind=""
if command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null; then
    echo "=== callgrind (instructions per resumed handshake)" >&2
    n=1000
    [ ${#quick[@]} -eq 0 ] || n=100
    for v in internal snicache decode-every-hit; do
        for run in 1 2; do
            valgrind --tool=callgrind --toggle-collect=run_job --callgrind-out-file="$tmp/cg.$v.$run" \
                "$bench" -r 1 -n $n -v "$v" >/dev/null 2>"$tmp/cg.$v.$run.log"
        done
        totals=$(for run in 1 2; do
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$tmp/cg.$v.$run.log" | awk -v n=$n '{printf "%.0f ", $1 / n}'
        done)
        cb=$(callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$tmp/cg.$v.1" 2>/dev/null |
            awk -v n=$n '/snicache_ssl\.h:snicache_ssl__(client_hello|servername|get_session|new_session|remove_session|info|free_conn) \[|bench_handshake\.c:dec_get \[/ {gsub(",", "", $1); s += $1} END {printf "%.0f", s / n}')
        # The internal cache runs inside libssl: its share cannot be separated.
        [ "$v" = internal ] && cb="(inside libssl)"
        callgrind+="| $v | ${totals% } | $cb |"$'\n'
    done
fi

# The section scripts/bench-nginx.sh writes survives this rewrite.
# Sections other scripts write (between <!-- NAME:begin --> and <!-- NAME:end -->) are kept.
kept=$(sed -n '/<!-- [a-z-]*:begin/,/<!-- [a-z-]*:end -->/p' BENCHMARKS.md 2>/dev/null || true)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "# Benchmarks"
    echo
    echo "Written by \`scripts/bench.sh${1:+ $1}\` on $(date -u '+%Y-%m-%d %H:%M UTC'). Figures, not"
    echo "pass/fail tests: the machine is shared, so compare the ratios (measured in the same run,"
    echo "rounds interleaved) rather than absolute rates across machines."
    echo
    echo "- Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sm)"
    echo "- OpenSSL: $(openssl version 2>/dev/null || echo unknown); $(rustc --version)"
    echo "- Load average (1/5/15 min) before: $load_before; after: $load_after"
    echo "- Commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include c-tests benches || echo ' (with local changes)')"
    [ ${#quick[@]} -eq 0 ] || echo "- A \`--quick\` run (fewer rounds and handshakes): noisier figures."
    if awk -v l="${load_before%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n) }'; then
        echo "- The machine was busy (load average above its $(nproc) CPUs, from other work): absolute"
        echo "  rates are depressed and noisy; the interleaved ratios and the callgrind instruction"
        echo "  counts (which load does not change) are what to read."
    fi
    [ -z "${SNICACHE_BENCH_SKIP:-}" ] ||
        echo "- Left out of this run: ${SNICACHE_BENCH_SKIP} (their sections below keep their own date)."
    echo
    echo "![Handshakes per second per configuration](docs/benchmarks-handshakes.png)"
    echo
    echo "Every table below with a handshakes/s column, one bar per row (\`scripts/bench-chart.py\`)."
    echo
    echo "## Resumed TLS 1.2 handshakes per second"
    echo
    echo "\`make -C c-tests bench PROFILE=release && target/c/release/bench_handshake -t 1${quick[*]:+ ${quick[*]}}\`"
    echo "(source: \`c-tests/bench_handshake.c\`). Client and server run in the same thread over memory"
    echo "BIOs, so each figure includes the client's work too, which dilutes the cache's share."
    echo
    echo '```'
    cat "$tmp/hs1"
    echo '```'
    echo
    echo "Two threads on one shared listener (\`-t 2\`): handshakes/s summed over both threads."
    echo
    echo '```'
    cat "$tmp/hs2"
    echo '```'
    echo
    if [ -n "$callgrind" ]; then
        echo "### Instructions per resumed handshake (callgrind)"
        echo
        echo "\`valgrind --tool=callgrind --toggle-collect=run_job $bench -r 1 -n $n -v <variant>\`,"
        echo "client and server together, two runs each (OpenSSL's own work varies a little between"
        echo "runs); the last column is what the cache's callbacks execute: snicache's trampolines"
        echo "(ClientHello, session lookup, info, servername, connection free) or the C cache's \`dec_get\`."
        echo
        echo "| variant | instructions per handshake (run 1, run 2) | in the cache callbacks |"
        echo "|---|---:|---:|"
        printf '%s' "$callgrind"
        echo
    fi
    echo "## Memory store"
    echo
    echo "\`cargo bench --bench store${store_args[*]:+ ${store_args[*]}}\` (source: \`benches/store.rs\`)."
    echo
    sed -n '/^memory store/,$p' "$tmp/store"
    if [ -n "$shm" ]; then
        echo
        echo "## Shared-memory store"
        echo
        echo "\`cargo bench --bench shm${store_args[*]:+ ${store_args[*]}}\` (source: \`benches/shm.rs\`): read the ratios (memory and shm"
        echo "rounds interleaved), not the absolute ns. \"2\" is two forked processes on one mapping for shm and"
        echo "two threads on one store for memory. The shm store copies the record out on a hit (the memory"
        echo "store hands back a reference-counted one and, in process, the host's decoded session)."
        echo
        echo '```'
        sed -n '/^shm vs memory/,$p' "$shm"
        echo '```'
    fi
    [ -z "$kept" ] || printf '\n%s\n' "$kept"
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2

skip=" ${SNICACHE_BENCH_SKIP:-} "
if [[ $skip != *" redis "* ]]; then
    if command -v redis-server >/dev/null && [ -x scripts/bench-redis.sh ]; then
        scripts/bench-redis.sh ${1:+"$1"}
    else
        echo "bench: no redis-server, the Redis section is left as it is" >&2
    fi
fi
if [[ $skip != *" nginx "* ]]; then
    if command -v nginx >/dev/null && command -v h2load >/dev/null && [ -x scripts/bench-nginx.sh ]; then
        scripts/bench-nginx.sh ${1:+"$1"}
    else
        echo "bench: no nginx or h2load, the nginx section is left as it is" >&2
    fi
fi

# Debian's python3-matplotlib is for Debian's python3 (another python3 may come first in PATH).
py=python3
python3 -c 'import matplotlib' 2>/dev/null || py=/usr/bin/python3
if ! $py -c 'import matplotlib' 2>/dev/null; then
    echo "bench: installing python3-matplotlib for the chart" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-matplotlib >/dev/null
fi
$py scripts/bench-chart.py BENCHMARKS.md docs/benchmarks-handshakes.png
