/* R10 with OpenSSL stateless tickets (TLS 1.2 and TLS 1.3). Alone, OpenSSL seals every vhost's
 * tickets with the listener's keys and resumes them anywhere (the control below). A ticket issued
 * under vhost A and offered under vhost B (the client's session copy rewritten to B's name, as an
 * attacker's client would) is a full handshake: with snicache's per-vhost ticket keys (the
 * default) B has no key for it (counted as ticket_unknown_key); with the host's own ticket keys
 * (attach without SNICACHE_INSTALL_TICKET_KEYS) the ticket check refuses it as `vhost`. A ticket
 * of a wildcard vhost offered under another name of the same vhost is refused as `sni`. The
 * same ticket under its own name still resumes. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static void scenario(int version, SSL_CTX *client, int own_keys)
{
    const char *names[] = {"a.test", "b.test", "*.example.com"};
    struct h_server srv;
    SSL_CTX *listener;
    const snicache_cache *cache;
    struct h_opts o;
    struct h_result a, own, cross, w1, wown, wother;
    snicache_stats st;

    h_server_init(&srv, names, NULL, 3, 0);
    listener = srv.listener;
    cache = h_server_start(&srv, own_keys ? 0 : SNICACHE_ATTACH_ALL & ~SNICACHE_INSTALL_TICKET_KEYS);
    o = h_opts_for(version, "a.test");
    a = h_connect(listener, client, &o);
    CHECK(a.ok && !a.resumed && a.session != NULL && SSL_SESSION_has_ticket(a.session));
    o.offer = a.session;
    own = h_connect(listener, client, &o);
    CHECK(own.ok && own.resumed && own.info.outcome == SNICACHE_OUTCOME_RESUMED);

    cross = h_connect_forged(listener, client, &o, a.session, "b.test");
    CHECK(cross.ok && !cross.resumed && strcmp(cross.vhost, "b.test") == 0);
    if (own_keys) {
        CHECK(cross.info.outcome == SNICACHE_OUTCOME_FULL);
        CHECK(h_stats(cache, "b.test").ticket_unknown_key == 1);
    } else {
        CHECK(cross.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(cross.reason, "vhost") == 0);
        CHECK(h_refusals(cache, "b.test", "vhost") == 1);
    }

    o.offer = NULL;
    o.sni = "x.example.com";
    w1 = h_connect(listener, client, &o);
    CHECK(w1.ok && !w1.resumed && strcmp(w1.vhost, "*.example.com") == 0);
    o.offer = w1.session;
    wown = h_connect(listener, client, &o);
    CHECK(wown.ok && wown.resumed);
    wother = h_connect_forged(listener, client, &o, w1.session, "y.example.com");
    CHECK(wother.ok && !wother.resumed && strcmp(wother.vhost, "*.example.com") == 0);
    CHECK(wother.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(wother.reason, "sni") == 0);
    CHECK(h_refusals(cache, "*.example.com", "sni") == 1);

    st = h_stats(cache, NULL);
    /* Tickets are stateless: nothing is stored, and each decision is a hit or a refusal. */
    CHECK(st.hits == 2 && st.refusals == (own_keys ? 1u : 2u) && st.stores == 0 && st.entries == 0);
    CHECK(st.ticket_unknown_key == (own_keys ? 1u : 0u));
    if (h_failures)
        fprintf(stderr, "  v=%x cross: resumed=%d reason=%s; wildcard: resumed=%d reason=%s; hits=%llu refusals=%llu\n",
                version, cross.resumed, cross.reason, wother.resumed, wother.reason, (unsigned long long)st.hits,
                (unsigned long long)st.refusals);

    SSL_SESSION_free(a.session);
    SSL_SESSION_free(own.session);
    SSL_SESSION_free(cross.session);
    SSL_SESSION_free(w1.session);
    SSL_SESSION_free(wown.session);
    SSL_SESSION_free(wother.session);
    h_server_free(&srv);
}

/* Control: plain OpenSSL with a servername callback that switches to B's context resumes A's
 * ticket under B (the attack snicache stops). */
static SSL_CTX *control_b;

static int switch_ctx(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    SSL_set_SSL_CTX(ssl, control_b);
    return SSL_TLSEXT_ERR_OK;
}

static void control(int version, SSL_CTX *client)
{
    SSL_CTX *listener = h_server_ctx("a.test");
    struct h_opts o;
    struct h_result a, cross;

    control_b = h_server_ctx("b.test");
    o = h_opts_for(version, "a.test");
    a = h_connect(listener, client, &o);
    SSL_CTX_set_tlsext_servername_callback(listener, switch_ctx);
    cross = h_connect_forged(listener, client, &o, a.session, "b.test");
    CHECK(a.ok && cross.ok && cross.resumed);
    SSL_SESSION_free(a.session);
    SSL_SESSION_free(cross.session);
    SSL_CTX_free(listener);
    SSL_CTX_free(control_b);
}

int main(void)
{
    SSL_CTX *client = h_client_ctx();
    scenario(TLS1_2_VERSION, client, 1);
    scenario(TLS1_3_VERSION, client, 1);
    scenario(TLS1_2_VERSION, client, 0);
    scenario(TLS1_3_VERSION, client, 0);
    control(TLS1_2_VERSION, client);
    control(TLS1_3_VERSION, client);
    SSL_CTX_free(client);
    return h_done("tickets");
}
