#!/usr/bin/env bash
# Configurations that cannot work are refused at start with a message that says why (issue
# 12.6): the demo server exits 2 before listening.
#  - a memory store too small to hold one session record (memory:1k);
#  - a seal key file of the wrong size says its real size (a 100-byte file; a directory);
#  - --async-lookup with a store other than Redis;
#  - a Redis database index out of range (for any Redis, or for the Redis the URL names);
#  - a space in a store specification (memory: 10m).
source "$(dirname "$0")/lib/common.sh"
make_certs a.test
head -c 100 /dev/urandom >"$TMP/100.key"
head -c 32 /dev/urandom >"$TMP/seal.key"
mkdir "$TMP/keydir"

# refused DESCRIPTION EXPECTED_MESSAGE_PART FLAGS...: the server exits 2, saying EXPECTED.
refused() {
    local what=$1 want=$2 rc=0
    shift 2
    timeout 10 "$SERVER" --listen 127.0.0.1:0 --vhost "$(vhost a.test)" "$@" >/dev/null 2>"$TMP/err" || rc=$?
    expect_eq "$what: exits 2" 2 "$rc"
    check "$what: says '$want' ($(head -c 200 "$TMP/err"))" grep -qF -- "$want" "$TMP/err"
}

refused "memory:1k" "cannot hold a session record" --store memory:1k
refused "memory:1k gives its size" "1024 bytes" --store memory:1k
refused "seal key file of 100 bytes" "100 bytes, 32 to 64 needed" \
    --store "redis://127.0.0.1:1/0" --seal-key-file "$TMP/100.key"
refused "seal key file that is a directory" "is a directory" \
    --store "redis://127.0.0.1:1/0" --seal-key-file "$TMP/keydir"
refused "--async-lookup with the memory store" "needs a redis:// or rediss:// --store" --async-lookup
refused "--async-lookup with an shm store" "needs a redis:// or rediss:// --store" --async-lookup --store shm:1m
refused "Redis database index out of range" "out of range" \
    --store "redis://127.0.0.1:1/99999999" --seal-key-file "$TMP/seal.key"
echo "== a database index over what this Redis has (16 by default)"
source "$(dirname "$0")/lib/redis.sh"
start_redis
refused "Redis database 16 of 16" "database 16 refused by Redis" \
    --store "redis://127.0.0.1:$REDIS_PORT/16" --seal-key-file "$TMP/seal.key"
start_server --vhost "$(vhost a.test)" --store "redis://127.0.0.1:$REDIS_PORT/15" --seal-key-file "$TMP/seal.key"
check "database 15 of 16 starts" server_alive
stop_server
refused "a space in a size" "has a space in it" --store "memory: 10m"
check "no credentials in the message" sh -c "! $SERVER --listen 127.0.0.1:0 --vhost '$(vhost a.test)' \
    --store 'redis://u:hunter2@127.0.0.1:1/99999999' --seal-key-file '$TMP/seal.key' 2>&1 | grep -q hunter2"

echo "== what is accepted still starts"
start_server --vhost "$(vhost a.test)" --store memory:16k
check "memory:16k starts" server_alive
stop_server
finish
