/* R3/R5: resume only with a cipher suite the server still allows. TLS 1.2 (session ids and
 * tickets): a session made with X is offered after the vhost's cipher list dropped X for Y; it
 * is a full handshake with Y and the refusal `cipher`, where OpenSSL alone resumes it with X
 * (checked on a plain OpenSSL control context). TLS 1.3 (stateful and tickets): a SHA-384
 * session after the only SHA-384 suite was removed is refused as `cipher`; a SHA-256 session
 * whose suite was removed resumes under the remaining SHA-256 suite. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define X "ECDHE-ECDSA-AES128-GCM-SHA256"
#define Y "ECDHE-ECDSA-AES256-GCM-SHA384"
#define AES128 "TLS_AES_128_GCM_SHA256"
#define AES256 "TLS_AES_256_GCM_SHA384"
#define CHACHA "TLS_CHACHA20_POLY1305_SHA256"

static void server_new(struct h_server *s, int stateless)
{
    const char *names[] = {"a.test"};
    h_server_init(s, names, NULL, 1, stateless ? 0 : H_NO_TICKET);
    h_server_start(s, 0);
}

/* The server's enabled ciphers change on every context a connection may use. */
static void set_list(struct h_server *s, const char *list)
{
    CHECK(SSL_CTX_set_cipher_list(s->ctxs[0], list) == 1);
    CHECK(SSL_CTX_set_cipher_list(s->listener, list) == 1);
}

static void set_suites(struct h_server *s, const char *suites)
{
    CHECK(SSL_CTX_set_ciphersuites(s->ctxs[0], suites) == 1);
    CHECK(SSL_CTX_set_ciphersuites(s->listener, suites) == 1);
}

static int is(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

/* Offers `made` (with the rest of `o`) after its cipher was removed: a full handshake with
 * `cipher`, the resumption refused as `cipher`, the server's first such refusal. */
static struct h_result refused_cipher(struct h_server *s, SSL_CTX *client, struct h_opts *o, SSL_SESSION *made,
                                      const char *cipher)
{
    struct h_result r;
    o->offer = made;
    r = h_connect(s->listener, client, o);
    CHECK(r.ok && !r.resumed && is(r.cipher, cipher));
    CHECK(r.info.outcome == SNICACHE_OUTCOME_REFUSED && is(r.reason, "cipher"));
    CHECK(h_refusals(s->cache, "a.test", "cipher") == 1);
    return r;
}

static void tls12(int stateless, SSL_CTX *client)
{
    struct h_server s;
    struct h_opts o;
    struct h_result made, offer, made_y, again_y, ctl_made, ctl_offer;
    SSL_CTX *control = h_server_ctx("control");

    server_new(&s, stateless);
    set_list(&s, X ":" Y);
    o = h_opts_for(TLS1_2_VERSION, "a.test");
    o.cipher_list = X;
    made = h_connect(s.listener, client, &o);
    CHECK(made.ok && !made.resumed && is(made.cipher, X));

    set_list(&s, Y);
    o.cipher_list = X ":" Y;
    offer = refused_cipher(&s, client, &o, made.session, Y);

    /* A session with the allowed cipher still resumes. */
    o.offer = NULL;
    o.cipher_list = Y;
    made_y = h_connect(s.listener, client, &o);
    o.offer = made_y.session;
    o.cipher_list = X ":" Y;
    again_y = h_connect(s.listener, client, &o);
    CHECK(again_y.ok && again_y.resumed && is(again_y.cipher, Y));

    /* Control: OpenSSL's own cache (or tickets) resumes the session with the removed cipher. */
    SSL_CTX_set_session_cache_mode(control, SSL_SESS_CACHE_SERVER);
    SSL_CTX_set_session_id_context(control, (const unsigned char *)"control", 7);
    if (!stateless)
        SSL_CTX_set_options(control, SSL_OP_NO_TICKET);
    CHECK(SSL_CTX_set_cipher_list(control, X ":" Y) == 1);
    o.offer = NULL;
    o.cipher_list = X;
    ctl_made = h_connect(control, client, &o);
    CHECK(SSL_CTX_set_cipher_list(control, Y) == 1);
    o.offer = ctl_made.session;
    o.cipher_list = X ":" Y;
    ctl_offer = h_connect(control, client, &o);
    CHECK(ctl_made.ok && ctl_offer.ok && ctl_offer.resumed && is(ctl_offer.cipher, X));
    if (h_failures)
        fprintf(stderr, "  tls1.2 stateless=%d offer: resumed=%d cipher=%s reason=%s; control resumed=%d cipher=%s\n",
                stateless, offer.resumed, offer.cipher ? offer.cipher : "-", offer.reason, ctl_offer.resumed,
                ctl_offer.cipher ? ctl_offer.cipher : "-");

    SSL_SESSION_free(made.session);
    SSL_SESSION_free(offer.session);
    SSL_SESSION_free(made_y.session);
    SSL_SESSION_free(again_y.session);
    SSL_SESSION_free(ctl_made.session);
    SSL_SESSION_free(ctl_offer.session);
    SSL_CTX_free(control);
    h_server_free(&s);
}

static void tls13(int stateless, SSL_CTX *client)
{
    struct h_server s;
    struct h_opts o;
    struct h_result made384, offer384, made256, offer256;

    server_new(&s, stateless);
    set_suites(&s, AES128 ":" AES256 ":" CHACHA);
    o = h_opts_for(TLS1_3_VERSION, "a.test");

    /* SHA-384 session; then the only SHA-384 suite goes. */
    o.ciphersuites = AES256;
    made384 = h_connect(s.listener, client, &o);
    CHECK(made384.ok && !made384.resumed && is(made384.cipher, AES256));
    set_suites(&s, AES128 ":" CHACHA);
    o.ciphersuites = AES256 ":" AES128;
    offer384 = refused_cipher(&s, client, &o, made384.session, AES128);

    /* SHA-256 session; its suite goes but another SHA-256 suite stays: it resumes. */
    set_suites(&s, AES128 ":" AES256 ":" CHACHA);
    o.ciphersuites = AES128;
    o.offer = NULL;
    made256 = h_connect(s.listener, client, &o);
    CHECK(made256.ok && is(made256.cipher, AES128));
    set_suites(&s, CHACHA);
    o.ciphersuites = AES128 ":" CHACHA;
    o.offer = made256.session;
    offer256 = h_connect(s.listener, client, &o);
    CHECK(offer256.ok && offer256.resumed && is(offer256.cipher, CHACHA));
    CHECK(offer256.info.outcome == SNICACHE_OUTCOME_RESUMED);
    CHECK(h_refusals(s.cache, "a.test", "cipher") == 1);
    if (h_failures)
        fprintf(stderr, "  tls1.3 stateless=%d 384: resumed=%d cipher=%s reason=%s; 256: resumed=%d cipher=%s reason=%s\n",
                stateless, offer384.resumed, offer384.cipher ? offer384.cipher : "-", offer384.reason,
                offer256.resumed, offer256.cipher ? offer256.cipher : "-", offer256.reason);

    SSL_SESSION_free(made384.session);
    SSL_SESSION_free(offer384.session);
    SSL_SESSION_free(made256.session);
    SSL_SESSION_free(offer256.session);
    h_server_free(&s);
}

int main(void)
{
    SSL_CTX *client = h_client_ctx();
    tls12(0, client);
    tls12(1, client);
    tls13(0, client);
    tls13(1, client);
    SSL_CTX_free(client);
    return h_done("cipher");
}
