#!/usr/bin/env bash
# Builds Debian packages of snicache for the machine's Debian release and packaged nginx:
#   libsnicache_VERSION_ARCH.deb           the library (stripped), in /usr/lib/MULTIARCH
#   libsnicache-dev_VERSION_ARCH.deb       snicache.h, snicache_ssl.h, snicache.pc
#   libsnicache-dbgsym_VERSION_ARCH.deb    the library's debug info, /usr/lib/debug/.build-id/
#   libnginx-mod-http-snicache_VERSION_ARCH.deb     ngx_http_snicache_module.so
#   libnginx-mod-stream-snicache_VERSION_ARCH.deb   ngx_stream_snicache_module.so
# The module packages are laid out as Debian's own (libnginx-mod-stream): the module in
# /usr/lib/nginx/modules, a load_module file in /usr/share/nginx/modules-available/, and a link
# in /etc/nginx/modules-enabled/ made on install and taken away on removal (postinst/postrm as
# dh_nginx writes them), depending on the nginx ABI the modules were built against.
#   scripts/build-debs.sh OUTDIR
# Needs: cargo, nginx-dev (the packaged nginx's source and configure flags), dpkg-deb, binutils.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: scripts/build-debs.sh OUTDIR" >&2; exit 2; }
mkdir -p "$1"
out=$(cd "$1" && pwd)
root=$(pwd)

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
description=$(sed -n 's/^description = "\(.*\)"$/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
multiarch=$(gcc -print-multiarch)
# The ABI of the packaged nginx (its Provides: nginx-abi-...): the modules load into that only.
abi=$(dpkg-query -W -f '${Provides}' nginx | grep -o 'nginx-abi-[^, ]*')
maintainer="snicache maintainers <snicache@localhost>"
work=$root/target/debs
rm -rf "$work"
mkdir -p "$work"

cargo build --release --locked --lib
lib=$root/target/release/libsnicache.so

# Stripped library plus its debug info, found by build id (as dh_strip does).
stage=$work/stage
mkdir -p "$stage"
cp "$lib" "$stage/libsnicache.so"
build_id=$(readelf -n "$stage/libsnicache.so" | sed -n 's/^ *Build ID: *//p')
[ -n "$build_id" ] || { echo "build-debs: libsnicache.so has no build id" >&2; exit 1; }
objcopy --only-keep-debug --compress-debug-sections "$stage/libsnicache.so" "$stage/libsnicache.debug"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/libsnicache.so"
objcopy --add-gnu-debuglink="$stage/libsnicache.debug" "$stage/libsnicache.so"

# The modules, built without a run path: the library is in the system's library path.
make -s -C nginx BUILD="$work/nginx" SNICACHE_LIB_DIR="$stage" SNICACHE_RPATH= \
    "$work/nginx/ngx_http_snicache_module.so" "$work/nginx/ngx_stream_snicache_module.so"
for m in http stream; do
    strip --strip-unneeded "$work/nginx/ngx_${m}_snicache_module.so"
done

# needs FILE: the packages providing the shared libraries FILE needs (NEEDED), comma-separated,
# leaving out libsnicache.so (packaged here).
needs() {
    local lib path pkgs=()
    for lib in $(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        [ "$lib" = libsnicache.so ] && continue
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|'"$arch"'/ {print $NF; exit}')
        [ -n "$path" ] || path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
        pkgs+=("$({ dpkg -S "$path" || dpkg -S "$(readlink -f "$path")"; } 2>/dev/null | head -1 | cut -d: -f1)")
    done
    printf '%s\n' "${pkgs[@]}" | sort -u | grep . | paste -sd, | sed 's/,/, /g'
}
# control DIR PACKAGE DEPENDS SECTION DESCRIPTION...
control() {
    local dir=$1 package=$2 depends=$3 section=$4
    shift 4
    mkdir -p "$dir/DEBIAN"
    {
        echo "Package: $package"
        echo "Version: $version"
        echo "Architecture: $arch"
        echo "Maintainer: $maintainer"
        echo "Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | cut -f1)"
        [ -n "$depends" ] && echo "Depends: $depends"
        echo "Section: $section"
        echo "Priority: optional"
        echo "Description: $1"
        shift
        for line in "$@"; do echo " $line"; done
    } >"$dir/DEBIAN/control"
}
# module_scripts DIR CONF LINK: postinst/prerm/postrm as dh_nginx generates them.
module_scripts() {
    local dir=$1 conf=$2 link=$3
    cat >"$dir/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
if [ -L /etc/nginx/modules-enabled/$link.removed ]; then
	rm /etc/nginx/modules-enabled/$link.removed
	removed_link=true
else
	removed_link=false
fi
# Link on fresh installs and on reinstalls after a remove (an admin's own removal stays).
if [ -z "\$2" -o "\$removed_link" = "true" ]; then
	mkdir -p /etc/nginx/modules-enabled
	ln -sf /usr/share/nginx/modules-available/$conf /etc/nginx/modules-enabled/$link
fi
if [ "\$1" = "configure" ] && which dpkg-trigger >/dev/null 2>&1; then
	dpkg-trigger --no-await nginx-reload
fi
EOF
    cat >"$dir/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
if [ "\$1" = "purge" ]; then
	rm -f /etc/nginx/modules-enabled/$link /etc/nginx/modules-enabled/$link.removed
fi
if [ "\$1" = "remove" ]; then
	if [ -L /etc/nginx/modules-enabled/$link ]; then
		mv /etc/nginx/modules-enabled/$link /etc/nginx/modules-enabled/$link.removed
	fi
	if which dpkg-trigger >/dev/null 2>&1; then
		dpkg-trigger --no-await nginx-reload
	fi
fi
EOF
    chmod 0755 "$dir/DEBIAN/postinst" "$dir/DEBIAN/postrm"
}
doc() { # DIR PACKAGE
    install -d "$1/usr/share/doc/$2"
    printf 'snicache %s, built from its source tree; see docs/nginx.md there.\n' "$version" \
        >"$1/usr/share/doc/$2/README.Debian"
}
build() { # DIR
    find "$1" -path "$1/DEBIAN" -prune -o -type f -print0 | xargs -0 -r chmod go-w
    dpkg-deb --root-owner-group --build "$1" "$out/" >/dev/null
}

d=$work/libsnicache
install -D -m 0644 "$stage/libsnicache.so" "$d/usr/lib/$multiarch/libsnicache.so"
doc "$d" libsnicache
mkdir -p "$d/DEBIAN"
printf 'activate-noawait ldconfig\n' >"$d/DEBIAN/triggers"
control "$d" libsnicache "$(needs "$stage/libsnicache.so")" libs "$description" \
    "A Rust library with a C ABI that OpenSSL and BoringSSL servers load to hand their" \
    "server-side TLS session resumption to it, partitioned by virtual host."
build "$d"

d=$work/libsnicache-dev
install -D -m 0644 include/snicache.h "$d/usr/include/snicache.h"
install -D -m 0644 include/snicache_ssl.h "$d/usr/include/snicache_ssl.h"
install -d "$d/usr/lib/$multiarch/pkgconfig"
cat >"$d/usr/lib/$multiarch/pkgconfig/snicache.pc" <<PC
prefix=/usr
libdir=\${prefix}/lib/$multiarch
includedir=\${prefix}/include

Name: snicache
Description: $description
Version: $version
Libs: -L\${libdir} -lsnicache
Cflags: -I\${includedir}
PC
doc "$d" libsnicache-dev
control "$d" libsnicache-dev "libsnicache (= $version)" libdevel "$description (headers)" \
    "snicache.h, snicache_ssl.h (compiled against the host's OpenSSL or BoringSSL headers)" \
    "and the pkg-config file snicache.pc."
build "$d"

d=$work/libsnicache-dbgsym
install -D -m 0644 "$stage/libsnicache.debug" "$d/usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug"
control "$d" libsnicache-dbgsym "libsnicache (= $version)" debug "debug symbols for libsnicache" \
    "Debug information of libsnicache.so, found by its build id $build_id."
build "$d"

for m in http stream; do
    d=$work/libnginx-mod-$m-snicache
    install -D -m 0644 "$work/nginx/ngx_${m}_snicache_module.so" "$d/usr/lib/nginx/modules/ngx_${m}_snicache_module.so"
    install -d "$d/usr/share/nginx/modules-available"
    echo "load_module modules/ngx_${m}_snicache_module.so;" \
        >"$d/usr/share/nginx/modules-available/mod-$m-snicache.conf"
    doc "$d" "libnginx-mod-$m-snicache"
    # After 50-mod-stream.conf: the stream module needs nginx's stream module loaded first.
    deps="$abi, libsnicache (= $version), $(needs "$work/nginx/ngx_${m}_snicache_module.so")"
    [ $m = stream ] && deps="$deps, libnginx-mod-stream"
    control "$d" "libnginx-mod-$m-snicache" "$deps" httpd "nginx $m module: TLS session resumption by snicache" \
        "Hands nginx's server-side TLS session resumption ($m{} servers) to snicache:" \
        "sessions and tickets kept per virtual host, snicache's policy on every resumption."
    module_scripts "$d" "mod-$m-snicache.conf" "70-mod-$m-snicache.conf"
    build "$d"
done

ls -1 "$out"/*.deb
