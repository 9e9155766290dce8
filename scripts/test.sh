#!/usr/bin/env bash
# The whole test suite: Rust unit and integration tests, Miri and ThreadSanitizer over the
# stores and engine (scripts/miri.sh, scripts/tsan.sh), the C tests (plain, ASan+UBSan, and
# valgrind with SNICACHE_TEST_QUICK=1 so long tests run fewer rounds), and the black-box tests
# against the demo server. Prints "N passed, M failed" last and exits non-zero when anything
# failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

passed=0
failed=0
failures=()
step() {
    local name=$1
    shift
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "--- FAILED: $name"
    fi
}

# test-hooks: the library also exports snicache_debug_shm_mapping, for c-tests/test_shm_garbage.c.
step "cargo build" cargo build --locked --features test-hooks
step "cargo test" cargo test --locked --features test-hooks
# Ignored by default (a million sessions): resident memory within the bound, flat lookups.
step "flood: 1M sessions into 10m stores" cargo test --locked --features test-hooks --test flood -- --ignored --nocapture --test-threads 1
# Nightly checks for undefined behaviour and data races (each a few minutes on 2 cores).
step "miri: engine, record, memory store" scripts/miri.sh
step "tsan: shm and Redis stores" scripts/tsan.sh
step "c-tests build (plain, asan)" make -s -C c-tests all asan
for t in target/c/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    step "c $n" "$t"
    step "c $n (asan+ubsan)" env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "target/c/asan/$n"
    step "c $n (valgrind)" env SNICACHE_TEST_QUICK=1 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$t"
done
for t in tests/blackbox/*.sh; do
    [ -f "$t" ] || continue
    step "blackbox $(basename "$t" .sh)" bash "$t"
done
# libFuzzer smoke runs (docs/fuzzing.md): nightly, built once into fuzz/target; 5 s per target
# from its committed corpus. Fails loudly without nightly.
step "fuzz build (nightly, ASan, sancov)" scripts/fuzz-smoke.sh --build
for t in $(scripts/fuzz-smoke.sh --list); do
    step "fuzz $t (5 s)" scripts/fuzz-smoke.sh "$t" 5
done

if ((failed)); then
    printf 'failed: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
((failed == 0))
