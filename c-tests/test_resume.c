/* Resumption by SNI and vhost, TLS 1.2 and 1.3, session ids/stateful and stateless tickets. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static void scenario(int version, int stateless)
{
    const char *names[] = {"a.test", "b.test", "*.example.com"};
    SSL_CTX *ctxs[3] = {h_server_ctx("a.test"), h_server_ctx("b.test"), h_server_ctx("*.example.com")};
    SSL_CTX *listener = h_server_ctx("listener");
    SSL_CTX *client = h_client_ctx();
    snicache_config *config = h_config(names, ctxs, 3);
    const snicache_cache *cache = NULL;
    struct h_opts o;
    struct h_result first, again, other, wild1, wild2, nosni;
    SSL_SESSION *forged;
    int i;

    if (!stateless)
        for (i = 0; i < 3; i++)
            SSL_CTX_set_options(i == 0 ? listener : ctxs[i], SSL_OP_NO_TICKET);
    if (!stateless)
        SSL_CTX_set_options(ctxs[0], SSL_OP_NO_TICKET);
    CHECK_OK(snicache_cache_new(config, &cache));
    CHECK_OK(snicache_cache_attach(cache, listener, 0));

    memset(&o, 0, sizeof o);
    o.version = version;
    o.sni = "a.test";
    first = h_connect(listener, client, &o);
    CHECK(first.ok && !first.resumed && first.session != NULL);
    CHECK(strcmp(first.vhost, "a.test") == 0);

    o.offer = first.session;
    again = h_connect(listener, client, &o);
    CHECK(again.ok && again.resumed);
    CHECK(again.info.outcome == SNICACHE_OUTCOME_RESUMED);
    if (!again.resumed)
        fprintf(stderr, "  again: outcome %u reason %s\n", again.info.outcome, again.reason);

    forged = h_session_with_hostname(first.session, "b.test");
    o.offer = forged;
    o.sni = "b.test";
    other = h_connect(listener, client, &o);
    CHECK(other.ok && !other.resumed);
    CHECK(strcmp(other.vhost, "b.test") == 0);
    SSL_SESSION_free(forged);

    o.offer = NULL;
    o.sni = "x.example.com";
    wild1 = h_connect(listener, client, &o);
    CHECK(wild1.ok && !wild1.resumed && strcmp(wild1.vhost, "*.example.com") == 0);
    forged = h_session_with_hostname(wild1.session, "y.example.com");
    o.offer = forged;
    o.sni = "y.example.com";
    wild2 = h_connect(listener, client, &o);
    CHECK(wild2.ok && !wild2.resumed);
    CHECK(wild2.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(wild2.reason, "sni") == 0);
    CHECK(h_refusals(cache, "*.example.com", "sni") == 1);
    SSL_SESSION_free(forged);

    forged = h_session_with_hostname(first.session, NULL);
    o.offer = forged;
    o.sni = NULL;
    nosni = h_connect(listener, client, &o);
    CHECK(nosni.ok && !nosni.resumed && strcmp(nosni.vhost, "a.test") == 0);
    CHECK(h_refusals(cache, "a.test", "sni") == 1);
    SSL_SESSION_free(forged);

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
    snicache_cache_free(cache);
    snicache_config_free(config);
    SSL_CTX_free(client);
    SSL_CTX_free(listener);
    for (i = 0; i < 3; i++)
        SSL_CTX_free(ctxs[i]);
}

int main(void)
{
    scenario(TLS1_2_VERSION, 0);
    scenario(TLS1_2_VERSION, 1);
    scenario(TLS1_3_VERSION, 0);
    scenario(TLS1_3_VERSION, 1);
    return h_done("resume");
}
