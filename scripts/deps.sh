#!/usr/bin/env bash
# Installs the Debian packages snicache's build, tests and demo need, when any is missing.
# Used by scripts/demo.sh, scripts/test.sh and .ci/run. Needs root (or sudo) only to install.
set -euo pipefail
pkgs=(build-essential pkg-config libssl-dev openssl valgrind cmake libclang-dev git nghttp2-client curl python3 nginx nginx-dev redis-server)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "deps: cargo not found; install Rust (rustup) first" >&2; exit 1; }
