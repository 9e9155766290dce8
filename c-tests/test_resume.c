/* Resumption by SNI and vhost, TLS 1.2 and 1.3, session ids/stateful and stateless tickets. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static void scenario(int version, int stateless)
{
    const char *names[] = {"a.test", "b.test", "*.example.com"};
    struct h_server srv;
    SSL_CTX *listener, *client = h_client_ctx();
    const snicache_cache *cache;
    struct h_opts o;
    struct h_result first, again, other, wild1, wild2, nosni;

    h_server_init(&srv, names, NULL, 3, stateless ? 0 : H_NO_TICKET);
    listener = srv.listener;
    cache = h_server_start(&srv, 0);

    o = h_opts_for(version, "a.test");
    first = h_connect(listener, client, &o);
    CHECK(first.ok && !first.resumed && first.session != NULL);
    CHECK(strcmp(first.vhost, "a.test") == 0);

    o.offer = first.session;
    again = h_connect(listener, client, &o);
    CHECK(again.ok && again.resumed);
    CHECK(again.info.outcome == SNICACHE_OUTCOME_RESUMED);
    if (!again.resumed)
        fprintf(stderr, "  again: outcome %u reason %s\n", again.info.outcome, again.reason);

    other = h_connect_forged(listener, client, &o, first.session, "b.test");
    CHECK(other.ok && !other.resumed);
    CHECK(strcmp(other.vhost, "b.test") == 0);

    o.offer = NULL;
    o.sni = "x.example.com";
    wild1 = h_connect(listener, client, &o);
    CHECK(wild1.ok && !wild1.resumed && strcmp(wild1.vhost, "*.example.com") == 0);
    wild2 = h_connect_forged(listener, client, &o, wild1.session, "y.example.com");
    CHECK(wild2.ok && !wild2.resumed);
    CHECK(wild2.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(wild2.reason, "sni") == 0);
    CHECK(h_refusals(cache, "*.example.com", "sni") == 1);

    nosni = h_connect_forged(listener, client, &o, first.session, NULL);
    CHECK(nosni.ok && !nosni.resumed && strcmp(nosni.vhost, "a.test") == 0);
    CHECK(h_refusals(cache, "a.test", "sni") == 1);

    {
        snicache_stats st = h_stats(cache, NULL);
        CHECK(st.hits == 1);
        fprintf(stderr, "  v=%x stateless=%d hits=%llu misses=%llu stores=%llu refusals=%llu entries=%llu\n", version,
                stateless, (unsigned long long)st.hits, (unsigned long long)st.misses, (unsigned long long)st.stores,
                (unsigned long long)st.refusals, (unsigned long long)st.entries);
    }

    SSL_SESSION_free(first.session);
    SSL_SESSION_free(again.session);
    SSL_SESSION_free(other.session);
    SSL_SESSION_free(wild1.session);
    SSL_SESSION_free(wild2.session);
    SSL_SESSION_free(nosni.session);
    h_server_free(&srv);
    SSL_CTX_free(client);
}

int main(void)
{
    scenario(TLS1_2_VERSION, 0);
    scenario(TLS1_2_VERSION, 1);
    scenario(TLS1_3_VERSION, 0);
    scenario(TLS1_3_VERSION, 1);
    return h_done("resume");
}
