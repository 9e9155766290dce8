#!/usr/bin/env bash
# ThreadSanitizer (nightly, std rebuilt with it) over the shm and Redis store tests: their unit
# tests, tests/redis_store.rs and tests/redis_invalidation.rs (which start their own
# redis-server on free loopback ports).
# BoringSSL's C code (boring-sys) is linked uninstrumented: TSan still sees every Rust access
# and every pthread call, and only our crypto runs in that C code. Run from scripts/test.sh
# after `cargo build`, whose BoringSSL build it reuses.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup +nightly component add rust-src
fi

# As in scripts/miri.sh: reuse the debug build's BoringSSL instead of building it again.
lib=$(ls -d target/debug/build/boring-sys-*/out/build/libcrypto.a 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ]; then
    cargo build --locked --lib
    lib=$(ls -d target/debug/build/boring-sys-*/out/build/libcrypto.a | head -n 1)
fi
out=$(dirname "$(dirname "$lib")")
export BORING_BSSL_PATH="$PWD/$out/build" BORING_BSSL_INCLUDE_PATH="$PWD/$out/boringssl/include"

export RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
target=$(rustc +nightly -vV | sed -n 's/^host: //p')
cargo=(cargo +nightly test --locked -Zbuild-std --target "$target" --target-dir target/tsan)
"${cargo[@]}" --lib -- store::shm store::redis "$@"
"${cargo[@]}" --test redis_invalidation -- "$@"
# One test skipped here only (it runs in `cargo test`): its forked child starts threads, which
# TSan cannot follow after a fork of a multi-threaded process (it dies: "starting new threads
# after multi-threaded fork is not supported").
"${cargo[@]}" --test redis_store -- --skip a_forked_child_writes_and_fetches_through_its_own_threads "$@"
