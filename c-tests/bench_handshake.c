/* Handshake benchmark: resumed TLS 1.2 handshakes per second in one process, client and server
 * talking through memory BIOs, with
 *   internal   OpenSSL's own server session cache (session ids, SSL_OP_NO_TICKET)
 *   snicache   snicache_cache_attach on the same kind of context (one vhost)
 *   decode     a minimal C external cache that keeps i2d_SSL_SESSION bytes and runs
 *              d2i_SSL_SESSION on every hit (what snicache avoids by keeping the session)
 *   internal+sni / snicache-2vh   the same with two name-based vhosts: an nginx-style
 *              servername callback switching SSL_CTX over the internal cache, against snicache
 *              routing two vhosts from a separate listener context
 *   snicache+redis   with SNICACHE_BENCH_REDIS=redis://HOST:PORT set: snicache with the Redis
 *              store (memory tier in front, sessions also written to Redis), against snicache
 *   snicache+shm     snicache with the shared-memory store (shm:64m), against snicache
 * and full TLS 1.2 handshakes for scale. Rounds interleave the variants (rotating the order)
 * so drifting machine load hits all of them alike; each figure is the median over rounds, and
 * each ratio the median of the per-round ratios. Every counted resumed handshake is checked
 * with SSL_session_reused on both sides; one that did not resume aborts the run.
 *
 * Prints figures only; never a pass/fail test.
 *   bench_handshake [-t threads] [-r rounds] [-n handshakes per round] [-q] [-v variant]
 * -v runs only the named variant and prints each round, e.g. to count instructions with
 *   valgrind --tool=callgrind --toggle-collect=run_job bench_handshake -r 1 -v snicache */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snicache.h"
#include "snicache_ssl.h"

#define MAX_THREADS 8
#define MAX_VARIANTS 12

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_handshake: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(2);
}

static SSL_CTX *server_ctx(const char *cn)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    X509_NAME *name;
    if (ctx == NULL || key == NULL || cert == NULL)
        die("server context");
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1)
        die("certificate");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)cn, (unsigned int)strlen(cn));
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

/* A cache with one vhost, a.test, served by the listener context `ctx` it is attached to; on
 * `store` (NULL: the default memory store), sealing Redis records with the 32-byte `seal` (or
 * NULL). Dies with `what` when it cannot be made. */
static const snicache_cache *one_vhost(const snicache_ssl_api *api, SSL_CTX *ctx, const char *store,
                                       const uint8_t *seal, snicache_config **config, const char *what)
{
    const snicache_cache *cache = NULL;
    if (snicache_config_new(api, config) != SNICACHE_RESULT_OK
        || (store != NULL && snicache_config_set_store(*config, store) != SNICACHE_RESULT_OK)
        || (seal != NULL && snicache_config_set_seal_key(*config, seal, 32) != SNICACHE_RESULT_OK)
        || snicache_config_add_vhost(*config, "a.test", ctx, 0, SNICACHE_VHOST_DEFAULT) != SNICACHE_RESULT_OK
        || snicache_cache_new(*config, &cache) != SNICACHE_RESULT_OK
        || snicache_cache_attach(cache, ctx, 0) != SNICACHE_RESULT_OK)
        die(what);
    return cache;
}

/* ---- The decode-every-hit external cache: a few slots of (id, DER) under one lock. ---- */

#define DEC_SLOTS 64
static struct {
    unsigned int id_len;
    unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
    unsigned char *der;
    int der_len;
} dec_slot[DEC_SLOTS];
static int dec_next;
static pthread_mutex_t dec_lock = PTHREAD_MUTEX_INITIALIZER;

