#!/usr/bin/env bash
# Builds nginx 1.30.4 against BoringSSL with ngx_http_snicache_module compiled in:
#   target/nginx-boringssl/sbin/nginx   (`nginx -V` says BoringSSL)
# BoringSSL is the copy boring-sys builds for snicache's own crypto (cargo build --release):
# its headers and static libraries come from the boring-sys build output directory that cargo
# reports (--message-format=json), so no second BoringSSL build. nginx's source is the vendored
# tarball ../shared/vendor/nginx-1.30.4.tar.gz beside the checkout (NGINX_TARBALL overrides),
# unpacked into target/nginx-boringssl/src. Configure: --with-compat --with-http_ssl_module
# --with-http_v2_module --with-http_v3_module; modules the tests do not use are left out.
# Runs only what changed: a second call with the same inputs prints the binary's path at once.
#   scripts/build-nginx-boringssl.sh          build (if needed); prints the nginx binary's path
#   scripts/build-nginx-boringssl.sh --force  rebuild nginx
set -euo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
ROOT=$PWD
TARBALL=${NGINX_TARBALL:-$ROOT/../shared/vendor/nginx-1.30.4.tar.gz}
OUT=$ROOT/target/nginx-boringssl
BIN=$OUT/sbin/nginx
LOG=$OUT/build.log
mkdir -p "$OUT"
[ -f "$TARBALL" ] || { echo "build-nginx-boringssl: $TARBALL missing (nginx 1.30.4 source, see ../shared/vendor)" >&2; exit 1; }

# libsnicache.so (release) and boring-sys's output directory, from the same cargo invocation.
json=$(cargo build --release --locked --message-format=json 2>"$OUT/cargo.err") ||
    { cat "$OUT/cargo.err" >&2; echo "build-nginx-boringssl: cargo build --release failed" >&2; exit 1; }
BSSL=$(python3 -c '
import json, re, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    # package_id: "registry+...#boring-sys@5.4.0" (cargo >= 1.77) or "boring-sys 5.4.0 (...)"
    if m.get("reason") == "build-script-executed" and re.search(r"(^|[#/ ])boring-sys[@ ]", m.get("package_id", "")):
        print(m["out_dir"])
        break
' <<<"$json")
[ -n "$BSSL" ] || { echo "build-nginx-boringssl: cargo reported no boring-sys build output" >&2; exit 1; }
INC=$BSSL/boringssl/include
LIBS=$BSSL/build
for f in "$INC/openssl/ssl.h" "$LIBS/libssl.a" "$LIBS/libcrypto.a" "$ROOT/target/release/libsnicache.so"; do
    [ -f "$f" ] || { echo "build-nginx-boringssl: $f missing" >&2; exit 1; }
done

# Rebuild when an input is newer than the binary.
if [ "${1:-}" != --force ] && [ -x "$BIN" ]; then
    newer=$(find "$TARBALL" "$SELF" "$ROOT/nginx/config" "$ROOT/nginx/ngx_http_snicache_module.c" \
        "$ROOT/nginx/ngx_snicache_common.c" "$ROOT/nginx/ngx_snicache_common.h" \
        "$ROOT/include/snicache.h" "$ROOT/include/snicache_ssl.h" "$LIBS/libssl.a" "$LIBS/libcrypto.a" \
        -newer "$BIN" 2>/dev/null | head -1)
    if [ -z "$newer" ]; then
        echo "$BIN"
        exit 0
    fi
fi

start=$(date +%s)
# Configure again only when nginx's source, this script, the module's config or BoringSSL
# changed; a changed module source or snicache header only recompiles the module and relinks.
stale_configure=yes
if [ -f "$OUT/src/objs/Makefile" ] && [ -z "$(find "$TARBALL" "$SELF" "$ROOT/nginx/config" \
    "$LIBS/libssl.a" "$LIBS/libcrypto.a" -newer "$OUT/src/objs/Makefile" 2>/dev/null | head -1)" ]; then
    stale_configure=no
fi
rm -f "$BIN"
mkdir -p "$OUT/sbin"
if [ $stale_configure = yes ]; then
rm -rf "$OUT/src"
mkdir -p "$OUT/src"
tar xzf "$TARBALL" -C "$OUT/src" --strip-components=1
cd "$OUT/src"
# BoringSSL's libssl is C++: libstdc++ is named before -lssl on nginx's link line, hence
# --no-as-needed. Headers first on the include path and libraries first on the library path, so
# the system's OpenSSL is not picked up.
if ! SNICACHE_ROOT=$ROOT SNICACHE_LIB_DIR=$ROOT/target/release auto/configure \
    --prefix="$OUT" --sbin-path="$BIN" --error-log-path=stderr \
    --with-compat --with-http_ssl_module --with-http_v2_module --with-http_v3_module \
    --with-threads \
    --without-http_gzip_module --without-http_charset_module --without-http_ssi_module \
    --without-http_userid_module --without-http_auth_basic_module --without-http_mirror_module \
    --without-http_autoindex_module --without-http_geo_module --without-http_split_clients_module \
    --without-http_referer_module --without-http_grpc_module --without-http_memcached_module \
    --without-http_empty_gif_module --without-http_browser_module \
    --without-http_upstream_hash_module --without-http_upstream_ip_hash_module \
    --without-http_upstream_least_conn_module --without-http_upstream_random_module \
    --without-http_upstream_keepalive_module --without-http_upstream_zone_module \
    --with-cc-opt="-I$INC" \
    --with-ld-opt="-L$LIBS -Wl,--no-as-needed -lstdc++ -lpthread" \
    --add-module="$ROOT/nginx" >"$LOG" 2>&1; then
    tail -30 "$LOG" >&2
    echo "build-nginx-boringssl: configure failed ($LOG)" >&2
    exit 1
fi
fi
cd "$OUT/src"
if ! make -j"$(nproc)" -f objs/Makefile binary >>"$LOG" 2>&1; then
    grep -E 'error|Error' "$LOG" | head -30 >&2
    echo "build-nginx-boringssl: make failed ($LOG)" >&2
    exit 1
fi
cp objs/nginx "$BIN"
version=$("$BIN" -V 2>&1)
grep -q BoringSSL <<<"$version" || { echo "$version" >&2; echo "build-nginx-boringssl: not built with BoringSSL" >&2; exit 1; }
echo "build-nginx-boringssl: nginx built in $(($(date +%s) - start)) s" >&2
echo "$BIN"
