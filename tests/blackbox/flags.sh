#!/usr/bin/env bash
# The demo server's command line: --help lists every flag and exits 0; bad flag values exit 2
# with a message naming the problem; SIGINT stops a running server with exit 0.
source "$(dirname "$0")/lib/common.sh"
make_certs a.test
V=(--vhost "$(vhost a.test)")

help=$("$SERVER" --help)
expect_eq "--help exits 0" 0 $?
for flag in --listen --vhost --default --strict-sni --store --threads --tls-min --tls-max --tickets --timeout \
    --io-timeout; do
    check "--help lists $flag" grep -q -- "$flag" <<<"$help"
done

# bad_value MESSAGE_REGEX FLAGS...: exit 2, and stderr matches MESSAGE_REGEX.
bad_value() {
    local want=$1 rc=0 err
    shift
    err=$(timeout 5 "$SERVER" "$@" 2>&1 >/dev/null) || rc=$?
    if [ "$rc" = 2 ] && grep -qE -- "$want" <<<"$err"; then
        ok "$* -> exit 2: $(head -1 <<<"$err")"
    else
        not_ok "$*: expected exit 2 and /$want/, got exit $rc: $err"
    fi
}
bad_value "at least one --vhost" --threads 2
bad_value "expected NAME:CERT:KEY" --vhost a.test
bad_value "not a valid DNS name" --vhost "bad..name:$TMP/a.test.crt:$TMP/a.test.key"
bad_value "cannot use certificate" --vhost "a.test:$TMP/missing.crt:$TMP/a.test.key"
# The store specification is snicache's (snicache_config_set_store); shm: and redis:// are
# refused with a reason until libsnicache has those stores.
bad_value "unknown store" "${V[@]}" --store disk
bad_value "not a size" "${V[@]}" --store memory:lots
bad_value "not a size" "${V[@]}" --store memory:
bad_value "not a size" "${V[@]}" --store shm:/snicache
bad_value "needs a HOST:PORT" "${V[@]}" --store redis://
for spec in shm:10m redis://127.0.0.1:6379; do
    rc=0
    err=$(timeout 5 "$SERVER" "${V[@]}" --store "$spec" 2>&1 >/dev/null) || rc=$?
    if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
        ok "--store $spec is supported by this libsnicache"
    elif [ "$rc" = 2 ] && grep -q -- "--store '$spec'" <<<"$err"; then
        ok "--store $spec -> exit 2: $err"
    else
        not_ok "--store $spec: exit $rc: $err"
    fi
done
bad_value "1.2 or 1.3" "${V[@]}" --tls-min 1.1
bad_value "above --tls-max" "${V[@]}" --tls-min 1.3 --tls-max 1.2
bad_value "out of range" "${V[@]}" --threads 0
bad_value "not a number" "${V[@]}" --threads two
bad_value "out of range" "${V[@]}" --timeout 0
bad_value "out of range" "${V[@]}" --timeout 86401
bad_value "on or off" "${V[@]}" --tickets maybe
bad_value "not the NAME of any --vhost" "${V[@]}" --default b.test
bad_value "unknown flag" "${V[@]}" --bogus
bad_value "missing value" "${V[@]}" --listen
bad_value "expected ADDR:PORT" "${V[@]}" --listen 8443
bad_value "out of range" "${V[@]}" --listen 127.0.0.1:70000
bad_value "numeric address" "${V[@]}" --listen localhost:8443

start_server "${V[@]}" --store memory:1m --threads 3 --timeout 60 --tickets off --tls-min 1.2 --tls-max 1.3
check "a server with every flag set serves" grep -q 'vhost=a.test sni=a.test resumed=0' <<<"$(client / -servername a.test)"
rc=0
kill -INT "$SERVER_PID"
wait "$SERVER_PID" || rc=$?
SERVER_PID=""
expect_eq "server exits 0 on SIGINT" 0 "$rc"
check "server log ends with 'stopped'" test "$(tail -1 "$LOG")" = stopped

finish