static int dec_new(SSL *ssl, SSL_SESSION *sess)
{
    unsigned int id_len;
    const unsigned char *id = SSL_SESSION_get_id(sess, &id_len);
    int n = i2d_SSL_SESSION(sess, NULL);
    unsigned char *der, *p;
    (void)ssl;
    if (n <= 0 || (der = malloc((size_t)n)) == NULL)
        return 0;
    p = der;
    i2d_SSL_SESSION(sess, &p);
    pthread_mutex_lock(&dec_lock);
    free(dec_slot[dec_next].der);
    dec_slot[dec_next].id_len = id_len;
    memcpy(dec_slot[dec_next].id, id, id_len);
    dec_slot[dec_next].der = der;
    dec_slot[dec_next].der_len = n;
    dec_next = (dec_next + 1) % DEC_SLOTS;
    pthread_mutex_unlock(&dec_lock);
    return 0;
}

static SSL_SESSION *dec_get(SSL *ssl, const unsigned char *id, int id_len, int *copy)
{
    unsigned char der[4096];
    const unsigned char *p = der;
    int i, n = 0;
    (void)ssl;
    pthread_mutex_lock(&dec_lock);
    for (i = 0; i < DEC_SLOTS; i++) {
        if (dec_slot[i].der != NULL && dec_slot[i].id_len == (unsigned int)id_len
            && memcmp(dec_slot[i].id, id, (size_t)id_len) == 0 && dec_slot[i].der_len <= (int)sizeof der) {
            n = dec_slot[i].der_len;
            memcpy(der, dec_slot[i].der, (size_t)n);
            break;
        }
    }
    pthread_mutex_unlock(&dec_lock);
    *copy = 0;
    return n > 0 ? d2i_SSL_SESSION(NULL, &p, n) : NULL;
}

static void dec_free_all(void)
{
    int i;
    for (i = 0; i < DEC_SLOTS; i++) {
        free(dec_slot[i].der);
        dec_slot[i].der = NULL;
    }
}

/* ---- nginx-style SNI switching over the internal cache. ---- */

static SSL_CTX *sni_ctx[2];
static const char *const sni_name[2] = {"a.test", "b.test"};

