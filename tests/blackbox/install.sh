#!/usr/bin/env bash
# Installing like a C library: scripts/install.sh into a temporary prefix, the demo server built
# from demo/*.c against the installed copy with pkg-config only (no -I or -L into the tree), then
# one resumed handshake through it. Installs the debug build to spare CI a second (release)
# build of BoringSSL; scripts/install.sh without --debug is the same copy of a release build.
source "$(dirname "$0")/lib/common.sh"

prefix=$TMP/prefix
check "scripts/install.sh --debug PREFIX" "$ROOT/scripts/install.sh" --debug "$prefix"
for f in lib/libsnicache.so include/snicache.h include/snicache_ssl.h lib/pkgconfig/snicache.pc; do
    check "installed $f" test -f "$prefix/$f"
done

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs snicache | xargs)
expect_eq "pkg-config --cflags --libs snicache" "-I$prefix/include -L$prefix/lib -lsnicache" "$flags"
expect_eq "pkg-config --modversion snicache" \
    "$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -1)" "$(pkg-config --modversion snicache)"

# The demo server, compiled outside the tree's include/ and target/: only what pkg-config says.
demo=$TMP/snicache-demo-server
# shellcheck disable=SC2046 # word splitting of pkg-config output is intended
check "demo server builds against the installed copy" \
    cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -O1 -o "$demo" "$ROOT"/demo/*.c \
    $(pkg-config --cflags snicache openssl) $(pkg-config --libs snicache openssl) -lpthread \
    -Wl,-rpath,"$prefix/lib"
lib=$(ldd "$demo" 2>/dev/null | sed -n 's/.*libsnicache\.so => \([^ ]*\).*/\1/p')
expect_eq "demo loads the installed libsnicache.so" "$prefix/lib/libsnicache.so" "$lib"

SERVER=$demo
help_ok() { "$SERVER" --help >/dev/null; }
check "installed demo --help exits 0" help_ok
make_certs a.test
start_server --vhost "$(vhost a.test)" --default a.test --tickets off
client / -servername a.test -tls1_2 -sess_out "$TMP/sess" >"$TMP/first"
expect_eq "first handshake" New "$(outcome <"$TMP/first")"
client / -servername a.test -tls1_2 -sess_in "$TMP/sess" >"$TMP/second"
expect_eq "second handshake resumes" Reused "$(outcome <"$TMP/second")"
stop_server
finish
