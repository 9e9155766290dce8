#!/usr/bin/env bash
# HTTP/3: nginx 1.30.4 on BoringSSL (scripts/build-nginx-boringssl.sh) with `listen ... quic`
# beside TLS on the same port, the module on (shm store). aioquic (target/py, a client that keeps
# its tickets; tests/blackbox/lib/quic_resume.py) makes a connection, keeps the ticket, and
# offers it on a second connection:
#  - same server name: resumed; another server block's name: a full handshake; served by the
#    block of the SNI; counted in the status like TCP connections (hits, ticket_unknown_key);
#  - with one certificate for both blocks, stock nginx resumes a.test's ticket in the b.test
#    block over QUIC too; the module gives a full handshake;
#  - with ssl_early_data on: the ticket's 0-RTT GET is accepted once, a second 0-RTT attempt
#    with the same ticket is rejected (1-RTT) and counted as early_data_replayed (stock nginx
#    accepts both).
source "$(dirname "$0")/lib/common.sh"
NGINX_BIN=$("$ROOT/scripts/build-nginx-boringssl.sh") || { echo "FAIL: cannot build nginx on BoringSSL"; exit 1; }
source "$(dirname "$0")/lib/nginx.sh"
PY=$ROOT/target/py/bin/python
"$PY" -c 'import aioquic' 2>/dev/null || { echo "FAIL: aioquic missing in target/py (scripts/deps.sh)"; exit 1; }
make_certs a.test b.test
PORT=$(free_port) STATUS_PORT=$(free_port)
quic() { timeout 30 "$PY" "$ROOT/tests/blackbox/lib/quic_resume.py" "$PORT" "$@" 2>"$TMP/quic.err"; }

D=$TMP/quic
conf "$D" yes 1 "snicache on; snicache_store shm:4m; ssl_session_tickets on;" "listen 127.0.0.1:$PORT quic;"
start_nginx "$D"
out=$(quic a.test a.test)
echo "$out" | sed 's/^/       /'
expect_eq "QUIC a.test: full handshake, served by a.test" "first resumed=0 early=none body=server=a.test reused=. sni=a.test" \
    "$(head -1 <<<"$out" | sed 's/ pid=.*//')"
expect_eq "QUIC a.test, a.test's ticket: resumed, served by a.test" "second resumed=1 early=none body=server=a.test reused=r sni=a.test" \
    "$(sed -n 2p <<<"$out" | sed 's/ pid=.*//')"
out=$(quic a.test b.test)
echo "$out" | sed 's/^/       /'
expect_eq "QUIC b.test, a.test's ticket: full handshake, served by b.test" "second resumed=0 early=none body=server=b.test reused=. sni=b.test" \
    "$(sed -n 2p <<<"$out" | sed 's/ pid=.*//')"
json=$(status)
expect_eq "status: a.test hits (the QUIC resumption)" 1 "$(stat "$json" vhosts a.test hits)"
expect_eq "status: b.test ticket_unknown_key (a.test's ticket over QUIC)" 1 "$(stat "$json" vhosts b.test ticket_unknown_key)"
stop_nginx "$D"

echo "== shared certificate: stock nginx over QUIC (the baseline), then the module"
D=$TMP/quic_stock
SHARED_CERT=yes conf "$D" no 1 "ssl_session_tickets on;" "listen 127.0.0.1:$PORT quic;"
start_nginx "$D"
out=$(quic a.test b.test)
echo "$out" | sed 's/^/       /'
expect_eq "stock, QUIC b.test offered a.test's ticket: RESUMED in the b.test block (the flaw)" \
    "second resumed=1 early=none body=server=b.test reused=r sni=b.test" "$(sed -n 2p <<<"$out" | sed 's/ pid=.*//')"
stop_nginx "$D"
D=$TMP/quic_shared
SHARED_CERT=yes conf "$D" yes 1 "snicache on; snicache_store shm:4m; ssl_session_tickets on;" "listen 127.0.0.1:$PORT quic;"
start_nginx "$D"
out=$(quic a.test b.test)
expect_eq "module, QUIC b.test offered a.test's ticket: full handshake" \
    "second resumed=0 early=none body=server=b.test reused=. sni=b.test" "$(sed -n 2p <<<"$out" | sed 's/ pid=.*//')"
stop_nginx "$D"

D=$TMP/quic_stock_early
conf "$D" no 2 "ssl_session_tickets on; ssl_early_data on;" "listen 127.0.0.1:$PORT quic;"
start_nginx "$D"
out=$(quic a.test a.test --early-data)
echo "$out" | sed 's/^/       stock: /'
expect_eq "stock, QUIC 0-RTT with the same ticket twice: accepted twice (the flaw)" "accepted accepted" \
    "$(sed -n '2,3p' <<<"$out" | sed 's/.*early=\([a-z]*\).*/\1/' | tr '\n' ' ' | sed 's/ $//')"
stop_nginx "$D"

D=$TMP/quic_early
conf "$D" yes 2 "snicache on; snicache_store shm:4m; ssl_session_tickets on; ssl_early_data on;" "listen 127.0.0.1:$PORT quic;"
start_nginx "$D"
out=$(quic a.test a.test --early-data)
echo "$out" | sed 's/^/       /'
expect_eq "QUIC 0-RTT, a fresh ticket: resumed, early data accepted" "second resumed=1 early=accepted" \
    "$(sed -n 2p <<<"$out" | cut -d' ' -f1-3)"
expect_eq "QUIC 0-RTT, the same ticket again: resumed, early data rejected (1-RTT), still served" \
    "third resumed=1 early=rejected body=server=a.test reused=r sni=a.test" "$(sed -n 3p <<<"$out" | sed 's/ pid=.*//')"
json=$(status)
expect_eq "status: early_data_accepted" 1 "$(stat "$json" total early_data_accepted)"
expect_eq "status: early_data_replayed" 1 "$(stat "$json" total early_data_replayed)"
stop_nginx "$D"
finish