static int sni_switch(SSL *ssl, int *alert, void *arg)
{
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    int i;
    (void)alert;
    (void)arg;
    for (i = 0; name != NULL && i < 2; i++) {
        if (strcmp(name, sni_name[i]) == 0) {
            if (SSL_get_SSL_CTX(ssl) != sni_ctx[i])
                SSL_set_SSL_CTX(ssl, sni_ctx[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ---- One connection. ---- */

static void pump(BIO *from, BIO *to)
{
    char buf[16384];
    int n;
    while ((n = BIO_read(from, buf, sizeof buf)) > 0)
        BIO_write(to, buf, n);
}

static int fatal(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);
    return rc <= 0 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE;
}

/* Handshake, then close_notify both ways so the session stays resumable. Returns 1 when the
 * handshake completed and resumed as `want_resumed` says; `*out` gets the client's session. */
static int connect_once(SSL_CTX *listener, SSL_CTX *cctx, const char *sni, SSL_SESSION *offer, int want_resumed,
                        SSL_SESSION **out)
{
    SSL *c = SSL_new(cctx), *s = SSL_new(listener);
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
    int i, a = 0, b = 0, ok;

    SSL_set_bio(c, c_in, c_out);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    SSL_set_tlsext_host_name(c, sni);
    if (offer != NULL)
        SSL_set_session(c, offer);
    for (i = 0; i < 20; i++) {
        int dead = 0;
        if (a != 1) {
            a = SSL_do_handshake(c);
            dead |= fatal(c, a);
        }
        pump(c_out, s_in);
        if (b != 1) {
            b = SSL_do_handshake(s);
            dead |= fatal(s, b);
        }
        pump(s_out, c_in);
        if ((a == 1 && b == 1) || dead)
            break;
    }
    ok = a == 1 && b == 1 && SSL_session_reused(s) == want_resumed && SSL_session_reused(c) == want_resumed;
    if (ok) {
        SSL_shutdown(c);
        pump(c_out, s_in);
        SSL_shutdown(s);
        SSL_shutdown(s);
        pump(s_out, c_in);
        SSL_shutdown(c);
    }
    if (out != NULL)
        *out = SSL_get1_session(c);
    SSL_free(c);
    SSL_free(s);
    return ok;
}

/* ---- Variants, rounds, threads. ---- */

struct variant {
    const char *name;
    SSL_CTX *listener;
    const char *sni[2];         /* connections alternate between these names */
    int resumed;                /* offer a session (1) or make full handshakes (0) */
    int per_round;              /* handshakes per thread per round */
    SSL_SESSION *offer[MAX_THREADS][2];
    const snicache_cache *cache; /* to cross-check hits */
    double rate[64];            /* handshakes/s per round (all threads) */
};

static struct variant variants[MAX_VARIANTS];
static int n_variants;
static SSL_CTX *client_ctx;
static int n_threads = 1;

struct job {
    struct variant *v;
    int thread;
    int failures;
    pthread_barrier_t *start;
    uint64_t elapsed;
};

static void *run_job(void *arg)
{
    struct job *j = arg;
    struct variant *v = j->v;
    uint64_t t0;
    int i;
    pthread_barrier_wait(j->start);
    t0 = now_ns();
    for (i = 0; i < v->per_round; i++) {
        int k = i & 1;
        SSL_SESSION *offer = v->resumed ? v->offer[j->thread][k] : NULL;
        if (!connect_once(v->listener, client_ctx, v->sni[k], offer, v->resumed, NULL))
            j->failures++;
    }
    j->elapsed = now_ns() - t0;
    return NULL;
}

/* Runs one round of a variant on every thread; returns handshakes/s over all threads. */
static double round_of(struct variant *v)
{
    pthread_t tid[MAX_THREADS];
    struct job jobs[MAX_THREADS];
    pthread_barrier_t start;
    uint64_t slowest = 0;
    int t;
    pthread_barrier_init(&start, NULL, (unsigned)n_threads);
    for (t = 0; t < n_threads; t++) {
        jobs[t] = (struct job){v, t, 0, &start, 0};
        if (n_threads == 1)
            run_job(&jobs[t]);
        else if (pthread_create(&tid[t], NULL, run_job, &jobs[t]) != 0)
            die("pthread_create");
    }
    for (t = 0; t < n_threads; t++) {
        if (n_threads > 1)
            pthread_join(tid[t], NULL);
        if (jobs[t].failures) {
            fprintf(stderr, "bench_handshake: %s: %d handshake(s) failed or did not %s\n", v->name, jobs[t].failures,
                    v->resumed ? "resume" : "run in full");
            exit(1);
        }
        if (jobs[t].elapsed > slowest)
            slowest = jobs[t].elapsed;
    }
    pthread_barrier_destroy(&start);
    return (double)v->per_round * n_threads * 1e9 / (double)slowest;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *xs, int n)
{
    double tmp[64];
    memcpy(tmp, xs, sizeof(double) * (size_t)n);
    qsort(tmp, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* A connection that ends with a fatal alert after a full handshake: the server cannot
 * authenticate the client's first record. With snicache's tickets, the ticket it was issued is
 * revoked, so the revocation set the ticket checks consult is not empty. */
static void alert_once(SSL_CTX *listener)
{
    SSL *c = SSL_new(client_ctx), *s = SSL_new(listener);
    BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
    BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
    char buf[16384];
    int i, a = 0, b = 0, n;

    SSL_set_bio(c, c_in, c_out);
    SSL_set_bio(s, s_in, s_out);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    SSL_set_tlsext_host_name(c, "a.test");
    for (i = 0; i < 20 && !(a == 1 && b == 1); i++) {
        if (a != 1)
            a = SSL_do_handshake(c);
        pump(c_out, s_in);
        if (b != 1)
            b = SSL_do_handshake(s);
        pump(s_out, c_in);
    }
    SSL_write(c, "x", 1);
    while ((n = BIO_read(c_out, buf, sizeof buf)) > 0) {
        buf[n - 1] ^= 0x5a;
        BIO_write(s_in, buf, n);
    }
    if (a != 1 || b != 1 || SSL_read(s, buf, 1) > 0)
        die("alert_once");
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
}

static struct variant *add(const char *name, SSL_CTX *listener, const char *sni0, const char *sni1, int resumed,
                           int per_round)
{
    struct variant *v;
    int t, k;
    if (n_variants == MAX_VARIANTS)
        die("too many variants");
    v = &variants[n_variants++];
    v->name = name;
    v->listener = listener;
    v->sni[0] = sni0;
    v->sni[1] = sni1;
    v->resumed = resumed;
    v->per_round = per_round;
    for (t = 0; resumed && t < n_threads; t++)
        for (k = 0; k < 2; k++)
            if (!connect_once(listener, client_ctx, v->sni[k], NULL, 0, &v->offer[t][k]) || v->offer[t][k] == NULL)
                die(name);
    return v;
}

static double ratio(const struct variant *a, const struct variant *b, int rounds)
{
    double r[64];
    int i;
    for (i = 0; i < rounds; i++)
        r[i] = a->rate[i] / b->rate[i];
    return median(r, rounds);
}

int main(int argc, char **argv)
{
    int rounds = 15, per_round = 2000, quick = 0, opt, i, r;
    const char *only = NULL;
    snicache_ssl_api api;
    snicache_config *config1 = NULL, *config2 = NULL;
    const snicache_cache *cache1 = NULL, *cache2 = NULL;
    SSL_CTX *internal, *snic, *decode, *full, *sni_listener, *snic_listener, *snic_vh[2];
    struct variant *v_int, *v_snic, *v_dec, *v_full, *v_isni, *v_s2, *v_redis = NULL, *v_itk, *v_stk;
    snicache_config *config4 = NULL;
    const snicache_cache *cache4 = NULL;
    SSL_CTX *internal_tk, *snic_tk;
    const char *redis_url = getenv("SNICACHE_BENCH_REDIS");
    snicache_config *config3 = NULL;
    const snicache_cache *cache3 = NULL;
    SSL_CTX *snic_redis = NULL;
    struct variant *v_shm;
    snicache_config *config5 = NULL;
    const snicache_cache *cache5 = NULL;
    SSL_CTX *snic_shm;

    while ((opt = getopt(argc, argv, "t:r:n:qv:")) != -1) {
        switch (opt) {
        case 't': n_threads = atoi(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'n': per_round = atoi(optarg); break;
        case 'q': quick = 1; break;
        case 'v': only = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-t threads] [-r rounds] [-n handshakes per round] [-q] [-v variant]\n", argv[0]);
            return 2;
        }
    }
    if (quick) {
        rounds = 5;
        per_round = 500;
    }
    if (n_threads < 1 || n_threads > MAX_THREADS || rounds < 1 || rounds > 64 || per_round < 2)
        die("bad arguments");

    client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(client_ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_min_proto_version(client_ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(client_ctx, TLS1_2_VERSION);

    /* (a) OpenSSL's internal cache, default server mode. */
    internal = server_ctx("a.test");

    /* (b) snicache, one vhost served by the listener context itself. */
    snic = server_ctx("a.test");
    snicache_ssl_api_init(&api);
    cache1 = one_vhost(&api, snic, NULL, NULL, &config1, "snicache setup (one vhost)");

    /* (c) decode on every hit. */
    decode = server_ctx("a.test");
    SSL_CTX_set_session_cache_mode(decode, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_sess_set_new_cb(decode, dec_new);
    SSL_CTX_sess_set_get_cb(decode, dec_get);

    /* Two vhosts: internal cache with nginx-style switching, and snicache routing. */
    sni_listener = server_ctx("listener");
    sni_ctx[0] = server_ctx("a.test");
    sni_ctx[1] = server_ctx("b.test");
    SSL_CTX_set_tlsext_servername_callback(sni_listener, sni_switch);
    snic_listener = server_ctx("listener");
    snic_vh[0] = server_ctx("a.test");
    snic_vh[1] = server_ctx("b.test");
    if (snicache_config_new(&api, &config2) != SNICACHE_RESULT_OK
        || snicache_config_add_vhost(config2, "a.test", snic_vh[0], 0, SNICACHE_VHOST_DEFAULT) != SNICACHE_RESULT_OK
        || snicache_config_add_vhost(config2, "b.test", snic_vh[1], 0, 0) != SNICACHE_RESULT_OK
        || snicache_cache_new(config2, &cache2) != SNICACHE_RESULT_OK
        || snicache_cache_attach(cache2, snic_listener, 0) != SNICACHE_RESULT_OK)
        die("snicache setup (two vhosts)");

    full = server_ctx("a.test");

    /* Stateless tickets: OpenSSL's own ticket keys against snicache's (per-vhost keys, the
     * policy and the revocation check on every ticket, with 64 tickets revoked beforehand). */
    internal_tk = server_ctx("a.test");
    SSL_CTX_clear_options(internal_tk, SSL_OP_NO_TICKET);
    snic_tk = server_ctx("a.test");
    SSL_CTX_clear_options(snic_tk, SSL_OP_NO_TICKET);
    cache4 = one_vhost(&api, snic_tk, NULL, NULL, &config4, "snicache setup (tickets)");
    for (i = 0; i < 64; i++)
        alert_once(snic_tk);
    {
        snicache_stats st;
        if (snicache_cache_stats(cache4, NULL, &st) != SNICACHE_RESULT_OK)
            die("snicache_cache_stats");
        /* scripts/bench-compare.sh also builds this against libraries older than revocation. */
        if (st.invalidations != 64)
            fprintf(stderr, "bench_handshake: %llu of 64 tickets revoked (no ticket revocation in this library?)\n",
                    (unsigned long long)st.invalidations);
    }

    v_int = add("internal", internal, "a.test", "a.test", 1, per_round);
    v_snic = add("snicache", snic, "a.test", "a.test", 1, per_round);
    v_snic->cache = cache1;
    v_dec = add("decode-every-hit", decode, "a.test", "a.test", 1, per_round);
    v_isni = add("internal+sni (2 vhosts)", sni_listener, "a.test", "b.test", 1, per_round);
    v_s2 = add("snicache (2 vhosts)", snic_listener, "a.test", "b.test", 1, per_round);
    v_s2->cache = cache2;
    if (redis_url != NULL) {
        static const uint8_t seal_key[32] = {1};
        snic_redis = server_ctx("a.test");
        cache3 = one_vhost(&api, snic_redis, redis_url, seal_key, &config3, "snicache setup (redis store)");
        v_redis = add("snicache+redis", snic_redis, "a.test", "a.test", 1, per_round);
        v_redis->cache = cache3;
    }
    snic_shm = server_ctx("a.test");
    cache5 = one_vhost(&api, snic_shm, "shm:64m", NULL, &config5, "snicache setup (shm store)");
    v_shm = add("snicache+shm", snic_shm, "a.test", "a.test", 1, per_round);
    v_shm->cache = cache5;
    v_itk = add("internal tickets", internal_tk, "a.test", "a.test", 1, per_round);
    v_stk = add("snicache tickets (revocation check)", snic_tk, "a.test", "a.test", 1, per_round);
    v_stk->cache = cache4;
    v_full = add("full handshake (internal)", full, "a.test", "a.test", 0, per_round / 8 < 2 ? 2 : per_round / 8);

    if (only != NULL) {
        for (i = 0; i < n_variants && strcmp(variants[i].name, only) != 0; i++)
            ;
        if (i == n_variants)
            die("no such variant");
        for (r = 0; r < rounds; r++)
            printf("%s: %.0f handshakes/s\n", only, round_of(&variants[i]));
        return 0;
    }
    for (i = 0; i < n_variants; i++) /* warm-up */
        round_of(&variants[i]);
    for (r = 0; r < rounds; r++)
        for (i = 0; i < n_variants; i++) {
            struct variant *v = &variants[(r + i) % n_variants];
            v->rate[r] = round_of(v);
        }

    for (i = 0; i < n_variants; i++) {
        struct variant *v = &variants[i];
        if (v->cache != NULL) {
            snicache_stats st;
            uint64_t expected = (uint64_t)v->per_round * (uint64_t)n_threads * (uint64_t)(rounds + 1);
            if (snicache_cache_stats(v->cache, NULL, &st) != SNICACHE_RESULT_OK || st.hits != expected) {
                fprintf(stderr, "bench_handshake: %s: snicache counted %llu hits, expected %llu\n", v->name,
                        (unsigned long long)st.hits, (unsigned long long)expected);
                return 1;
            }
        }
    }

    printf("TLS 1.2, session ids (SSL_OP_NO_TICKET; the ticket variants: stateless tickets), memory BIOs, client and server in the same thread;\n"
           "%d thread(s), %d rounds x %d resumed handshakes per thread (full: %d), variants interleaved.\n"
           "Every counted resumed handshake was checked with SSL_session_reused on both sides.\n\n",
           n_threads, rounds, per_round, v_full->per_round);
    printf("| variant | handshakes/s (median) | min | max | vs internal (median of per-round ratios) |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (i = 0; i < n_variants; i++) {
        struct variant *v = &variants[i];
        double lo = v->rate[0], hi = v->rate[0];
        const struct variant *base = v == v_s2 ? v_isni : v == v_stk ? v_itk : v_int;
        for (r = 1; r < rounds; r++) {
            lo = v->rate[r] < lo ? v->rate[r] : lo;
            hi = v->rate[r] > hi ? v->rate[r] : hi;
        }
        printf("| %s | %.0f | %.0f | %.0f | ", v->name, median(v->rate, rounds), lo, hi);
        if (v == v_int || v == v_isni || v == v_itk)
            printf("1 (baseline) |\n");
        else
            printf("%.3fx%s |\n", ratio(v, base, rounds),
                   base == v_isni ? " of internal+sni" : base == v_itk ? " of internal tickets" : "");
    }
    printf("\nsnicache / internal: %.3fx (1 vhost), %.3fx (2 vhosts vs internal+sni); decode-every-hit / internal: "
           "%.3fx\n",
           ratio(v_snic, v_int, rounds), ratio(v_s2, v_isni, rounds), ratio(v_dec, v_int, rounds));
    printf("snicache tickets (revocation check on, 64 revoked) / internal tickets: %.3fx\n",
           ratio(v_stk, v_itk, rounds));
    printf("snicache+shm / snicache (memory store): %.3fx\n", ratio(v_shm, v_snic, rounds));
    if (v_redis != NULL) {
        snicache_stats st;
        if (snicache_cache_stats(cache3, NULL, &st) != SNICACHE_RESULT_OK)
            die("snicache_cache_stats");
        printf("snicache+redis / snicache (memory store): %.3fx; Redis writes %llu, remote lookups %llu, "
               "errors %llu\n",
               ratio(v_redis, v_snic, rounds), (unsigned long long)st.remote_writes,
               (unsigned long long)(st.remote_hits + st.remote_misses), (unsigned long long)st.remote_errors);
    }

    for (i = 0; i < n_variants; i++) {
        int t, k;
        for (t = 0; t < n_threads; t++)
            for (k = 0; k < 2; k++)
                SSL_SESSION_free(variants[i].offer[t][k]);
    }
    snicache_cache_free(cache1);
    snicache_cache_free(cache5);
    snicache_config_free(config5);
    SSL_CTX_free(snic_shm);
    snicache_cache_free(cache3);
    snicache_config_free(config3);
    if (snic_redis != NULL)
        SSL_CTX_free(snic_redis);
    snicache_cache_free(cache2);
    snicache_config_free(config1);
    snicache_config_free(config2);
    SSL_CTX_free(internal);
    SSL_CTX_free(snic);
    SSL_CTX_free(decode);
    SSL_CTX_free(full);
    SSL_CTX_free(sni_listener);
    SSL_CTX_free(sni_ctx[0]);
    SSL_CTX_free(sni_ctx[1]);
    SSL_CTX_free(snic_listener);
    SSL_CTX_free(snic_vh[0]);
    SSL_CTX_free(snic_vh[1]);
    SSL_CTX_free(client_ctx);
    dec_free_all();
    return 0;
}
