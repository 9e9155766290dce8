#!/usr/bin/env bash
# The Redis store's figures: resumed TLS 1.2 handshakes per second with the Redis store (memory
# tier in front) against the memory store in the same run (c-tests/bench_handshake.c, variant
# snicache+redis), and lookup latency p50/p99 for local hits and misses (benches/redis.rs).
# Starts its own redis-server on a free loopback port and stops it on exit. Writes the redis
# section of BENCHMARKS.md. Figures only, never pass/fail.
#   scripts/bench-redis.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "bench-redis: redis-server not installed (scripts/deps.sh)" >&2; exit 1; }

quick=()
lookup_args=()
if [ "${1:-}" = "--quick" ]; then
    quick=(-q)
    lookup_args=(-- --quick)
fi
cargo build --release --locked
make -s -C c-tests bench PROFILE=release

. scripts/lib/redis-server.sh

echo "=== handshakes with the Redis store, 1 thread" >&2
SNICACHE_BENCH_REDIS="redis://127.0.0.1:$port" target/c/release/bench_handshake -t 1 "${quick[@]}" | tee "$tmp/hs" >&2
echo "=== lookup latency" >&2
cargo bench --locked --bench redis "${lookup_args[@]}" 2>/dev/null | sed -n '/^redis store lookup/,$p' | tee "$tmp/lookup" >&2

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
{
    echo "<!-- redis:begin (written by scripts/bench-redis.sh) -->"
    echo "## Redis store"
    echo
    echo "\`scripts/bench-redis.sh${1:+ $1}\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, ${cpu:-unknown CPU},"
    echo "$(redis-server --version | cut -d' ' -f1-3), commit $(git rev-parse --short HEAD)."
    echo "redis-server runs on the same machine (loopback), sharing the CPUs with the benchmark."
    echo
    echo "Resumed TLS 1.2 handshakes per second, all variants interleaved in one run; the line that"
    echo "matters here is \`snicache+redis\` (Redis store, sessions resumed from its memory tier and"
    echo "written to Redis in the background) against \`snicache\` (memory store):"
    echo
    echo '```'
    cat "$tmp/hs"
    echo '```'
    echo
    echo "Lookup latency (\`cargo bench --bench redis${lookup_args[*]:+ ${lookup_args[*]}}\`, source \`benches/redis.rs\`): a local-tier"
    echo "hit costs what a memory-store hit costs; a local miss costs one loopback round trip to Redis"
    echo "(plus opening the sealed record on a hit), bounded by the lookup budget (\`budget_ms\`, 5 ms"
    echo "by default)."
    echo
    cat "$tmp/lookup"
    echo "<!-- redis:end -->"
} >"$tmp/section"
python3 - "$tmp/section" <<'PY'
import re, sys
section = open(sys.argv[1]).read().rstrip("\n")
try:
    text = open("BENCHMARKS.md").read()
except FileNotFoundError:
    text = "# Benchmarks\n"
if "<!-- redis:begin" in text:
    text = re.sub(r"<!-- redis:begin.*?<!-- redis:end -->", lambda m: section, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open("BENCHMARKS.md", "w").write(text)
PY
echo "wrote the redis section of BENCHMARKS.md" >&2
