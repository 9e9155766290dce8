#!/usr/bin/env bash
# The Debian packages (scripts/build-debs.sh), installed the Debian way and used by the packaged
# nginx, then removed, leaving the machine as it was:
#  1. build the five packages; the library in libsnicache is stripped, its debug info is in
#     libsnicache-dbgsym under its build id;
#  2. `apt-get install ./*.deb` (no service started: policy-rc.d answers 101 while apt runs, as
#     .ci/run does); the modules are in /usr/lib/nginx/modules, their load_module files in
#     /usr/share/nginx/modules-available and linked from /etc/nginx/modules-enabled, the header
#     and pkg-config file where pkg-config finds them;
#  3. /usr/sbin/nginx with a configuration that includes /etc/nginx/modules-enabled/*.conf (as
#     Debian's nginx.conf does), on loopback ports with its own prefix: http and stream servers
#     resume under their own name and not under another, the status location answers;
#  4. `apt-get purge` removes every file and link; nothing of the packages is left.
# Needs root (apt-get, dpkg): CI runs as root.
source "$(dirname "$0")/lib/common.sh"
[ "$(id -u)" = 0 ] || { echo "FAIL: installs packages: run as root (CI does)"; exit 1; }
PACKAGES=(libsnicache libsnicache-dev libsnicache-dbgsym libnginx-mod-http-snicache libnginx-mod-stream-snicache)
for p in "${PACKAGES[@]}"; do
    if dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q installed; then
        echo "FAIL: $p is installed already; this test installs and removes it (remove it first)"
        exit 1
    fi
