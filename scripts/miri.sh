#!/usr/bin/env bash
# Miri (nightly) over the unit tests that run no foreign code: the engine, the record format and
# the memory store. Tests that do call C (BoringSSL through `boring`, or libc beyond what Miri
# emulates) are marked `#[cfg_attr(miri, ignore)]` where they are written. Run from
# scripts/test.sh after `cargo build`, whose BoringSSL build it reuses.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^miri'; then
    rustup +nightly component add miri rust-src
fi

# boring-sys's build script would build BoringSSL once more for Miri's own target directory;
# Miri never runs that C code, so hand it the libraries and headers the debug build made.
lib=$(ls -d target/debug/build/boring-sys-*/out/build/libcrypto.a 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ]; then
    cargo build --locked --lib
    lib=$(ls -d target/debug/build/boring-sys-*/out/build/libcrypto.a | head -n 1)
fi
out=$(dirname "$(dirname "$lib")")
export BORING_BSSL_PATH="$PWD/$out/build" BORING_BSSL_INCLUDE_PATH="$PWD/$out/boringssl/include"

# parking_lot keeps a thread queue's address in an integer: tolerate that, quietly.
export MIRIFLAGS="-Zmiri-permissive-provenance ${MIRIFLAGS:-}"
cargo +nightly miri test --locked --lib -- engine:: record:: store::memory:: "$@"
