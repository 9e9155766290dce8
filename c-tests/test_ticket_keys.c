/* Per-vhost ticket keys on OpenSSL 3 (R8, R10), TLS 1.2 and TLS 1.3 tickets: servers sharing a
 * secret open each other's tickets and others do not; a forged ticket or an unknown key gives a
 * full handshake, counted; a ticket under a rotated key (new secret, or a new time epoch) still
 * opens in its decrypt window and is renewed under the current key; after the window it does
 * not. */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static const uint8_t SECRET_A[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t SECRET_B[32] = {32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                     16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};

struct server {
    SSL_CTX *listener;
    SSL_CTX *vhost;
    const snicache_cache *cache;
};

/* `like`: another server whose certificate and key this one shares, as a fleet does (the
 * session id context covers the certificate). */
static struct server server_new(const uint8_t *secret, uint32_t rotation, uint32_t timeout, const struct server *like)
{
    struct server s;
    const char *names[] = {"a.test"};
    snicache_config *config;
    s.listener = h_server_ctx("listener");
    s.vhost = h_server_ctx("a.test");
    if (like) {
        SSL_CTX_use_certificate(s.vhost, SSL_CTX_get0_certificate(like->vhost));
        SSL_CTX_use_PrivateKey(s.vhost, SSL_CTX_get0_privatekey(like->vhost));
    }
    config = h_config(names, &s.vhost, 1);
    CHECK_OK(snicache_config_set_ticket_keys(config, secret, secret ? 32 : 0, rotation));
    if (timeout)
        CHECK_OK(snicache_config_set_timeout(config, timeout));
    s.cache = NULL;
    CHECK_OK(snicache_cache_new(config, &s.cache));
    CHECK_OK(snicache_cache_attach(s.cache, s.listener, 0));
    snicache_config_free(config);
    return s;
}

static void server_free(struct server *s)
{
    snicache_cache_free(s->cache);
    SSL_CTX_free(s->listener);
    SSL_CTX_free(s->vhost);
}

/* A copy of `sess` whose ticket has byte `at` (negative: from the end) flipped. */
static SSL_SESSION *tampered(SSL_SESSION *sess, long at)
{
    const unsigned char *tick = NULL, *p;
    size_t tick_len = 0;
    unsigned char *der, *w, *found = NULL;
    int n, i;
    SSL_SESSION *copy;

    SSL_SESSION_get0_ticket(sess, &tick, &tick_len);
    n = i2d_SSL_SESSION(sess, NULL);
    der = OPENSSL_malloc((size_t)n);
    w = der;
    i2d_SSL_SESSION(sess, &w);
    for (i = 0; tick_len > 0 && i + (int)tick_len <= n; i++) {
        if (memcmp(der + i, tick, tick_len) == 0) {
            found = der + i;
            break;
        }
    }
    CHECK(found != NULL);
    if (found)
        found[at >= 0 ? at : (long)tick_len + at] ^= 0x01;
    p = der;
    copy = d2i_SSL_SESSION(NULL, &p, n);
    OPENSSL_free(der);
    return copy;
}

static struct h_result connect_with(struct server *s, SSL_CTX *client, int version, SSL_SESSION *offer)
{
    struct h_opts o;
    o = h_opts_for(version, "a.test");
    o.offer = offer;
    return h_connect(s->listener, client, &o);
}

static void fleet_and_forgery(int version, SSL_CTX *client)
{
    struct server one = server_new(SECRET_A, 0, 0, NULL);
    struct server two = server_new(SECRET_A, 0, 0, &one);
    struct server other = server_new(SECRET_B, 0, 0, &one);
    struct server random_keys = server_new(NULL, 0, 0, &one);
    struct h_result first, on_two, on_other, on_random, forged, unknown;
    SSL_SESSION *bad_mac, *bad_name;

    first = connect_with(&one, client, version, NULL);
    CHECK(first.ok && !first.resumed && SSL_SESSION_has_ticket(first.session));
    on_two = connect_with(&two, client, version, first.session);
    CHECK(on_two.ok && on_two.resumed);
    on_other = connect_with(&other, client, version, first.session);
    CHECK(on_other.ok && !on_other.resumed);
    CHECK(h_stats(other.cache, NULL).ticket_unknown_key == 1);
    on_random = connect_with(&random_keys, client, version, first.session);
    CHECK(on_random.ok && !on_random.resumed);

    bad_mac = tampered(first.session, -1);
    forged = connect_with(&one, client, version, bad_mac);
    CHECK(forged.ok && !forged.resumed);
    CHECK(h_stats(one.cache, NULL).ticket_forged == 1);
    bad_name = tampered(first.session, 0);
    unknown = connect_with(&one, client, version, bad_name);
    CHECK(unknown.ok && !unknown.resumed);
    CHECK(h_stats(one.cache, NULL).ticket_unknown_key == 1);
    CHECK(h_stats(one.cache, NULL).ticket_forged == 1);

    SSL_SESSION_free(bad_mac);
    SSL_SESSION_free(bad_name);
    SSL_SESSION_free(first.session);
    SSL_SESSION_free(on_two.session);
    SSL_SESSION_free(on_other.session);
    SSL_SESSION_free(on_random.session);
    SSL_SESSION_free(forged.session);
    SSL_SESSION_free(unknown.session);
    server_free(&one);
    server_free(&two);
    server_free(&other);
    server_free(&random_keys);
}

static void secret_rotation(int version, SSL_CTX *client)
{
    struct server s = server_new(SECRET_A, 0, 0, NULL);
    struct h_result first, renewed, fresh;

    first = connect_with(&s, client, version, NULL);
    CHECK_OK(snicache_cache_rotate_ticket_secret(s.cache, SECRET_B, sizeof SECRET_B));
    CHECK(snicache_cache_rotate_ticket_secret(s.cache, SECRET_B, 8) == SNICACHE_RESULT_INVALID_PARAMETER);
    renewed = connect_with(&s, client, version, first.session);
    CHECK(renewed.ok && renewed.resumed);
    CHECK(h_stats(s.cache, NULL).ticket_renewed == 1);
    /* The ticket the client got back is sealed under the new secret: no renewal needed. */
    fresh = connect_with(&s, client, version, renewed.session);
    CHECK(fresh.ok && fresh.resumed);
    CHECK(h_stats(s.cache, NULL).ticket_renewed == 1);

    SSL_SESSION_free(first.session);
    SSL_SESSION_free(renewed.session);
    SSL_SESSION_free(fresh.session);
    server_free(&s);
}

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d > 0)
        usleep((useconds_t)(d * 1e6));
}

