/* SNI from the wire. A ClientHello whose server_name extension is malformed (a NUL in the name,
 * an empty name, over 255 bytes, not a DNS name, lengths that do not add up, another name
 * type) gets a fatal illegal_parameter alert (47) and no crash. OpenSSL's client will not send
 * these, so the client's first flight is captured from its write BIO and its server_name
 * extension rewritten (fixing the extension, extensions-block, handshake and record lengths).
 * Strict SNI (R11): an unknown name gets a fatal unrecognized_name alert (112); without strict
 * SNI it is served by the default vhost. TLS 1.2 and TLS 1.3 ClientHellos. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define AD_ILLEGAL_PARAMETER 47
#define AD_UNRECOGNIZED_NAME 112
#define MAXREC 17000

/* The client's first flight: one ClientHello record. */
static size_t client_hello(SSL_CTX *cctx, int version, unsigned char *out)
{
    SSL *c = SSL_new(cctx);
    BIO *in = BIO_new(BIO_s_mem()), *wr = BIO_new(BIO_s_mem());
    int n;
    SSL_set_bio(c, in, wr);
    SSL_set_connect_state(c);
    SSL_set_min_proto_version(c, version);
    SSL_set_max_proto_version(c, version);
    SSL_set_tlsext_host_name(c, "placeholder.test");
    SSL_do_handshake(c);
    n = BIO_read(wr, out, MAXREC);
    SSL_free(c);
    return n > 0 ? (size_t)n : 0;
}

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void put16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

/* Replaces the server_name extension's body in the ClientHello record `rec` (length `len`)
 * with `body`; returns the new record length, 0 when the record cannot be parsed. */
static size_t rewrite_sni(const unsigned char *rec, size_t len, const unsigned char *body, size_t body_len,
                          unsigned char *out)
{
    size_t p = 5 + 4 + 2 + 32, ext_start, ext_end, old_len, delta_pos;
    long delta;
    size_t hs_len;
    if (len < p + 1 || rec[0] != 22 || rec[5] != 1)
        return 0;
    p += 1 + rec[p];              /* session id */
    p += 2 + get16(rec + p);      /* cipher suites */
    p += 1 + rec[p];              /* compression methods */
    delta_pos = p;                /* extensions block length */
    ext_start = p + 2;
    ext_end = ext_start + get16(rec + p);
    if (ext_end != len)
        return 0;
    for (p = ext_start; p + 4 <= ext_end; p += 4 + get16(rec + p + 2)) {
        if (get16(rec + p) != 0)
            continue;
        old_len = get16(rec + p + 2);
        delta = (long)body_len - (long)old_len;
        memcpy(out, rec, p + 2);
        put16(out + p + 2, body_len);
        memcpy(out + p + 4, body, body_len);
        memcpy(out + p + 4 + body_len, rec + p + 4 + old_len, len - (p + 4 + old_len));
        put16(out + delta_pos, (size_t)((long)get16(rec + delta_pos) + delta));
        hs_len = ((size_t)rec[6] << 16 | (size_t)rec[7] << 8 | rec[8]) + (size_t)delta;
        out[6] = (unsigned char)(hs_len >> 16);
        out[7] = (unsigned char)(hs_len >> 8);
        out[8] = (unsigned char)hs_len;
        put16(out + 3, (size_t)((long)get16(rec + 3) + delta));
        return (size_t)((long)len + delta);
    }
    return 0;
}

/* A server_name body: list length, name type, name length, name. `list_adj` and `name_adj`
 * skew the two length fields. */
static size_t sni_body(unsigned char *b, const char *name, size_t n, int type, int list_adj, int name_adj)
{
    put16(b, (size_t)((long)n + 3 + list_adj));
    b[2] = (unsigned char)type;
    put16(b + 3, (size_t)((long)n + name_adj));
    memcpy(b + 5, name, n);
    return n + 5;
}

struct reply {
    int type;  /* content type of the server's first record, -1 none */
    int level; /* alert level and description when type is 21 */
    int desc;
    char vhost[64];
};

static struct reply feed(SSL_CTX *listener, const unsigned char *rec, size_t len)
{
    struct reply r = {-1, -1, -1, ""};
    SSL *s = SSL_new(listener);
    BIO *in = BIO_new(BIO_s_mem()), *wr = BIO_new(BIO_s_mem());
    unsigned char out[MAXREC];
    snicache_conn_info info;
    int n;
    SSL_set_bio(s, in, wr);
    SSL_set_accept_state(s);
    BIO_write(in, rec, (int)len);
    SSL_do_handshake(s);
    n = BIO_read(wr, out, sizeof out);
    if (n >= 5) {
        r.type = out[0];
        if (r.type == 21 && n >= 7) {
            r.level = out[5];
            r.desc = out[6];
        }
    }
    if (snicache_conn_info_get(s, &info) == SNICACHE_RESULT_OK)
        snprintf(r.vhost, sizeof r.vhost, "%.*s", (int)info.vhost_len, info.vhost);
    SSL_free(s);
    return r;
}

