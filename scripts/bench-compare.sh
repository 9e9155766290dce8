#!/usr/bin/env bash
# Resumed handshakes per second of this checkout against an earlier commit, in the same run: did a
# change cost anything? Builds REV's library (release) from `git archive REV` into
# target/compare/REV, compiles this checkout's c-tests/bench_handshake.c against each library
# (against REV's own headers; REV's bench source if this one does not compile there), then runs
# the variants both binaries have, alternating old and new process by process so drifting load
# hits both alike. Prints, per variant, the median handshakes/s of each and the median of the
# per-round new/old ratios. Starts its own redis-server for the snicache+redis variant.
# Figures only, never pass/fail.
#   scripts/bench-compare.sh REV [ROUNDS]     (default 9 rounds of 2000 handshakes per variant)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
[ $# -ge 1 ] || { echo "usage: $0 REV [ROUNDS]" >&2; exit 2; }
rev=$(git rev-parse --short "$1")
rounds=${2:-9}
head=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include c-tests/bench_handshake.c || echo +)

cargo build --release --locked
make -s -C c-tests bench PROFILE=release

old=$ROOT/target/compare/$rev
if [ ! -f "$old/lib/libsnicache.so" ]; then
    rm -rf "$old"
    mkdir -p "$old/src" "$old/lib"
    git archive "$rev" | tar -x -C "$old/src"
    # One build directory for every REV, seeded from this checkout's release build so the
    # dependencies (BoringSSL above all) are not built again.
    build=$ROOT/target/compare/build
    [ -d "$build/release" ] || { mkdir -p "$build"; cp -a target/release "$build/"; }
    (cd "$old/src" && CARGO_TARGET_DIR=$build cargo build --release --locked)
    cp "$build/release/libsnicache.so" "$old/lib/"
fi
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g)
libs=(-lssl -lcrypto -lpthread)
if ! cc "${cflags[@]}" -I"$old/src/include" -o "$old/bench_handshake" c-tests/bench_handshake.c \
    -L"$old/lib" -Wl,-rpath,"$old/lib" -lsnicache "${libs[@]}" 2>"$old/cc.log"; then
    echo "bench-compare: this bench source does not compile against $rev; using $rev's own" >&2
    cc "${cflags[@]}" -I"$old/src/include" -o "$old/bench_handshake" "$old/src/c-tests/bench_handshake.c" \
        -L"$old/lib" -Wl,-rpath,"$old/lib" -lsnicache "${libs[@]}"
fi
new=target/c/release/bench_handshake

. scripts/lib/redis-server.sh
export SNICACHE_BENCH_REDIS="redis://127.0.0.1:$port"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
variants=("internal" "snicache" "snicache (2 vhosts)" "snicache+shm" "snicache+redis" "internal tickets"
    "snicache tickets (revocation check)")
: >"$tmp/rates"
for r in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        for side in old new; do
            bin=$new
            [ $side = old ] && bin=$old/bench_handshake
            # -r 2: the first round warms the process up, the second is counted.
            out=$("$bin" -v "$v" -r 2 -n 2000 2>/dev/null) || continue
            rate=$(tail -1 <<<"$out" | sed -n 's/.*: \([0-9]*\) handshakes\/s/\1/p')
            [ -n "$rate" ] && printf '%s\t%s\t%s\t%s\n' "$r" "$v" "$side" "$rate" >>"$tmp/rates"
        done
    done
    echo "round $r of $rounds done" >&2
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

echo "Resumed TLS 1.2 handshakes/s, $head (new) against $rev (old), c-tests/bench_handshake.c,"
echo "1 thread, $rounds rounds x 2000 handshakes, old and new alternating per variant and round;"
echo "load average before: $load_before; after: $load_after."
echo
python3 - "$tmp/rates" <<'EOF'
import statistics, sys
rates = {}
for line in open(sys.argv[1]):
    r, v, side, rate = line.rstrip("\n").split("\t")
    rates.setdefault(v, {}).setdefault(side, {})[r] = float(rate)
print("| variant | old handshakes/s (median) | new handshakes/s (median) | new / old (median of per-round ratios, min-max) |")
print("|---|---:|---:|---:|")
for v, sides in rates.items():
    old, new = sides.get("old", {}), sides.get("new", {})
    common = [r for r in new if r in old]
    if not common:
        print(f"| {v} | {'-' if not old else round(statistics.median(old.values()))} | "
              f"{'-' if not new else round(statistics.median(new.values()))} | (not in both) |")
        continue
    ratios = [new[r] / old[r] for r in common]
    print(f"| {v} | {statistics.median(old.values()):.0f} | {statistics.median(new.values()):.0f} | "
          f"{statistics.median(ratios):.3f}x ({min(ratios):.3f}-{max(ratios):.3f}) |")
EOF
