/* R7 (RFC 7627 §5.3), TLS 1.2 session ids and tickets:
 *   session without EMS, ClientHello with EMS      -> full handshake, refusal `ems`
 *   session with EMS, ClientHello without EMS      -> full handshake, refusal `ems`
 *   neither has EMS                                -> refused by default, resumed on a vhost with
 *                                                     SNICACHE_VHOST_ALLOW_NO_EMS
 *   both have EMS                                  -> resumed
 * Clients drop EMS with SSL_OP_NO_EXTENDED_MASTER_SECRET (OpenSSL 3.0+). */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#ifndef SSL_OP_NO_EXTENDED_MASTER_SECRET
#error "these tests need SSL_OP_NO_EXTENDED_MASTER_SECRET (OpenSSL 3.0 or newer)"
#endif

static SSL_CTX *client;
static SSL_CTX *listener;
static const snicache_cache *cache;

/* Makes a session on `sni` with or without EMS, offers it with or without EMS; returns the
 * offer's result (caller frees its session). */
static struct h_result attempt(const char *sni, int made_ems, int offer_ems)
{
    struct h_opts o;
    struct h_result made, r;
    o = h_opts_for(TLS1_2_VERSION, sni);
    o.client_options = made_ems ? 0 : SSL_OP_NO_EXTENDED_MASTER_SECRET;
    made = h_connect(listener, client, &o);
    CHECK(made.ok && !made.resumed && made.session != NULL);
    CHECK(made.session != NULL && SSL_SESSION_get_protocol_version(made.session) == TLS1_2_VERSION);
    o.offer = made.session;
    o.client_options = offer_ems ? 0 : SSL_OP_NO_EXTENDED_MASTER_SECRET;
    r = h_connect(listener, client, &o);
    CHECK(r.ok);
    SSL_SESSION_free(made.session);
    return r;
}

static int refused_ems(const struct h_result *r)
{
    return !r->resumed && r->info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(r->reason, "ems") == 0;
}

static void scenario(int stateless)
{
    const char *names[] = {"a.test", "noems.test"};
    const uint32_t vhost_flags[] = {0, SNICACHE_VHOST_ALLOW_NO_EMS};
    struct h_server srv;
    struct h_result no_yes, yes_no, no_no, no_no_allowed, yes_yes, yes_yes_allowed;

    h_server_init(&srv, names, vhost_flags, 2, stateless ? 0 : H_NO_TICKET);
    listener = srv.listener;
    cache = h_server_start(&srv, 0);

    no_yes = attempt("a.test", 0, 1);
    CHECK(refused_ems(&no_yes));
    yes_no = attempt("a.test", 1, 0);
    CHECK(refused_ems(&yes_no));
    no_no = attempt("a.test", 0, 0);
    CHECK(refused_ems(&no_no));
    yes_yes = attempt("a.test", 1, 1);
    CHECK(yes_yes.resumed && yes_yes.info.outcome == SNICACHE_OUTCOME_RESUMED);
    CHECK(h_refusals(cache, "a.test", "ems") == 3);

    no_no_allowed = attempt("noems.test", 0, 0);
    CHECK(no_no_allowed.resumed && no_no_allowed.info.outcome == SNICACHE_OUTCOME_RESUMED);
    yes_yes_allowed = attempt("noems.test", 1, 1);
    CHECK(yes_yes_allowed.resumed);
    /* The flag allows only "neither": a mismatch is still refused on that vhost. */
    {
        struct h_result m1 = attempt("noems.test", 0, 1), m2 = attempt("noems.test", 1, 0);
        CHECK(refused_ems(&m1) && refused_ems(&m2));
        CHECK(h_refusals(cache, "noems.test", "ems") == 2);
        SSL_SESSION_free(m1.session);
        SSL_SESSION_free(m2.session);
    }
    CHECK(h_stats(cache, NULL).hits == 3);
    if (h_failures)
        fprintf(stderr, "  stateless=%d no/yes: %d %s, yes/no: %d %s, no/no: %d %s, allowed no/no: %d %s\n", stateless,
                no_yes.resumed, no_yes.reason, yes_no.resumed, yes_no.reason, no_no.resumed, no_no.reason,
                no_no_allowed.resumed, no_no_allowed.reason);

    SSL_SESSION_free(no_yes.session);
    SSL_SESSION_free(yes_no.session);
    SSL_SESSION_free(no_no.session);
    SSL_SESSION_free(yes_yes.session);
    SSL_SESSION_free(no_no_allowed.session);
    SSL_SESSION_free(yes_yes_allowed.session);
    h_server_free(&srv);
}

int main(void)
{
    client = h_client_ctx();
    scenario(0);
    scenario(1);
    SSL_CTX_free(client);
    return h_done("ems");
}