static unsigned long long json_counter(const snicache_cache *cache, const char *key)
{
    char json[8192], *p;
    size_t len;
    unsigned long long v = 0;
    CHECK_OK(snicache_cache_stats_json(cache, json, sizeof json, &len));
    p = strstr(json, key);
    if (p == NULL || sscanf(p + strlen(key), "%llu", &v) != 1)
        CHECK(!"counter missing from the stats JSON");
    return v;
}

static int malformed_cases(SSL_CTX *listener, SSL_CTX *cctx, int version)
{
    static unsigned char rec[MAXREC], out[MAXREC];
    unsigned char body[600];
    char longname[300];
    size_t len = client_hello(cctx, version, rec), n, blen;
    struct reply r;
    int i, cases = 0;
    struct {
        const char *what, *name;
        size_t n;
        int type, list_adj, name_adj;
    } bad[] = {
        {"NUL in name", "a\0b.test", 8, 0, 0, 0},
        {"empty name", "", 0, 0, 0, 0},
        {"over 255 bytes", NULL, 256, 0, 0, 0},
        {"space", "bad name.test", 13, 0, 0, 0},
        {"empty label", "a..b.test", 9, 0, 0, 0},
        {"trailing dot", "a.test.", 7, 0, 0, 0},
        {"name length too long", "a.test", 6, 0, 0, 1},
        {"name length too short", "a.test", 6, 0, 0, -1},
        {"list length off", "a.test", 6, 0, 1, 0},
        {"name type 1", "a.test", 6, 1, 0, 0},
    };

    CHECK(len > 0);
    /* 256 bytes of labels: valid except for the total length. */
    for (i = 0; i < 256; i++)
        longname[i] = (i % 50 == 49) ? '.' : 'a';
    bad[2].name = longname;

    /* The rewriter itself: a well-formed replacement is served (by its vhost). */
    blen = sni_body(body, "b.test", 6, 0, 0, 0);
    n = rewrite_sni(rec, len, body, blen, out);
    CHECK(n == len - 10);
    r = feed(listener, out, n);
    CHECK(r.type == 22 && strcmp(r.vhost, "b.test") == 0);

    for (i = 0; i < (int)(sizeof bad / sizeof *bad); i++) {
        blen = sni_body(body, bad[i].name, bad[i].n, bad[i].type, bad[i].list_adj, bad[i].name_adj);
        n = rewrite_sni(rec, len, body, blen, out);
        CHECK(n > 0);
        r = feed(listener, out, n);
        if (r.type != 21 || r.level != 2 || r.desc != AD_ILLEGAL_PARAMETER) {
            fprintf(stderr, "  v=%x %s: reply type %d level %d desc %d\n", version, bad[i].what, r.type, r.level,
                    r.desc);
            h_failures++;
        }
        cases++;
    }
    return cases;
}

int main(void)
{
    const char *names[] = {"a.test", "b.test"};
    struct h_server srv, strict_srv;
    SSL_CTX *listener, *strict_listener, *client = h_client_ctx();
    const snicache_cache *cache, *strict;
    struct h_opts o;
    struct h_result r;
    int versions[2] = {TLS1_2_VERSION, TLS1_3_VERSION};
    int v, cases = 0;

    h_server_init(&srv, names, NULL, 2, 0);
    listener = srv.listener;
    cache = h_server_start(&srv, 0);
    h_server_init(&strict_srv, names, NULL, 2, 0);
    strict_listener = strict_srv.listener;
    CHECK_OK(snicache_config_set_strict_sni(strict_srv.config, true));
    strict = h_server_start(&strict_srv, 0);

    for (v = 0; v < 2; v++)
        cases += malformed_cases(listener, client, versions[v]);
    CHECK(json_counter(cache, "\"malformed_sni\":") == (unsigned long long)cases);

    memset(&o, 0, sizeof o);
    for (v = 0; v < 2; v++) {
        o.version = versions[v];
        /* Strict: an unknown name is refused with unrecognized_name ... */
        o.sni = "unknown.test";
        r = h_connect(strict_listener, client, &o);
        CHECK(!r.ok && r.alert == AD_UNRECOGNIZED_NAME);
        SSL_SESSION_free(r.session);
        /* ... a known one is served, and no SNI goes to the default vhost. */
        o.sni = "b.test";
        r = h_connect(strict_listener, client, &o);
        CHECK(r.ok && strcmp(r.vhost, "b.test") == 0);
        SSL_SESSION_free(r.session);
        o.sni = NULL;
        r = h_connect(strict_listener, client, &o);
        CHECK(r.ok && strcmp(r.vhost, "a.test") == 0);
        SSL_SESSION_free(r.session);
        /* Not strict: the unknown name is served by the default vhost. */
        o.sni = "unknown.test";
        r = h_connect(listener, client, &o);
        CHECK(r.ok && r.alert == -1 && strcmp(r.vhost, "a.test") == 0);
        SSL_SESSION_free(r.session);
    }
    /* Counted whether refused (strict) or served by the default vhost. */
    CHECK(json_counter(strict, "\"unknown_sni\":") == 2);
    CHECK(json_counter(cache, "\"unknown_sni\":") == 2);

    h_server_free(&srv);
    h_server_free(&strict_srv);
    SSL_CTX_free(client);
    return h_done("sni");
}
