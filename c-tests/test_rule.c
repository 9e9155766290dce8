/* A host policy rule written in C (snicache_config_add_rule): "max-age" refuses sessions 2 s or
 * older, "no-blocked" refuses sessions made under blocked.test. Their refusals are counted under
 * their names (snicache_cache_refusals), show in snicache_conn_info_get, and reach the log
 * callback (snicache_config_set_log). TLS 1.2 and TLS 1.3, stateful and stateless tickets. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"

struct rule_data {
    unsigned calls;
    unsigned bad_input;
};

static int is_name(const char *s, size_t n, const char *want)
{
    return s != NULL && n == strlen(want) && memcmp(s, want, n) == 0;
}

static int no_blocked(void *userdata, const snicache_rule_input *in)
{
    struct rule_data *d = userdata;
    d->calls++;
    if (in->vhost == NULL || in->vhost_len == 0 || (in->version != 0x0303 && in->version != 0x0304) ||
        in->cipher == 0)
        d->bad_input++;
    return is_name(in->session_sni, in->session_sni_len, "blocked.test");
}

static int max_age(void *userdata, const snicache_rule_input *in)
{
    struct rule_data *d = userdata;
    d->calls++;
    return in->age >= 2; /* 2, not 1: a fresh session may already be 1 s old across a tick */
}

struct log_data {
    char lines[8192];
    size_t used;
    unsigned count;
};

static void log_line(void *userdata, snicache_log_level level, const char *msg, size_t len)
{
    struct log_data *l = userdata;
    (void)level;
    l->count++;
    if (l->used + len + 2 < sizeof l->lines) {
        memcpy(l->lines + l->used, msg, len);
        l->used += len;
        l->lines[l->used++] = '\n';
        l->lines[l->used] = '\0';
    }
}

struct mode {
    int version, stateless;
    SSL_CTX *ctxs[2], *listener;
    snicache_config *config;
    const snicache_cache *cache;
    struct rule_data blocked, age;
    struct log_data log;
    SSL_SESSION *old;
};

static const char *names[] = {"a.test", "blocked.test"};

static void setup(struct mode *m, SSL_CTX *client)
{
    struct h_opts o;
    struct h_result r, again;
    int i;

    for (i = 0; i < 2; i++)
        m->ctxs[i] = h_server_ctx(names[i]);
    m->listener = h_server_ctx("listener");
    if (!m->stateless) {
        SSL_CTX_set_options(m->listener, SSL_OP_NO_TICKET);
        for (i = 0; i < 2; i++)
            SSL_CTX_set_options(m->ctxs[i], SSL_OP_NO_TICKET);
    }
    m->config = h_config(names, m->ctxs, 2);
    CHECK_OK(snicache_config_add_rule(m->config, "no-blocked", no_blocked, &m->blocked));
    CHECK_OK(snicache_config_add_rule(m->config, "max-age", max_age, &m->age));
    CHECK_OK(snicache_config_set_log(m->config, log_line, &m->log, SNICACHE_LOG_LEVEL_INFO));
    CHECK_OK(snicache_cache_new(m->config, &m->cache));
    CHECK_OK(snicache_cache_attach(m->cache, m->listener, 0));

    memset(&o, 0, sizeof o);
    o.version = m->version;
    /* blocked.test: refused by no-blocked, whatever the age. */
    o.sni = "blocked.test";
    r = h_connect(m->listener, client, &o);
    CHECK(r.ok && !r.resumed);
    o.offer = r.session;
    again = h_connect(m->listener, client, &o);
    CHECK(again.ok && !again.resumed);
    CHECK(again.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(again.reason, "no-blocked") == 0);
    CHECK(h_refusals(m->cache, "blocked.test", "no-blocked") == 1);
    CHECK(strstr(m->log.lines, "resumption refused (no-blocked)") != NULL);
    SSL_SESSION_free(r.session);
    SSL_SESSION_free(again.session);

    /* a.test: a young session passes both rules and resumes; kept to be offered when old. */
    o.sni = "a.test";
    o.offer = NULL;
    r = h_connect(m->listener, client, &o);
    o.offer = r.session;
    again = h_connect(m->listener, client, &o);
    CHECK(again.ok && again.resumed);
    m->old = r.session;
    SSL_SESSION_free(again.session);
}

static void check_old(struct mode *m, SSL_CTX *client)
{
    struct h_opts o;
    struct h_result r;
    int i;

    memset(&o, 0, sizeof o);
    o.version = m->version;
    o.sni = "a.test";
    o.offer = m->old;
    r = h_connect(m->listener, client, &o);
    CHECK(r.ok && !r.resumed);
    CHECK(r.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(r.reason, "max-age") == 0);
    CHECK(h_refusals(m->cache, "a.test", "max-age") == 1);
    CHECK(h_refusals(m->cache, NULL, "max-age") == 1 && h_refusals(m->cache, NULL, "no-blocked") == 1);
    CHECK(h_stats(m->cache, NULL).refusals == 2);
    CHECK(strstr(m->log.lines, "resumption refused (max-age)") != NULL);
    CHECK(m->blocked.calls >= 3 && m->blocked.bad_input == 0 && m->age.calls >= 2);
    if (h_failures)
        fprintf(stderr, "  v=%x stateless=%d reason=%s log:\n%s", m->version, m->stateless, r.reason, m->log.lines);

    SSL_SESSION_free(r.session);
    SSL_SESSION_free(m->old);
    snicache_cache_free(m->cache);
    snicache_config_free(m->config);
    SSL_CTX_free(m->listener);
    for (i = 0; i < 2; i++)
        SSL_CTX_free(m->ctxs[i]);
}

int main(void)
{
    struct mode modes[4];
    struct timespec wait = {3, 0};
    SSL_CTX *client = h_client_ctx();
    int i;

    memset(modes, 0, sizeof modes);
    for (i = 0; i < 4; i++) {
        modes[i].version = i < 2 ? TLS1_2_VERSION : TLS1_3_VERSION;
        modes[i].stateless = i % 2;
        setup(&modes[i], client);
    }
    nanosleep(&wait, NULL);
    for (i = 0; i < 4; i++)
        check_old(&modes[i], client);
    SSL_CTX_free(client);
    return h_done("rule");
}
