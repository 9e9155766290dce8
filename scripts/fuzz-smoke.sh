#!/usr/bin/env bash
# libFuzzer targets in fuzz/ (docs/fuzzing.md), built with a nightly toolchain and the same
# sanitizer-coverage flags cargo-fuzz uses, without needing cargo-fuzz itself.
#   scripts/fuzz-smoke.sh --build              build every target
#   scripts/fuzz-smoke.sh TARGET [SECONDS]     build, then fuzz TARGET for SECONDS (default 5)
#                                              from its committed corpus (fuzz/corpus/TARGET)
#   scripts/fuzz-smoke.sh --list               the targets, one a line
# Extra libFuzzer flags can follow SECONDS (e.g. -jobs=2). New corpus entries go to a temporary
# directory; a crash is copied to fuzz/artifacts/TARGET/ and fails the run. Without a nightly
# toolchain this fails loudly: it never passes without having fuzzed.
set -uo pipefail
cd "$(dirname "$0")/.."

targets=()
for f in fuzz/fuzz_targets/*.rs; do
    t=$(basename "$f" .rs)
    targets+=("$t")
done
if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${targets[@]}"
    exit 0
fi

if ! nightly=$(cargo +nightly --version 2>/dev/null); then
    echo "!!! FUZZ SMOKE CANNOT RUN: no nightly toolchain ('rustup toolchain install nightly')." >&2
    echo "!!! libFuzzer targets need nightly (-Zsanitizer); this step FAILS rather than skip." >&2
    exit 1
fi
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-fuzz/target}
# cargo-fuzz's defaults (`cargo fuzz build`): coverage-guided, ASan, debug assertions and
# overflow checks on, --cfg fuzzing. --target keeps the flags off build scripts.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Zsanitizer=address -Cdebug-assertions -Coverflow-checks -Cforce-frame-pointers"
build() {
    echo "fuzz: building ${targets[*]} with $nightly" >&2
    cargo +nightly build --manifest-path fuzz/Cargo.toml --locked --release --target "$host" --bins ||
        { echo "!!! FUZZ SMOKE: the fuzz targets do not build (stale fuzz/Cargo.lock? see docs/fuzzing.md)" >&2; return 1; }
}

if [ "${1:-}" = "--build" ]; then
    build
    exit
fi
target=${1:?usage: scripts/fuzz-smoke.sh --build | --list | TARGET [SECONDS [LIBFUZZER FLAGS...]]}
seconds=${2:-5}
shift $(($# < 2 ? $# : 2))
if [ ! -f "fuzz/fuzz_targets/$target.rs" ]; then
    echo "fuzz: no target $target (have: ${targets[*]})" >&2
    exit 2
fi
build >/dev/null 2>&1 || build || exit 1
bin=$CARGO_TARGET_DIR/$host/release/$target
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/corpus" "$tmp/artifacts" "fuzz/corpus/$target"
echo "fuzz: $target for ${seconds}s from fuzz/corpus/$target ($(find "fuzz/corpus/$target" -type f | wc -l) inputs)" >&2
"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$tmp/artifacts/" "$@" "$tmp/corpus" "fuzz/corpus/$target" 2>"$tmp/log"
rc=$?
grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|INFO: Running with|==[0-9]+==ERROR|SUMMARY)' "$tmp/log" >&2
if [ $rc -ne 0 ] || [ -n "$(ls -A "$tmp/artifacts")" ]; then
    mkdir -p "fuzz/artifacts/$target"
    cp "$tmp/artifacts/"* "fuzz/artifacts/$target/" 2>/dev/null
    tail -60 "$tmp/log" >&2
    echo "!!! FUZZ: $target FAILED (exit $rc); reproducer(s) in fuzz/artifacts/$target/" >&2
    exit 1
fi
echo "fuzz: $target ok" >&2