/* Keys rotate every second and then decrypt for the session lifetime (3 s) more, so a ticket
 * lives as long as its session, past two rotations; then its key is gone. The first ticket is
 * issued just after an epoch boundary to keep the timing exact. */
static void time_rotation(int version, SSL_CTX *client)
{
    struct server s = server_new(SECRET_A, 1, 3, NULL);
    struct h_result first, renewed, older, late;
    double t0;

    t0 = (double)((long)now_s() + 1) + 0.1;
    sleep_until(t0);
    first = connect_with(&s, client, version, NULL);
    sleep_until(t0 + 1.1);
    renewed = connect_with(&s, client, version, first.session);
    CHECK(renewed.ok && renewed.resumed);
    CHECK(h_stats(s.cache, NULL).ticket_renewed == 1);
    sleep_until(t0 + 2.5);
    older = connect_with(&s, client, version, first.session);
    CHECK(older.ok && older.resumed);
    sleep_until(t0 + 4.0);
    late = connect_with(&s, client, version, first.session);
    CHECK(late.ok && !late.resumed);
    CHECK(h_stats(s.cache, NULL).ticket_unknown_key == 1);

    SSL_SESSION_free(older.session);
    SSL_SESSION_free(first.session);
    SSL_SESSION_free(renewed.session);
    SSL_SESSION_free(late.session);
    server_free(&s);
}

int main(void)
{
    SSL_CTX *client = h_client_ctx();
    fleet_and_forgery(TLS1_2_VERSION, client);
    fleet_and_forgery(TLS1_3_VERSION, client);
    secret_rotation(TLS1_2_VERSION, client);
    secret_rotation(TLS1_3_VERSION, client);
    time_rotation(TLS1_2_VERSION, client);
    time_rotation(TLS1_3_VERSION, client);
    SSL_CTX_free(client);
    return h_done("ticket_keys");
}
