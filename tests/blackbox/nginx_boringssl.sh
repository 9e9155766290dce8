#!/usr/bin/env bash
# nginx 1.30.4 built on BoringSSL with ngx_http_snicache_module compiled in
# (scripts/build-nginx-boringssl.sh, built once; later runs reuse it): the same black-box cases as
# Debian's nginx (tests/blackbox/nginx.sh runs against NGINX_BIN; no copy of them here):
# cross-block refusal (TLS 1.2 ids and tickets, TLS 1.3 tickets; different and shared
# certificates; stock nginx as the baseline), same-name resumption across 2 workers on the shm
# store (h2load), fatal alerts, strict SNI, the status location, nginx -t.
here=$(cd "$(dirname "$0")" && pwd)
bin=$("$here/../../scripts/build-nginx-boringssl.sh") || { echo "FAIL: cannot build nginx on BoringSSL"; exit 1; }
"$bin" -V 2>&1 | head -2
NGINX_BIN=$bin exec bash "$here/nginx.sh"
