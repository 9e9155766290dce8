/* R1 (RFC 5246 §7.2.2) for stateless tickets, TLS 1.2 and 1.3, memory and shm stores: a
 * connection that used or was issued a ticket and ends with a fatal alert revokes it, so the same
 * ticket offered again gets a full handshake refused as `invalidated`. The alert is sent by the
 * server (a corrupted client record: bad_record_mac), by the client (a corrupted server record
 * after the handshake), or by the client in place of its Finished (the server's Finished of a
 * resumption corrupted on the way). A ticket of an unrelated connection keeps resuming. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

enum mode {
    CLEAN,
    SERVER_ALERT,         /* the server sends the alert, after the handshake */
    CLIENT_ALERT,         /* the client sends the alert, after the handshake */
    CLIENT_ALERT_FINISHED /* the client sends the alert in place of its Finished */
};

static const char *mode_name[] = {"clean", "server alert", "client alert", "client alert in place of Finished"};

/* One connection on `listener` in `mode`, offering a copy of `offer` (a copy drops the
 * not_resumable mark OpenSSL's client sets after an alert, so it is offered as an attacker's
 * client would), or nothing (NULL). */
static struct h_result run(SSL_CTX *listener, SSL_CTX *client, int version, SSL_SESSION *offer, enum mode mode)
{
    struct h_opts o;
    o = h_opts_for(version, "a.test");
    o.corrupt_after = mode == SERVER_ALERT;
    o.corrupt_server_after = mode == CLIENT_ALERT;
    o.corrupt_server_flight = mode == CLIENT_ALERT_FINISHED;
    return offer ? h_connect_copy(listener, client, &o, offer) : h_connect(listener, client, &o);
}

static void scenario(const char *store, int version)
{
    const char *names[] = {"a.test"};
    struct h_server srv;
    SSL_CTX *listener, *client = h_client_ctx();
    const snicache_cache *cache;
    struct h_result keep, r, born, again;
    enum mode m;
    uint64_t inv, refused = 0;

    h_server_init(&srv, names, NULL, 1, 0);
    listener = srv.listener;
    CHECK_OK(snicache_config_set_store(srv.config, store));
    cache = h_server_start(&srv, 0);
    if (cache == NULL) {
        h_server_free(&srv);
        SSL_CTX_free(client);
        return;
    }

    /* A ticket no alert ever touches. */
    keep = run(listener, client, version, NULL, CLEAN);
    CHECK(!keep.resumed && keep.session != NULL);

    for (m = SERVER_ALERT; m <= CLIENT_ALERT_FINISHED; m++) {
        born = run(listener, client, version, NULL, CLEAN);
        CHECK(!born.resumed && born.session != NULL);
        /* The ticket resumes ... */
        r = run(listener, client, version, born.session, CLEAN);
        CHECK(r.resumed);
        SSL_SESSION_free(r.session);
        /* ... then a resumption with it ends in a fatal alert ... */
        inv = h_stats(cache, NULL).invalidations;
        r = run(listener, client, version, born.session, m);
        CHECK(r.resumed && r.server_alerted);
        CHECK(h_stats(cache, NULL).invalidations > inv);
        SSL_SESSION_free(r.session);
        /* ... and the same ticket is refused from then on, as `invalidated`. */
        again = run(listener, client, version, born.session, CLEAN);
        CHECK(!again.resumed);
        CHECK(strcmp(again.reason, "invalidated") == 0);
        refused++;
        if (h_failures)
            fprintf(stderr, "  store %s v=%x %s: reason '%s'\n", store, version, mode_name[m], again.reason);
        SSL_SESSION_free(again.session);
        SSL_SESSION_free(born.session);
    }

    /* A ticket issued on a connection that then ends with a fatal alert is revoked too. */
    born = run(listener, client, version, NULL, SERVER_ALERT);
    CHECK(!born.resumed && born.server_alerted && born.session != NULL);
    if (born.session) {
        again = run(listener, client, version, born.session, CLEAN);
        CHECK(!again.resumed && strcmp(again.reason, "invalidated") == 0);
        refused++;
        SSL_SESSION_free(again.session);
        SSL_SESSION_free(born.session);
    }

    /* The untouched ticket still resumes. */
    r = run(listener, client, version, keep.session, CLEAN);
    CHECK(r.resumed);
    SSL_SESSION_free(r.session);
    SSL_SESSION_free(keep.session);

    CHECK(h_refusals(cache, "a.test", "invalidated") == refused);
    if (h_failures || getenv("H_DEBUG"))
        fprintf(stderr, "  store %s v=%x: invalidations=%llu refused=%llu\n", store, version,
                (unsigned long long)h_stats(cache, NULL).invalidations,
                (unsigned long long)h_refusals(cache, "a.test", "invalidated"));

    h_server_free(&srv);
    SSL_CTX_free(client);
}

int main(void)
{
    scenario("memory:1m", TLS1_2_VERSION);
    scenario("memory:1m", TLS1_3_VERSION);
    scenario("shm:1m", TLS1_2_VERSION);
    scenario("shm:1m", TLS1_3_VERSION);
    return h_done("ticket_revocation");
}
