# Helpers for the black-box tests of the nginx module (sourced after common.sh): builds the
# module, writes a config with two server blocks (a.test, b.test; certificates from make_certs),
# starts and stops nginx (each with its own prefix and pid file; the EXIT trap stops every one
# started), and talks to it with s_client and curl.
# NGINX_BIN=PATH: run that nginx instead (the module compiled in, no load_module), e.g. the
# BoringSSL build of scripts/build-nginx-boringssl.sh; `nginx` below then means that binary.
if [ -n "${NGINX_BIN:-}" ]; then
    nginx() { "$NGINX_BIN" "$@"; }
    MODULE=
else
    command -v nginx >/dev/null || { echo "FAIL: nginx not installed (scripts/deps.sh installs nginx, nginx-dev)"; exit 1; }
    make -s -C "$ROOT/nginx" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; echo "FAIL: cannot build the nginx module"; exit 1; }
    MODULE=$ROOT/target/nginx/ngx_http_snicache_module.so
fi
# The SSL library nginx is built with: boringssl or openssl.
# (Read whole first: grep -q stopping early would fail the pipeline under pipefail.)
NGINX_SSL=$(nginx -V 2>&1)
case $NGINX_SSL in *BoringSSL*) NGINX_SSL=boringssl ;; *) NGINX_SSL=openssl ;; esac
STARTED=()

stop_nginx() { # DIR
    local pid
    pid=$(cat "$1/nginx.pid" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    rm -f "$1/nginx.pid"
}
trap 'for d in "${STARTED[@]}"; do stop_nginx "$d"; done; cleanup' EXIT

# conf DIR MODULE(yes|no) WORKERS HTTP_DIRECTIVES [SERVER_DIRECTIVES [A_TEST_ONLY]]: writes DIR/nginx.conf with
# a.test and b.test on $PORT (listen flags $LISTEN_FLAGS, e.g. " reuseport"; SHARED_CERT=yes: both
# with a.test's certificate) and a plain-HTTP
# status server on $STATUS_PORT; GET / answers with the server block, reuse, SNI and worker pid.
conf() {
    local dir=$1 module=$2 workers=$3 http=$4 server=${5:-} only_a=${6:-} name cert
    mkdir -p "$dir/tmp"
    {
        [ "$module" = yes ] && [ -n "$MODULE" ] && echo "load_module $MODULE;"
        echo "worker_processes $workers;"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/error.log info;"
        echo "events { worker_connections 1024; }"
        echo "http {"
        for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $dir/tmp;"; done
        echo "  log_format sni '\$ssl_server_name \$ssl_session_reused \$ssl_protocol';"
        echo "  ssl_protocols TLSv1.2 TLSv1.3;"
        echo "  $http"
        for name in a.test b.test; do
            echo "  server {"
            # Listen flags go on the first server block of the address only.
            echo "    listen 127.0.0.1:$PORT ssl$([ "$name" = a.test ] && echo "${LISTEN_FLAGS:-}");"
            echo "    server_name $name;"
            cert=$name
            [ "${SHARED_CERT:-}" = yes ] && cert=a.test # both blocks serve a.test's certificate
            echo "    ssl_certificate $TMP/$cert.crt;"
            echo "    ssl_certificate_key $TMP/$cert.key;"
            echo "    access_log $dir/access.log sni;"
            echo "    $server"
            [ "$name" = a.test ] && echo "    $only_a"
            echo "    location / { return 200 'server=$name reused=\$ssl_session_reused sni=\$ssl_server_name pid=\$pid\n'; }"
            echo "  }"
        done
        echo "  server {"
        echo "    listen 127.0.0.1:$STATUS_PORT;"
        echo "    access_log off;"
        [ "$module" = yes ] && echo "    location /status { snicache_status; }"
        echo "  }"
        echo "}"
    } >"$dir/nginx.conf"
}

start_nginx() { # DIR
    local dir=$1
    if ! nginx -p "$dir" -c "$dir/nginx.conf" 2>"$dir/start.err"; then
        cat "$dir/start.err" "$dir/error.log" 2>/dev/null
        echo "FAIL: nginx did not start"
        exit 1
    fi
    STARTED+=("$dir")
    for _ in $(seq 50); do
        [ -s "$dir/nginx.pid" ] && timeout 2 bash -c "</dev/tcp/127.0.0.1/$PORT" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "FAIL: nginx does not listen on $PORT"
    exit 1
}

# ngx NAME S_CLIENT_FLAGS...: one request with SNI NAME; prints the transcript.
ngx() {
    local name=$1
    shift
    printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$name" |
        timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -servername "$name" -ign_eof "$@" 2>"$TMP/client.err"
}
served() { grep -ao 'server=[^ ]* reused=[r.] sni=[^ ]*' | head -1; }
# status [?QUERY]: the status location's answer; without a query, the JSON of the first (here the
# only) group of listen addresses (`listeners[0].cache`); status_all: the whole JSON.
status_all() { curl -sS --max-time 10 "http://127.0.0.1:$STATUS_PORT/status${1:-}"; }
status() {
    if [ -n "${1:-}" ]; then
        status_all "$1"
    else
        status_all | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["listeners"][0]["cache"], separators=(",", ":")))'
    fi
}