done
NGINX_PID_FILE=""
HAD_POLICY=1
# Leave the machine as found whatever happens: stop our nginx, remove the packages.
restore() {
    [ -n "$NGINX_PID_FILE" ] && [ -s "$NGINX_PID_FILE" ] && kill -TERM "$(cat "$NGINX_PID_FILE")" 2>/dev/null
    local installed=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q installed && installed+=("$p")
    done
    ((${#installed[@]})) && apt-get purge -y -qq "${installed[@]}" >/dev/null 2>&1
    [ "$HAD_POLICY" = 0 ] && rm -f /usr/sbin/policy-rc.d
    cleanup
}
trap restore EXIT
apt() { apt-get -o DPkg::Lock::Timeout=300 -y -qq "$@"; }

echo "== 1. build"
"$ROOT/scripts/build-debs.sh" "$TMP/debs" >"$TMP/build.log" 2>&1 || { tail -30 "$TMP/build.log"; echo "FAIL: build-debs.sh"; exit 1; }
for p in "${PACKAGES[@]}"; do
    check "built $p" test -f "$TMP/debs/${p}_"*.deb
done
dpkg-deb -x "$TMP/debs/libsnicache_"*.deb "$TMP/x"
so=$(find "$TMP/x" -name libsnicache.so)
size=$(stat -c %s "$so")
check "libsnicache.so is stripped ($((size / 1024)) KiB, no .debug_info, no .symtab)" \
    bash -c "! readelf -S '$so' | grep -qE '\\.debug_info|\\.symtab'"
echo "       unstripped target/release/libsnicache.so: $(($(stat -c %s "$ROOT/target/release/libsnicache.so") / 1024)) KiB"
id=$(readelf -n "$so" | sed -n 's/^ *Build ID: *//p')
check "libsnicache-dbgsym holds its debug info under build id $id" \
    grep -q "usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug" <<<"$(dpkg-deb -c "$TMP/debs/libsnicache-dbgsym_"*.deb)"

echo "== 2. install with apt-get"
[ -e /usr/sbin/policy-rc.d ] || { HAD_POLICY=0; printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
before=$(ls /etc/nginx/modules-enabled/)
service_pid=$(cat /run/nginx.pid 2>/dev/null)
# apt-get installs local packages given by path.
if apt install "$TMP"/debs/*.deb >"$TMP/apt.log" 2>&1; then ok "apt-get install ./*.deb"
else not_ok "apt-get install ./*.deb: $(tail -5 "$TMP/apt.log")"; fi
for p in "${PACKAGES[@]}"; do
    check "$p installed" bash -c "dpkg-query -W -f '\${Status}' $p | grep -q 'install ok installed'"
done
for m in http stream; do
    check "$m module in /usr/lib/nginx/modules" test -f /usr/lib/nginx/modules/ngx_${m}_snicache_module.so
    expect_eq "$m load_module file" "load_module modules/ngx_${m}_snicache_module.so;" \
        "$(cat /usr/share/nginx/modules-available/mod-$m-snicache.conf)"
    expect_eq "$m link in modules-enabled" /usr/share/nginx/modules-available/mod-$m-snicache.conf \
        "$(readlink /etc/nginx/modules-enabled/70-mod-$m-snicache.conf)"
done
check "pkg-config finds snicache" bash -c 'pkg-config --exists snicache && test "$(pkg-config --modversion snicache)" = "$(sed -n "s/^version = \"\(.*\)\"$/\1/p" '"$ROOT"'/Cargo.toml | head -1)"'
check "snicache.h installed" test -f /usr/include/snicache.h
expect_eq "the nginx service was neither started nor restarted by the install (/run/nginx.pid)" \
    "${service_pid:-none}" "$(cat /run/nginx.pid 2>/dev/null || echo none)"

echo "== 3. the packaged nginx with the packaged modules"
make_certs a.test b.test
D=$TMP/ngx
mkdir -p "$D/tmp"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
SPORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STATUS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$D/nginx.conf" <<EOF
include /etc/nginx/modules-enabled/*.conf;
# (the default prefix, /usr/share/nginx: load_module's "modules/" is /usr/lib/nginx/modules)
worker_processes 2;
pid $D/nginx.pid;
error_log $D/error.log info;
events { worker_connections 256; }
stream {
  ssl_protocols TLSv1.2 TLSv1.3;
  snicache on;
  snicache_store shm:2m;
  server {
    listen 127.0.0.1:$SPORT ssl;
    ssl_certificate $TMP/a.test.crt; ssl_certificate_key $TMP/a.test.key;
    return "stream sni=\$ssl_server_name\n";
  }
}
http {
  client_body_temp_path $D/tmp; proxy_temp_path $D/tmp; fastcgi_temp_path $D/tmp;
  uwsgi_temp_path $D/tmp; scgi_temp_path $D/tmp;
  access_log off;
  ssl_protocols TLSv1.2 TLSv1.3;
  snicache on;
  snicache_store shm:2m;
EOF
for name in a.test b.test; do
    cat >>"$D/nginx.conf" <<EOF
  server {
    listen 127.0.0.1:$PORT ssl;
    server_name $name;
    ssl_certificate $TMP/$name.crt; ssl_certificate_key $TMP/$name.key;
    location / { return 200 "server=$name\n"; }
  }
EOF
done
echo "  server { listen 127.0.0.1:$STATUS_PORT; location /status { snicache_status; } } }" >>"$D/nginx.conf"
NGINX_PID_FILE=$D/nginx.pid
if /usr/sbin/nginx -c "$D/nginx.conf" 2>"$D/start.err"; then ok "packaged nginx starts with the packaged modules"
else not_ok "packaged nginx starts: $(cat "$D/start.err")"; fi
for _ in $(seq 100); do
    timeout 2 bash -c "</dev/tcp/127.0.0.1/$PORT" 2>/dev/null && timeout 2 bash -c "</dev/tcp/127.0.0.1/$SPORT" 2>/dev/null && break
    sleep 0.1
done
try() { # PORT NAME SESS_IN|- SESS_OUT|- FLAGS...
    local port=$1 name=$2 in=$3 outf=$4
    shift 4
    local args=(-connect "127.0.0.1:$port" -servername "$name" -ign_eof "$@")
    [ "$in" != - ] && args+=(-sess_in "$in")
    [ "$outf" != - ] && args+=(-sess_out "$outf")
    printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$name" |
        timeout 10 openssl s_client "${args[@]}" 2>/dev/null | outcome
}
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    try "$PORT" a.test - "$TMP/h.$tls" "$v" >/dev/null
    expect_eq "http TLS $tls: a.test resumes" Reused "$(try "$PORT" a.test "$TMP/h.$tls" - "$v")"
    expect_eq "http TLS $tls: b.test does not resume a.test's session" New "$(try "$PORT" b.test "$TMP/h.$tls" - "$v")"
    try "$SPORT" a.test - "$TMP/s.$tls" "$v" >/dev/null
    expect_eq "stream TLS $tls: a.test resumes" Reused "$(try "$SPORT" a.test "$TMP/s.$tls" - "$v")"
    expect_eq "stream TLS $tls: b.test does not resume a.test's session" New "$(try "$SPORT" b.test "$TMP/s.$tls" - "$v")"
done
json=$(curl -sS --max-time 10 "http://127.0.0.1:$STATUS_PORT/status")
expect_eq "status: the http and the stream listener" 2 \
    "$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["listeners"]))' "$json")"
[ -s "$D/nginx.pid" ] && kill -TERM "$(cat "$D/nginx.pid")"
for _ in $(seq 100); do [ -e "$D/nginx.pid" ] || break; sleep 0.1; done
check "packaged nginx stopped" test ! -e "$D/nginx.pid"
NGINX_PID_FILE=""

echo "== 4. remove"
if apt purge "${PACKAGES[@]}" >"$TMP/apt.log" 2>&1; then ok "apt-get purge"
else not_ok "apt-get purge: $(tail -5 "$TMP/apt.log")"; fi
for p in "${PACKAGES[@]}"; do
    check "$p removed" bash -c "! dpkg-query -W -f '\${Status}' $p 2>/dev/null | grep -q 'ok installed'"
done
for f in /usr/lib/nginx/modules/ngx_http_snicache_module.so /usr/lib/nginx/modules/ngx_stream_snicache_module.so \
    /usr/include/snicache.h "/usr/lib/$(gcc -print-multiarch)/libsnicache.so"; do
    check "gone: $f" test ! -e "$f"
done
expect_eq "modules-enabled as before" "$before" "$(ls /etc/nginx/modules-enabled/)"
finish
