#!/usr/bin/env bash
# RFC 6066 §3 against the demo server, seen by `openssl s_client -tlsextdebug`: the server_name
# extension comes back (TLS 1.2 ServerHello, TLS 1.3 EncryptedExtensions) for a name that
# selected a vhost (exact or wildcard), not for an unknown name served by the default vhost nor
# without SNI. Sessions made under an unknown name still resume under it.
source "$(dirname "$0")/lib/common.sh"
make_certs a.test '*.example.com'

# acked TRANSCRIPT: yes when the server sent server_name back.
acked() { if grep -q 'TLS server extension "server name"' ; then echo yes; else echo no; fi; }

start_server --vhost "$(vhost a.test)" --vhost "$(vhost '*.example.com')"
for tls in 1.2 1.3; do
    v=-tls1_${tls#1.}
    echo "== TLS $tls"
    out=$(client / "$v" -tlsextdebug -servername a.test)
    expect_eq "a.test (exact vhost): acknowledged" "yes $(printf 'vhost=a.test sni=a.test resumed=0 proto=TLSv%s' "$tls")" \
        "$(acked <<<"$out") $(whoami <<<"$out")"
    out=$(client / "$v" -tlsextdebug -servername x.example.com)
    expect_eq "x.example.com (wildcard vhost): acknowledged" yes "$(acked <<<"$out")"
    out=$(client / "$v" -tlsextdebug -servername unknown.test -sess_out "$TMP/u.sess")
    expect_eq "unknown.test (default vhost): not acknowledged" \
        "no $(printf 'vhost=a.test sni=unknown.test resumed=0 proto=TLSv%s' "$tls")" "$(acked <<<"$out") $(whoami <<<"$out")"
    out=$(client / "$v" -tlsextdebug -noservername)
    expect_eq "no SNI: not acknowledged" no "$(acked <<<"$out")"
    out=$(client / "$v" -servername unknown.test -sess_in "$TMP/u.sess")
    expect_eq "unknown.test's session resumes under unknown.test" Reused "$(outcome <<<"$out")"
done
stop_server

finish
