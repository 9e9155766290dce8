/* R2 (RFC 5246 §F.1.4): sessions live only as long as their vhost's lifetime. A 1 s lifetime
 * from snicache_config_set_timeout (vhost added with timeout 0) and from a per-vhost timeout:
 * after 2 s the offer is a full handshake, counted as a store expiration (session ids, stateful
 * TLS 1.3) or as the `expired` refusal (stateless tickets, which the store never holds). A vhost
 * with a long lifetime in the same cache still resumes. OpenSSL's own session timeout (7200 s)
 * would have resumed all of them. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"

struct mode {
    int version;
    int stateless;
    SSL_CTX *ctxs[3];         /* a.test, b.test (cache 1), c.test (cache 2) */
    SSL_CTX *listener[2];
    snicache_config *config[2];
    const snicache_cache *cache[2];
    SSL_SESSION *session[3];
};

static const char *names[3] = {"a.test", "b.test", "c.test"};

static struct mode modes[H_MODES];
static SSL_CTX *client;

static void setup(int mode, int version, int stateless)
{
    struct mode *m = &modes[mode];
    struct h_opts o;
    int i;
    m->version = version;
    m->stateless = stateless;
    for (i = 0; i < 3; i++)
        m->ctxs[i] = h_server_ctx(names[i]);
    for (i = 0; i < 2; i++)
        m->listener[i] = h_server_ctx("listener");
    if (!m->stateless) {
        for (i = 0; i < 3; i++)
            SSL_CTX_set_options(m->ctxs[i], SSL_OP_NO_TICKET);
        for (i = 0; i < 2; i++)
            SSL_CTX_set_options(m->listener[i], SSL_OP_NO_TICKET);
    }
    /* Cache 1: default lifetime 1 s for a.test (timeout 0); b.test keeps an hour. */
    m->config[0] = h_config(names, m->ctxs, 0);
    CHECK_OK(snicache_config_set_timeout(m->config[0], 1));
    CHECK_OK(snicache_config_add_vhost(m->config[0], "a.test", m->ctxs[0], 0, SNICACHE_VHOST_DEFAULT));
    CHECK_OK(snicache_config_add_vhost(m->config[0], "b.test", m->ctxs[1], 3600, 0));
    /* Cache 2: default lifetime (300 s), c.test's own timeout 1 s. */
    m->config[1] = h_config(names, m->ctxs, 0);
    CHECK_OK(snicache_config_add_vhost(m->config[1], "c.test", m->ctxs[2], 1, SNICACHE_VHOST_DEFAULT));
    for (i = 0; i < 2; i++) {
        CHECK_OK(snicache_cache_new(m->config[i], &m->cache[i]));
        CHECK_OK(snicache_cache_attach(m->cache[i], m->listener[i], 0));
    }
    o = h_opts_for(m->version, NULL);
    for (i = 0; i < 3; i++) {
        struct h_result r;
        o.sni = names[i];
        r = h_connect(m->listener[i == 2], client, &o);
        CHECK(r.ok && !r.resumed && r.session != NULL);
        m->session[i] = r.session;
    }
}

static void check(int mode)
{
    struct mode *m = &modes[mode];
    struct h_opts o;
    struct h_result r[3];
    snicache_stats a, b, c;
    int i;
    o = h_opts_for(m->version, NULL);
    for (i = 0; i < 3; i++) {
        o.sni = names[i];
        o.offer = m->session[i];
        r[i] = h_connect(m->listener[i == 2], client, &o);
        CHECK(r[i].ok);
    }
    a = h_stats(m->cache[0], "a.test");
    b = h_stats(m->cache[0], "b.test");
    c = h_stats(m->cache[1], "c.test");
    CHECK(!r[0].resumed && !r[2].resumed);
    CHECK(r[1].resumed && b.hits == 1);
    CHECK(a.hits == 0 && c.hits == 0);
    if (m->stateless) {
        CHECK(strcmp(r[0].reason, "expired") == 0 && strcmp(r[2].reason, "expired") == 0);
        CHECK(h_refusals(m->cache[0], "a.test", "expired") == 1);
        CHECK(h_refusals(m->cache[1], "c.test", "expired") == 1);
    } else {
        /* The store drops the entry when it is looked up past its lifetime. */
        CHECK(a.expirations == 1 && c.expirations == 1);
        CHECK(a.misses == 1 && c.misses == 1);
        CHECK(r[0].info.outcome == SNICACHE_OUTCOME_FULL && r[2].info.outcome == SNICACHE_OUTCOME_FULL);
    }
    CHECK(b.refusals == 0 && b.expirations == 0);
    if (h_failures)
        fprintf(stderr, "  v=%x stateless=%d a: hits=%llu misses=%llu exp=%llu ref=%llu reason=%s | c: exp=%llu reason=%s\n",
                m->version, m->stateless, (unsigned long long)a.hits, (unsigned long long)a.misses,
                (unsigned long long)a.expirations, (unsigned long long)a.refusals, r[0].reason,
                (unsigned long long)c.expirations, r[2].reason);
    for (i = 0; i < 3; i++) {
        SSL_SESSION_free(r[i].session);
        SSL_SESSION_free(m->session[i]);
    }
    for (i = 0; i < 2; i++) {
        snicache_cache_free(m->cache[i]);
        snicache_config_free(m->config[i]);
        SSL_CTX_free(m->listener[i]);
    }
    for (i = 0; i < 3; i++)
        SSL_CTX_free(m->ctxs[i]);
}

int main(void)
{
    struct timespec wait = {2, 100 * 1000 * 1000};
    snicache_config *config = h_config(names, NULL, 0);

    /* The invalid lifetimes are refused. */
    CHECK(snicache_config_set_timeout(config, 0) == SNICACHE_RESULT_INVALID_PARAMETER);
    CHECK(snicache_config_set_timeout(config, 86401) == SNICACHE_RESULT_INVALID_PARAMETER);
    snicache_config_free(config);
    client = h_client_ctx();
    h_age(setup, &wait, check);
    SSL_CTX_free(client);
    return h_done("expiry");
}
