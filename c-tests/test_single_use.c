/* SNICACHE_VHOST_SINGLE_USE (RFC 8446 §8.1): on such a vhost a stored session resumes once and
 * is removed; offered again it is a full handshake (a miss). TLS 1.2 session ids and TLS 1.3
 * stateful sessions (SSL_OP_NO_TICKET). A session issued on the resumed connection (TLS 1.3
 * issues one per resumption) is single-use too. Without the flag a session resumes again and
 * again, which is OpenSSL's own behaviour. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define ROUNDS 3

/* Offers `s` twice: it resumes once, then is a full handshake. */
static void resumes_once(SSL_CTX *listener, SSL_CTX *client, const struct h_opts *o, SSL_SESSION *s)
{
    struct h_opts offer = *o;
    int i;
    offer.offer = s;
    for (i = 0; i < 2; i++) {
        struct h_result r = h_connect(listener, client, &offer);
        CHECK(r.ok && r.resumed == (i == 0));
        SSL_SESSION_free(r.session);
    }
}

static void scenario(int version)
{
    const char *names[] = {"once.test", "many.test"};
    const uint32_t vhost_flags[] = {SNICACHE_VHOST_SINGLE_USE, 0};
    struct h_server srv;
    SSL_CTX *listener, *client = h_client_ctx();
    const snicache_cache *cache;
    struct h_opts o;
    struct h_result made, first, second, many, r;
    snicache_stats st;
    int i;

    h_server_init(&srv, names, vhost_flags, 2, H_NO_TICKET);
    listener = srv.listener;
    cache = h_server_start(&srv, 0);
    h_server_drop_config(&srv);

    o = h_opts_for(version, "once.test");
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
    resumes_once(listener, client, &o, second.session);
    if (version == TLS1_3_VERSION) /* A resumption issues a new stateful session: it resumes once, too. */
        resumes_once(listener, client, &o, first.session);

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
    SSL_SESSION_free(many.session);
    h_server_free(&srv);
    SSL_CTX_free(client);
}

int main(void)
{
    scenario(TLS1_2_VERSION);
    scenario(TLS1_3_VERSION);
    return h_done("single_use");
}
