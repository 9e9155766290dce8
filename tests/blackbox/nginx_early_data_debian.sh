#!/usr/bin/env bash
# nginx_early_data.sh's cases (0-RTT accepted at most once: stock, shm with 2 workers, two
# servers sharing Redis) against Debian's nginx 1.22 on OpenSSL 3.0 with the dynamic module.
NGINX_DEBIAN=1 exec bash "$(dirname "$0")/nginx_early_data.sh"
