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

struct conn_result {
    int server_resumed;
    int server_saw_alert; /* the server's connection ended with a fatal alert, sent or received */
    SSL_SESSION *session; /* the client's session (caller frees) */
    char reason[64];
};

static void pump(BIO *from, BIO *to, int corrupt)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(from, buf, sizeof buf)) > 0) {
        if (corrupt)
            buf[n - 1] ^= 0x5a;
        BIO_write(to, buf, n);
    }
}

static int fatal(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);
    return rc <= 0 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

/* One connection on `listener` in `mode`, offering `offer` (may be NULL). */
static struct conn_result run(SSL_CTX *listener, SSL_CTX *cctx, int version, SSL_SESSION *offer, enum mode mode)
{
    struct conn_result r;
    SSL *c = SSL_new(cctx), *s = SSL_new(listener);
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
    snicache_conn_info info;
    int i, a = 0, b = 0;
    char byte;

    memset(&r, 0, sizeof r);
    SSL_set_bio(c, c_in, c_out);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    SSL_set_min_proto_version(c, version);
    SSL_set_max_proto_version(c, version);
    SSL_set_tlsext_host_name(c, "a.test");
    if (offer)
        SSL_set_session(c, offer);
    for (i = 0; i < 50; i++) {
        int dead_c = 0, dead_s = 0;
        if (a != 1) {
            a = SSL_do_handshake(c);
            dead_c = fatal(c, a);
        }
        pump(c_out, s_in, 0);
        if (b != 1) {
            b = SSL_do_handshake(s);
            dead_s = fatal(s, b);
        }
        /* The server's first flight of a resumption ends with its Finished. */
        pump(s_out, c_in, mode == CLIENT_ALERT_FINISHED && i == 0);
        if ((a == 1 && b == 1) || dead_c || dead_s)
            break;
    }
    if (mode == CLIENT_ALERT_FINISHED) {
        /* The client answered the corrupted Finished with an alert: the server reads it. */
        CHECK(a != 1);
        pump(c_out, s_in, 0);
        r.server_saw_alert = fatal(s, SSL_do_handshake(s));
    } else if (a == 1 && b == 1) {
        SSL_write(s, "s", 1);
        pump(s_out, c_in, mode == CLIENT_ALERT);
        if (SSL_read(c, &byte, 1) <= 0) {
            pump(c_out, s_in, 0); /* the client's alert */
            r.server_saw_alert = fatal(s, SSL_read(s, &byte, 1));
        } else {
            SSL_write(c, "c", 1);
            pump(c_out, s_in, mode == SERVER_ALERT);
            if (SSL_read(s, &byte, 1) <= 0) {
                r.server_saw_alert = 1;
                pump(s_out, c_in, 0);
                SSL_read(c, &byte, 1);
            } else {
                SSL_shutdown(c);
                pump(c_out, s_in, 0);
                SSL_shutdown(s);
                pump(s_out, c_in, 0);
                SSL_shutdown(c);
            }
        }
    }
    r.server_resumed = SSL_session_reused(s);
    r.session = SSL_get1_session(c);
    if (snicache_conn_info_get(s, &info) == SNICACHE_RESULT_OK && info.reason)
        snprintf(r.reason, sizeof r.reason, "%.*s", (int)info.reason_len, info.reason);
    SSL_free(c);
    SSL_free(s);
    return r;
}

/* Offers a copy of `s` (a copy drops the not_resumable mark OpenSSL's client sets after an
 * alert, so it is offered as an attacker's client would). */
static struct conn_result offer_copy(SSL_CTX *listener, SSL_CTX *client, int version, SSL_SESSION *s,
                                     enum mode mode)
{
    SSL_SESSION *copy = h_session_copy(s);
    struct conn_result r = run(listener, client, version, copy, mode);
    SSL_SESSION_free(copy);
    return r;
}

static void scenario(const char *store, int version)
{
    const char *names[] = {"a.test"};
    SSL_CTX *ctxs[1] = {h_server_ctx("a.test")};
    SSL_CTX *listener = h_server_ctx("listener");
    SSL_CTX *client = h_client_ctx();
    snicache_config *config = h_config(names, ctxs, 1);
    const snicache_cache *cache = NULL;
    struct conn_result keep, r, born, again;
    enum mode m;
    uint64_t inv, refused = 0;

    CHECK_OK(snicache_config_set_store(config, store));
    CHECK_OK(snicache_cache_new(config, &cache));
    CHECK_OK(snicache_cache_attach(cache, listener, 0));
    if (cache == NULL)
        return;

    /* A ticket no alert ever touches. */
    keep = run(listener, client, version, NULL, CLEAN);
    CHECK(!keep.server_resumed && keep.session != NULL);

    for (m = SERVER_ALERT; m <= CLIENT_ALERT_FINISHED; m++) {
        born = run(listener, client, version, NULL, CLEAN);
        CHECK(!born.server_resumed && born.session != NULL);
        /* The ticket resumes ... */
        r = offer_copy(listener, client, version, born.session, CLEAN);
        CHECK(r.server_resumed);
        SSL_SESSION_free(r.session);
        /* ... then a resumption with it ends in a fatal alert ... */
        inv = h_stats(cache, NULL).invalidations;
        r = offer_copy(listener, client, version, born.session, m);
        CHECK(r.server_resumed && r.server_saw_alert);
        CHECK(h_stats(cache, NULL).invalidations > inv);
        SSL_SESSION_free(r.session);
        /* ... and the same ticket is refused from then on, as `invalidated`. */
        again = offer_copy(listener, client, version, born.session, CLEAN);
        CHECK(!again.server_resumed);
        CHECK(strcmp(again.reason, "invalidated") == 0);
        refused++;
        if (h_failures)
            fprintf(stderr, "  store %s v=%x %s: reason '%s'\n", store, version, mode_name[m], again.reason);
        SSL_SESSION_free(again.session);
        SSL_SESSION_free(born.session);
    }

    /* A ticket issued on a connection that then ends with a fatal alert is revoked too. */
    born = run(listener, client, version, NULL, SERVER_ALERT);
    CHECK(!born.server_resumed && born.server_saw_alert && born.session != NULL);
    if (born.session) {
        again = offer_copy(listener, client, version, born.session, CLEAN);
        CHECK(!again.server_resumed && strcmp(again.reason, "invalidated") == 0);
        refused++;
        SSL_SESSION_free(again.session);
        SSL_SESSION_free(born.session);
    }

    /* The untouched ticket still resumes. */
    r = offer_copy(listener, client, version, keep.session, CLEAN);
    CHECK(r.server_resumed);
    SSL_SESSION_free(r.session);
    SSL_SESSION_free(keep.session);

    CHECK(h_refusals(cache, "a.test", "invalidated") == refused);
    if (h_failures || getenv("H_DEBUG"))
        fprintf(stderr, "  store %s v=%x: invalidations=%llu refused=%llu\n", store, version,
                (unsigned long long)h_stats(cache, NULL).invalidations,
                (unsigned long long)h_refusals(cache, "a.test", "invalidated"));

    snicache_cache_free(cache);
    snicache_config_free(config);
    SSL_CTX_free(client);
    SSL_CTX_free(listener);
    SSL_CTX_free(ctxs[0]);
}

int main(void)
{
    scenario("memory:1m", TLS1_2_VERSION);
    scenario("memory:1m", TLS1_3_VERSION);
    scenario("shm:1m", TLS1_2_VERSION);
    scenario("shm:1m", TLS1_3_VERSION);
    return h_done("ticket_revocation");
}
