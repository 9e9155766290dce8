/* SNICACHE_VHOST_SINGLE_USE (RFC 8446 §8.1): on such a vhost a stored session resumes once and
 * is removed; offered again it is a full handshake (a miss). TLS 1.2 session ids and TLS 1.3
 * stateful sessions (SSL_OP_NO_TICKET). A session issued on the resumed connection (TLS 1.3
 * issues one per resumption) is single-use too. Without the flag a session resumes again and
 * again, which is OpenSSL's own behaviour. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define ROUNDS 3

static void scenario(int version)
{
    SSL_CTX *once_ctx = h_server_ctx("once.test"), *many_ctx = h_server_ctx("many.test");
    SSL_CTX *listener = h_server_ctx("listener");
    SSL_CTX *client = h_client_ctx();
    snicache_ssl_api api;
    snicache_config *config = NULL;
    const snicache_cache *cache = NULL;
    struct h_opts o;
    struct h_result made, first, second, next, many, r;
    snicache_stats st;
    int i;

    SSL_CTX_set_options(listener, SSL_OP_NO_TICKET);
    SSL_CTX_set_options(once_ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_options(many_ctx, SSL_OP_NO_TICKET);
    snicache_ssl_api_init(&api);
    CHECK_OK(snicache_config_new(&api, &config));
    CHECK_OK(snicache_config_add_vhost(config, "once.test", once_ctx, 0,
                                       SNICACHE_VHOST_DEFAULT | SNICACHE_VHOST_SINGLE_USE));
    CHECK_OK(snicache_config_add_vhost(config, "many.test", many_ctx, 0, 0));
    CHECK_OK(snicache_cache_new(config, &cache));
    CHECK_OK(snicache_cache_attach(cache, listener, 0));
    snicache_config_free(config);

    memset(&o, 0, sizeof o);
    o.version = version;
    o.sni = "once.test";
    made = h_connect(listener, client, &o);
    CHECK(made.ok && !made.resumed && made.session != NULL);

    o.offer = made.session;
    first = h_connect(listener, client, &o);
    CHECK(first.ok && first.resumed && first.info.outcome == SNICACHE_OUTCOME_RESUMED);
    second = h_connect(listener, client, &o);
    CHECK(second.ok && !second.resumed);
    CHECK(second.info.outcome == SNICACHE_OUTCOME_FULL);
    st = h_stats(cache, "once.test");
    CHECK(st.hits == 1 && st.misses == 1 && st.refusals == 0);

    /* The session the full handshake just issued is single-use as well. */
    o.offer = second.session;
    next = h_connect(listener, client, &o);
    CHECK(next.ok && next.resumed);
    SSL_SESSION_free(next.session);
    next = h_connect(listener, client, &o);
    CHECK(next.ok && !next.resumed);
    if (version == TLS1_3_VERSION) {
        /* A resumption issues a new stateful session: it resumes once, too. */
        o.offer = first.session;
        r = h_connect(listener, client, &o);
        CHECK(r.ok && r.resumed);
        SSL_SESSION_free(r.session);
        r = h_connect(listener, client, &o);
        CHECK(r.ok && !r.resumed);
        SSL_SESSION_free(r.session);
    }

    /* Without the flag: the same session resumes every time. */
    o.offer = NULL;
    o.sni = "many.test";
    many = h_connect(listener, client, &o);
    CHECK(many.ok && !many.resumed);
    o.offer = many.session;
    for (i = 0; i < ROUNDS; i++) {
        r = h_connect(listener, client, &o);
        CHECK(r.ok && r.resumed && r.info.outcome == SNICACHE_OUTCOME_RESUMED);
        SSL_SESSION_free(r.session);
    }
    st = h_stats(cache, "many.test");
    CHECK(st.hits == ROUNDS && st.misses == 0);
    if (h_failures)
        fprintf(stderr, "  version %x\n", version);

    SSL_SESSION_free(made.session);
    SSL_SESSION_free(first.session);
    SSL_SESSION_free(second.session);
    SSL_SESSION_free(next.session);
    SSL_SESSION_free(many.session);
    snicache_cache_free(cache);
    SSL_CTX_free(client);
    SSL_CTX_free(listener);
    SSL_CTX_free(once_ctx);
    SSL_CTX_free(many_ctx);
}

int main(void)
{
    scenario(TLS1_2_VERSION);
    scenario(TLS1_3_VERSION);
    return h_done("single_use");
}
