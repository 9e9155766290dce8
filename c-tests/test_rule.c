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
    struct h_server srv;
    struct rule_data blocked, age;
    struct log_data log;
    SSL_SESSION *old;
};

static const char *names[] = {"a.test", "blocked.test"};

static struct mode modes[H_MODES];
static SSL_CTX *client;

static void setup(int mode, int version, int stateless)
{
    struct mode *m = &modes[mode];
    struct h_opts o;
    struct h_result r, again;

    m->version = version;
    m->stateless = stateless;
    h_server_init(&m->srv, names, NULL, 2, m->stateless ? 0 : H_NO_TICKET);
    CHECK_OK(snicache_config_add_rule(m->srv.config, "no-blocked", no_blocked, &m->blocked));
    CHECK_OK(snicache_config_add_rule(m->srv.config, "max-age", max_age, &m->age));
    CHECK_OK(snicache_config_set_log(m->srv.config, log_line, &m->log, SNICACHE_LOG_LEVEL_INFO));
    h_server_start(&m->srv, 0);

    o = h_opts_for(m->version, NULL);
    /* blocked.test: refused by no-blocked, whatever the age. */
    o.sni = "blocked.test";
    r = h_connect(m->srv.listener, client, &o);
    CHECK(r.ok && !r.resumed);
    o.offer = r.session;
    again = h_connect(m->srv.listener, client, &o);
    CHECK(again.ok && !again.resumed);
    CHECK(again.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(again.reason, "no-blocked") == 0);
    CHECK(h_refusals(m->srv.cache, "blocked.test", "no-blocked") == 1);
    CHECK(strstr(m->log.lines, "resumption refused (no-blocked)") != NULL);
    SSL_SESSION_free(r.session);
    SSL_SESSION_free(again.session);

    /* a.test: a young session passes both rules and resumes; kept to be offered when old. */
    o.sni = "a.test";
    o.offer = NULL;
    r = h_connect(m->srv.listener, client, &o);
    o.offer = r.session;
    again = h_connect(m->srv.listener, client, &o);
    CHECK(again.ok && again.resumed);
    m->old = r.session;
    SSL_SESSION_free(again.session);
}

static void check_old(int mode)
{
    struct mode *m = &modes[mode];
    struct h_opts o;
    struct h_result r;

    o = h_opts_for(m->version, "a.test");
    o.offer = m->old;
    r = h_connect(m->srv.listener, client, &o);
    CHECK(r.ok && !r.resumed);
    CHECK(r.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(r.reason, "max-age") == 0);
    CHECK(h_refusals(m->srv.cache, "a.test", "max-age") == 1);
    CHECK(h_refusals(m->srv.cache, NULL, "max-age") == 1 && h_refusals(m->srv.cache, NULL, "no-blocked") == 1);
    CHECK(h_stats(m->srv.cache, NULL).refusals == 2);
    CHECK(strstr(m->log.lines, "resumption refused (max-age)") != NULL);
    CHECK(m->blocked.calls >= 3 && m->blocked.bad_input == 0 && m->age.calls >= 2);
    if (h_failures)
        fprintf(stderr, "  v=%x stateless=%d reason=%s log:\n%s", m->version, m->stateless, r.reason, m->log.lines);

    SSL_SESSION_free(r.session);
    SSL_SESSION_free(m->old);
    h_server_free(&m->srv);
}

int main(void)
{
    struct timespec wait = {3, 0};

    client = h_client_ctx();
    h_age(setup, &wait, check_old);
    SSL_CTX_free(client);
    return h_done("rule");
}
