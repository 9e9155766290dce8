/* Compiles the README's C snippet (extracted by the Makefile) and checks it works: a session
 * resumes under its own name and not under another vhost's. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "readme_snippet.c"

int main(void)
{
    SSL_CTX *listener = h_server_ctx("listener");
    SSL_CTX *a = h_server_ctx("a.example.com");
    SSL_CTX *wild = h_server_ctx("*.example.net");
    SSL_CTX *client = h_client_ctx();
    const snicache_cache *cache;
    struct h_opts o;
    struct h_result first, again, other;
    SSL_SESSION *forged;

    SSL_CTX_set_options(listener, SSL_OP_NO_TICKET);
    cache = setup_snicache(listener, a, wild);
    CHECK(cache != NULL);
    o = h_opts_for(TLS1_2_VERSION, "a.example.com");
    first = h_connect(listener, client, &o);
    o.offer = first.session;
    again = h_connect(listener, client, &o);
    forged = h_session_with_hostname(first.session, "x.example.net");
    o.offer = forged;
    o.sni = "x.example.net";
    other = h_connect(listener, client, &o);
    CHECK(first.ok && !first.resumed);
    CHECK(again.ok && again.resumed);
    CHECK(other.ok && !other.resumed && strcmp(other.vhost, "*.example.net") == 0);

    SSL_SESSION_free(first.session);
    SSL_SESSION_free(again.session);
    SSL_SESSION_free(other.session);
    SSL_SESSION_free(forged);
    snicache_cache_free(cache);
    SSL_CTX_free(client);
    SSL_CTX_free(listener);
    SSL_CTX_free(a);
    SSL_CTX_free(wild);
    return h_done("readme");
}
