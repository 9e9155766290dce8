/* A C host on BoringSSL: built by tests/boringssl.rs with c-tests/harness.c against boring-sys's
 * BoringSSL headers and static libraries with -Wall -Wextra -Wpedantic -Werror, so
 * snicache_ssl.h's BoringSSL branch must compile cleanly; then run. It fills the table with
 * snicache_ssl_api_init(), attaches a cache and drives TLS 1.2 handshakes through memory BIOs: a
 * session resumes under its own SNI, is refused (`sni`) under another name on the same wildcard
 * vhost, and a malformed SNI gets snicache's illegal_parameter alert on the wire. Prints
 * "ok header_check" and exits 0 on success. */
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#ifndef OPENSSL_IS_BORINGSSL
#error "expected BoringSSL headers"
#endif

int main(void)
{
    const char *names[] = {"a.test", "*.example.com"};
    snicache_ssl_api api;
    struct h_server srv;
    SSL_CTX *client = h_client_ctx();
    const snicache_cache *cache;
    struct h_opts o = h_opts_for(TLS1_2_VERSION, "x.example.com");
    struct h_result first, again, other, bad;

    snicache_ssl_api_init(&api);
    CHECK(api.library == SNICACHE_SSL_LIBRARY_BORINGSSL);
    h_server_init(&srv, names, NULL, 2, H_NO_TICKET);
    cache = h_server_start(&srv, SNICACHE_INSTALL_CLIENT_HELLO | SNICACHE_INSTALL_SESSION_CACHE |
                                     SNICACHE_INSTALL_SERVERNAME | SNICACHE_INSTALL_INFO);
    h_server_drop_config(&srv);

    first = h_connect(srv.listener, client, &o);
    CHECK(first.ok && !first.resumed && strcmp(first.vhost, "*.example.com") == 0);
    o.offer = first.session;
    again = h_connect(srv.listener, client, &o);
    CHECK(again.ok && again.resumed && again.info.outcome == SNICACHE_OUTCOME_RESUMED);
    o.sni = "y.example.com";
    other = h_connect(srv.listener, client, &o);
    CHECK(other.ok && !other.resumed && strcmp(other.reason, "sni") == 0);
    CHECK(h_refusals(cache, NULL, "sni") == 1);
    o = h_opts_for(TLS1_2_VERSION, "bad!.test");
    bad = h_connect(srv.listener, client, &o);
    CHECK(!bad.ok && bad.alert == SSL_AD_ILLEGAL_PARAMETER);

    SSL_SESSION_free(first.session);
    SSL_SESSION_free(again.session);
    SSL_SESSION_free(other.session);
    SSL_SESSION_free(bad.session);
    h_server_free(&srv);
    SSL_CTX_free(client);
    return h_done("header_check");
}
