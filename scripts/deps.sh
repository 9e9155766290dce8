#!/usr/bin/env bash
# Installs the Debian packages snicache's build, tests and demo need, when any is missing.
# Used by scripts/demo.sh, scripts/test.sh and .ci/run. Needs root (or sudo) only to install.
set -euo pipefail
pkgs=(build-essential pkg-config libssl-dev openssl valgrind cmake libclang-dev git nghttp2-client curl python3 python3-venv
      nginx nginx-dev libnginx-mod-stream redis-server redis-sentinel gnutls-bin libnss3-tools libpcre2-dev zlib1g-dev
      libgnutls28-dev)
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

# Python clients for the black-box tests (a ClientHello builder, a QUIC client, a Prometheus text
# parser), in a virtualenv under target/ so the system Python is left alone. Tests run it as
# target/py/bin/python.
cd "$(dirname "$0")/.."
py_pkgs=(tlslite-ng==0.8.2 aioquic==1.7.2 prometheus_client==0.26.0)
if ! target/py/bin/python -c 'import tlslite, aioquic, prometheus_client' 2>/dev/null; then
    echo "deps: installing ${py_pkgs[*]} into target/py" >&2
    mkdir -p target
    /usr/bin/python3 -m venv target/py
    target/py/bin/pip install -q "${py_pkgs[@]}"
fi
