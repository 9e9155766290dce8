#!/usr/bin/env bash
# Builds the release library, runs the store micro-benchmark and the handshake benchmark, and
# writes BENCHMARKS.md with the machine, the commands, the figures and the date.
# Figures only: nothing here passes or fails on speed (shared machines are noisy).
#   scripts/bench.sh            full run (a few minutes)
#   scripts/bench.sh --quick    short run, to check that everything works
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
nginx_section=$(sed -n '/<!-- nginx:begin/,/<!-- nginx:end -->/p' BENCHMARKS.md 2>/dev/null || true)
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
    [ -z "$nginx_section" ] || printf '\n%s\n' "$nginx_section"
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md" >&2
