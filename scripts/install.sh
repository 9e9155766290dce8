#!/usr/bin/env bash
# Installs snicache like a C library: builds the release cdylib and copies it, both headers and
# a pkg-config file into PREFIX:
#   PREFIX/lib/libsnicache.so
#   PREFIX/include/snicache.h, PREFIX/include/snicache_ssl.h
#   PREFIX/lib/pkgconfig/snicache.pc
# Then: PKG_CONFIG_PATH=PREFIX/lib/pkgconfig pkg-config --cflags --libs snicache
# snicache.pc names no SSL library: snicache_ssl.h is compiled against the host's own OpenSSL
# or BoringSSL headers, so add `openssl` (or BoringSSL's flags) yourself.
#   scripts/install.sh [--debug] PREFIX     (--debug installs the debug build; for tests)
# DESTDIR is honoured for packaging (files go to $DESTDIR$PREFIX; snicache.pc says PREFIX).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
if [ "${1:-}" = "--debug" ]; then
    profile=debug
    shift
fi
if [ $# -ne 1 ] || [ -z "$1" ]; then
    echo "usage: scripts/install.sh [--debug] PREFIX" >&2
    exit 2
fi
prefix=$1
case $prefix in
/*) ;;
*) prefix=$(cd "$(dirname "$prefix")" 2>/dev/null && pwd)/$(basename "$prefix") ||
    { echo "install: parent of $1 does not exist" >&2; exit 2; } ;;
esac
dest=${DESTDIR:-}$prefix

if [ "$profile" = release ]; then
    cargo build --release --locked --lib
else
    cargo build --locked --lib
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
description=$(sed -n 's/^description = "\(.*\)"$/\1/p' Cargo.toml | head -1)

install -d "$dest/lib/pkgconfig" "$dest/include"
install -m 0755 "target/$profile/libsnicache.so" "$dest/lib/libsnicache.so"
install -m 0644 include/snicache.h include/snicache_ssl.h "$dest/include/"
cat >"$dest/lib/pkgconfig/snicache.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: snicache
Description: $description
Version: $version
Libs: -L\${libdir} -lsnicache
Cflags: -I\${includedir}
PC
chmod 0644 "$dest/lib/pkgconfig/snicache.pc"
echo "installed snicache $version ($profile) into $dest" >&2
