/* Every resumed TLS 1.3 connection gets a fresh ticket, as single-use clients (Chromium, curl,
 * rustls) need: a chain of connections, each offering only the newest session the one before
 * it received, resumes every time, and each resumption hands the client a session it did not
 * offer. Stateless tickets under snicache's per-vhost keys (the ticket key callback answers
 * "renew") and under the host's own keys (the ticket decrypt callback answers USE_RENEW), and
 * stateful sessions (tickets off). TLS 1.2 is unchanged: a resumption under a current key
 * gets no new ticket. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define CHAIN 5

/* The ticket bytes of a session, copied into buf (0 when it has none). */
static size_t ticket_of(SSL_SESSION *s, unsigned char *buf, size_t cap)
{
    const unsigned char *t = NULL;
    size_t n = 0;
    if (s == NULL)
        return 0;
    SSL_SESSION_get0_ticket(s, &t, &n);
    if (t == NULL || n > cap)
        return 0;
    memcpy(buf, t, n);
    return n;
}

/* A session's identity: its ticket when it has one (stateless), else its id (stateful). */
static int same_session(SSL_SESSION *a, SSL_SESSION *b)
{
    unsigned char ta[4096], tb[4096];
    size_t na = ticket_of(a, ta, sizeof ta), nb = ticket_of(b, tb, sizeof tb);
    unsigned int ia = 0, ib = 0;
    const unsigned char *ida, *idb;
    if (na || nb)
        return na == nb && memcmp(ta, tb, na) == 0;
    ida = SSL_SESSION_get_id(a, &ia);
    idb = SSL_SESSION_get_id(b, &ib);
    return ia == ib && memcmp(ida, idb, ia) == 0;
}

/* Full handshake, then CHAIN resumptions each offering only the newest session. Returns how
 * many resumed; `fresh` counts those that handed back a session other than the one offered. */
static int chain(SSL_CTX *listener, SSL_CTX *client, int version, int *fresh)
{
    struct h_opts o;
    struct h_result r;
    SSL_SESSION *newest;
    int i, resumed = 0;

    o = h_opts_for(version, "a.test");
    r = h_connect(listener, client, &o);
    CHECK(r.ok && !r.resumed && r.session != NULL);
    newest = r.session;
    *fresh = 0;
    for (i = 0; i < CHAIN && newest != NULL; i++) {
        o.offer = newest;
        r = h_connect(listener, client, &o);
        CHECK(r.ok);
        resumed += r.resumed;
        if (r.session != NULL && !same_session(r.session, newest))
            (*fresh)++;
        SSL_SESSION_free(newest);
        newest = r.session;
    }
    SSL_SESSION_free(newest);
    return resumed;
}

static void stateless(int version, uint32_t attach_flags, const char *what)
{
    const char *names[] = {"a.test"};
    struct h_server srv;
    SSL_CTX *client = h_client_ctx();
    const snicache_cache *cache;
    snicache_stats st;
    int resumed, fresh;

    h_server_init(&srv, names, NULL, 1, 0);
    cache = h_server_start(&srv, attach_flags);
    resumed = chain(srv.listener, client, version, &fresh);
    st = h_stats(cache, NULL);
    CHECK(resumed == CHAIN);
    /* Without the ticket check nothing of snicache runs on a ticket, and nothing is counted. */
    CHECK(st.hits == ((attach_flags & SNICACHE_INSTALL_TICKET_CHECK) || attach_flags == 0 ? CHAIN : 0));
    if (version == TLS1_3_VERSION) {
        /* A new ticket on each resumption; nothing counted as a decrypt-only-key renewal. */
        CHECK(fresh == CHAIN);
        CHECK(st.ticket_renewed == 0);
    } else {
        /* TLS 1.2 under a current key: the client keeps the ticket it offered. */
        CHECK(fresh == 0);
    }
    printf("  %s TLS 1.%d tickets: resumed %d of %d, fresh ticket on %d\n", what, version == TLS1_3_VERSION ? 3 : 2,
           resumed, CHAIN, fresh);
    h_server_free(&srv);
    SSL_CTX_free(client);
}

static void stateful(const char *store)
{
    const char *names[] = {"a.test", "b.test"};
    struct h_server srv;
    SSL_CTX *client = h_client_ctx();
    int resumed = 0, fresh = 0;

    if (h_server_stateful(&srv, names, 2, store) != NULL)
        resumed = chain(srv.listener, client, TLS1_3_VERSION, &fresh);
    CHECK(resumed == CHAIN && fresh == CHAIN);
    printf("  %s TLS 1.3 stateful: resumed %d of %d, fresh session on %d\n", store, resumed, CHAIN, fresh);
    h_server_free(&srv);
    SSL_CTX_free(client);
}

int main(void)
{
    uint32_t own_keys = SNICACHE_ATTACH_ALL & ~SNICACHE_INSTALL_TICKET_KEYS;
    uint32_t no_check = SNICACHE_ATTACH_ALL & ~SNICACHE_INSTALL_TICKET_CHECK;
    stateless(TLS1_3_VERSION, 0, "snicache keys");
    stateless(TLS1_3_VERSION, own_keys, "host keys + ticket check");
    stateless(TLS1_3_VERSION, no_check, "snicache keys, no ticket check");
    stateless(TLS1_2_VERSION, 0, "snicache keys");
    stateless(TLS1_2_VERSION, own_keys, "host keys + ticket check");
    stateful("memory");
    stateful("shm:4m");
    return h_done("renew");
}
