/* The shm store in memory the host provides (snicache_config_set_shm_memory), as the nginx
 * module uses a shared zone. A 1 MB MAP_SHARED region stands for the zone:
 *   - bad arguments: NULL memory, a size that cannot hold a store, misaligned memory;
 *   - cache A made over fresh memory: not inherited; TLS 1.2 and TLS 1.3 stateful sessions;
 *   - cache B, made later over the same memory with the same vhosts (a reload that keeps the
 *     zone) and attached in A's place: inherited, and A's sessions resume on it;
 *   - cache C with another vhost list (another layout): a new store (counters from zero), and
 *     A's sessions miss on it;
 *   - nothing of the region is touched but the header and the pages entries were written to. */
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS, mincore */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

#define LEN (1u << 20)

static const char *names[3] = {"a.test", "b.test", "c.test"};

static const snicache_cache *cache_over(void *mem, size_t len, SSL_CTX **ctxs, int n, SSL_CTX *listener,
                                        snicache_config **config, snicache_result *rc)
{
    const snicache_cache *c = NULL;
    *config = h_config(names, ctxs, n);
    CHECK_OK(snicache_config_set_shm_memory(*config, mem, len));
    *rc = snicache_cache_new(*config, &c);
    if (c != NULL)
        CHECK_OK(snicache_cache_attach(c, listener, 0));
    return c;
}

/* Offers sess[0] (a.test, TLS 1.2) and sess[1] (b.test, TLS 1.3); returns how many resumed. */
static int offer_both(SSL_CTX *listener, SSL_CTX *client, SSL_SESSION **sess)
{
    struct h_opts o;
    int i, resumed = 0;
    memset(&o, 0, sizeof o);
    for (i = 0; i < 2; i++) {
        struct h_result r;
        o.sni = names[i];
        o.version = i ? TLS1_3_VERSION : TLS1_2_VERSION;
        o.offer = sess[i];
        r = h_connect(listener, client, &o);
        CHECK(r.ok);
        resumed += r.resumed;
        SSL_SESSION_free(r.session);
    }
    return resumed;
}

static size_t resident(unsigned char *mem)
{
    unsigned char v[LEN / 4096];
    size_t i, n = 0;
    CHECK(mincore(mem, LEN, v) == 0);
    for (i = 0; i < sizeof v; i++)
        n += v[i] & 1;
    return n;
}

int main(void)
{
    SSL_CTX *ctxs[3], *listener, *client;
    SSL_SESSION *sess[2];
    snicache_config *ca, *cb, *cc, *bad;
    const snicache_cache *a, *b, *c, *m = NULL;
    snicache_result rc;
    struct h_opts o;
    bool inherited = true;
    int i, resumed;
    unsigned char *mem = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    CHECK(mem != MAP_FAILED);
    if (mem == MAP_FAILED)
        return h_done("shm_memory");
    for (i = 0; i < 3; i++) {
        ctxs[i] = h_server_ctx(names[i]);
        SSL_CTX_set_options(ctxs[i], SSL_OP_NO_TICKET);
    }
    listener = h_server_ctx("listener");
    SSL_CTX_set_options(listener, SSL_OP_NO_TICKET);
    client = h_client_ctx();

    bad = h_config(names, ctxs, 2);
    CHECK(snicache_config_set_shm_memory(bad, NULL, LEN) == SNICACHE_RESULT_NULL_PARAMETER);
    CHECK(snicache_config_set_shm_memory(bad, mem, 1024) == SNICACHE_RESULT_INVALID_PARAMETER);
    CHECK(snicache_config_set_shm_memory(NULL, mem, LEN) == SNICACHE_RESULT_NULL_PARAMETER);
    CHECK_OK(snicache_config_set_shm_memory(bad, mem + 8, LEN - 64));
    CHECK(snicache_cache_new(bad, &m) == SNICACHE_RESULT_INVALID_PARAMETER && m == NULL);
    snicache_config_free(bad);
    CHECK(resident(mem) == 0);

    a = cache_over(mem, LEN, ctxs, 2, listener, &ca, &rc);
    CHECK(rc == SNICACHE_RESULT_OK && a != NULL);
    CHECK_OK(snicache_shm_inherited(a, &inherited));
    CHECK(!inherited);
    printf("  fresh store: %zu page(s) of %u touched\n", resident(mem), LEN / 4096);
    CHECK(resident(mem) <= 1);
    memset(&o, 0, sizeof o);
    for (i = 0; i < 2; i++) {
        struct h_result r;
        o.sni = names[i];
        o.version = i ? TLS1_3_VERSION : TLS1_2_VERSION;
        r = h_connect(listener, client, &o);
        CHECK(r.ok && !r.resumed && r.session != NULL);
        sess[i] = r.session;
    }

    b = cache_over(mem, LEN, ctxs, 2, listener, &cb, &rc);
    CHECK(rc == SNICACHE_RESULT_OK && b != NULL);
    CHECK_OK(snicache_shm_inherited(b, &inherited));
    CHECK(inherited);
    resumed = offer_both(listener, client, sess);
    printf("  a store of the same layout inherited: %d/2 sessions resume on the new cache\n", resumed);
    CHECK(resumed == 2);

    c = cache_over(mem, LEN, ctxs, 3, listener, &cc, &rc);
    CHECK(rc == SNICACHE_RESULT_OK && c != NULL);
    CHECK_OK(snicache_shm_inherited(c, &inherited));
    CHECK(!inherited);
    resumed = offer_both(listener, client, sess);
    printf("  another layout made a new store: %d/2 old sessions resume\n", resumed);
    CHECK(resumed == 0);
    printf("  new store counters: hits=%llu misses=%llu\n", (unsigned long long)h_stats(c, NULL).hits,
           (unsigned long long)h_stats(c, NULL).misses);
    CHECK(h_stats(c, NULL).hits == 0 && h_stats(c, NULL).misses == 2); /* C counts from zero */
    printf("  %zu page(s) of %u touched in all\n", resident(mem), LEN / 4096);
    CHECK(resident(mem) < 16);

    for (i = 0; i < 2; i++)
        SSL_SESSION_free(sess[i]);
    snicache_cache_free(a);
    snicache_cache_free(b);
    snicache_cache_free(c);
    snicache_config_free(ca);
    snicache_config_free(cb);
    snicache_config_free(cc);
    SSL_CTX_free(client);
    SSL_CTX_free(listener);
    for (i = 0; i < 3; i++)
        SSL_CTX_free(ctxs[i]);
    munmap(mem, LEN);
    return h_done("shm_memory");
}
