/* Shared-memory store across prefork workers. The parent makes the cache with "shm:10m" and
 * forks 4 workers (plain processes sharing only the mapping). Phase 1: each worker makes N full
 * handshakes over two vhosts and publishes its client sessions (DER) in a test area. Phase 2:
 * each worker offers the sessions another worker made (same TLS version): every one must resume
 * in a process other than its maker. Then the counters, read in the parent and in each worker,
 * must add up across workers: hits = resumptions, stores = sessions issued, no misses.
 * Workers 0 and 2 use TLS 1.2 session ids, 1 and 3 stateful TLS 1.3 (tickets off).
 * SNICACHE_TEST_QUICK=1 runs N = 20. Also: a size too small is refused with a message. */
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define WORKERS 4
#define MAX_N 200
#define DER_MAX 2048

static const char *names[2] = {"a.test", "b.test"};

struct published {
    int len;
    int maker_pid;
    unsigned char der[DER_MAX];
};

struct area {
    pthread_barrier_t barrier;
    struct published sess[WORKERS][MAX_N];
    struct {
        int pid, errors, full, offered, resumed, same_pid, wrong_vhost, long_ms;
        snicache_stats seen; /* the totals as this worker read them at the end */
    } w[WORKERS];
};

static struct area *area;
static struct h_server srv; /* global: its config still reachable when a worker exits under valgrind */
static SSL_CTX *client;
static int n = MAX_N;

static int version_of(int w) { return w % 2 == 0 ? TLS1_2_VERSION : TLS1_3_VERSION; }

static void worker(int w)
{
    struct h_opts o;
    int k, from = (w + 2) % WORKERS;

    area->w[w].pid = getpid();
    o = h_opts_for(version_of(w), NULL);
    for (k = 0; k < n; k++) {
        struct h_result r;
        unsigned char *p;
        o.sni = names[k % 2];
        r = h_connect(srv.listener, client, &o);
        if (!r.ok || r.session == NULL || r.resumed) {
            area->w[w].errors++;
        } else {
            int len = i2d_SSL_SESSION(r.session, NULL);
            area->w[w].full++;
            if (len > 0 && len <= DER_MAX) {
                p = area->sess[w][k].der;
                area->sess[w][k].len = i2d_SSL_SESSION(r.session, &p);
                area->sess[w][k].maker_pid = getpid();
            }
        }
        SSL_SESSION_free(r.session);
    }
    pthread_barrier_wait(&area->barrier);
    for (k = 0; k < n; k++) {
        struct published *s = &area->sess[from][k];
        const unsigned char *p = s->der;
        struct h_result r;
        SSL_SESSION *offer = s->len > 0 ? d2i_SSL_SESSION(NULL, &p, s->len) : NULL;
        if (offer == NULL) {
            area->w[w].errors++;
            continue;
        }
        o.sni = names[k % 2];
        o.offer = offer;
        r = h_connect(srv.listener, client, &o);
        area->w[w].offered++;
        if (!r.ok)
            area->w[w].errors++;
        if (r.resumed)
            area->w[w].resumed++;
        if (s->maker_pid == getpid())
            area->w[w].same_pid++;
        if (!r.have_info || strcmp(r.vhost, names[k % 2]) != 0)
            area->w[w].wrong_vhost++;
        SSL_SESSION_free(r.session);
        SSL_SESSION_free(offer);
    }
    pthread_barrier_wait(&area->barrier);
    area->w[w].seen = h_stats(srv.cache, NULL);
}

static void too_small(void)
{
    SSL_CTX *ctx = h_server_ctx("small.test");
    const char *one[1] = {"small.test"};
    snicache_config *config = h_config(one, &ctx, 1);
    const snicache_cache *c = NULL;
    snicache_result r;
    char msg[256];

    /* Refused when the specification is set (nginx -t checks it there), not at cache_new. */
    r = snicache_config_set_store(config, "shm:4k");
    snicache_result_message(r, msg, sizeof msg);
    CHECK(r == SNICACHE_RESULT_INVALID_PARAMETER);
    CHECK(strstr(msg, "too small") != NULL);
    printf("  shm:4k refused: %s\n", msg);
    r = snicache_cache_new(config, &c); /* still the default memory store */
    CHECK(r == SNICACHE_RESULT_OK && c != NULL);
    snicache_cache_free(c);
    snicache_config_free(config);
    SSL_CTX_free(ctx);
}

int main(void)
{
    pthread_barrierattr_t battr;
    snicache_shm_health health;
    snicache_stats total, per[2];
    const char *quick = getenv("SNICACHE_TEST_QUICK");
    int w, v, status, offered = 0, resumed = 0;
    uint64_t stores = 0;
    pid_t pids[WORKERS];

    if (quick != NULL && strcmp(quick, "1") == 0)
        n = 20;
    too_small();
    area = mmap(NULL, sizeof *area, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(area != MAP_FAILED);
    if (area == MAP_FAILED)
        return h_done("shm");
    memset(area, 0, sizeof *area);
    pthread_barrierattr_init(&battr);
    pthread_barrierattr_setpshared(&battr, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&area->barrier, &battr, WORKERS);

    client = h_client_ctx();
    if (h_server_stateful(&srv, names, 2, "shm:10m") == NULL) /* the mapping, before fork */
        return h_done("shm");

    h_fork(WORKERS, worker, pids);
    for (w = 0; w < WORKERS; w++) {
        CHECK(waitpid(pids[w], &status, 0) == pids[w] && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    total = h_stats(srv.cache, NULL);
    for (w = 0; w < WORKERS; w++) {
        printf("  worker %d (pid %d, TLS 1.%d): %d full, %d/%d resumed sessions made by worker %d (pid %d)\n", w,
               area->w[w].pid, version_of(w) == TLS1_2_VERSION ? 2 : 3, area->w[w].full, area->w[w].resumed,
               area->w[w].offered, (w + 2) % WORKERS, area->w[(w + 2) % WORKERS].pid);
        CHECK(area->w[w].errors == 0 && area->w[w].same_pid == 0 && area->w[w].wrong_vhost == 0);
        CHECK(area->w[w].full == n && area->w[w].offered == n);
        CHECK(area->w[w].pid != area->w[(w + 2) % WORKERS].pid);
        offered += area->w[w].offered;
        resumed += area->w[w].resumed;
        /* TLS 1.2: one session per full handshake; TLS 1.3: two per full, one per resumption. */
        stores += version_of(w) == TLS1_2_VERSION ? (uint64_t)n : 3 * (uint64_t)n;
    }
    /* Every worker read the same shared totals after the last resumption: every resumption of
     * every worker (all of them unless a lock wait ran out, below). */
    for (w = 0; w < WORKERS; w++)
        CHECK(area->w[w].seen.hits == (uint64_t)resumed);
    printf("  parent's stats: hits=%llu misses=%llu stores=%llu entries=%llu bytes=%llu evictions=%llu\n",
           (unsigned long long)total.hits, (unsigned long long)total.misses, (unsigned long long)total.stores,
           (unsigned long long)total.entries, (unsigned long long)total.bytes, (unsigned long long)total.evictions);
    CHECK(offered == WORKERS * n);
    CHECK(total.hits == (uint64_t)resumed && total.refusals == 0 && total.evictions == 0 && total.corrupt == 0);
    for (v = 0; v < 2; v++) {
        per[v] = h_stats(srv.cache, names[v]);
    }
    CHECK(per[0].hits + per[1].hits == total.hits && per[0].stores + per[1].stores == total.stores);
    CHECK(per[0].entries + per[1].entries == total.entries && per[0].bytes + per[1].bytes == total.bytes);
    CHECK_OK(snicache_shm_health_get(srv.cache, &health));
    CHECK(health.repairs == 0 && health.corrupt == 0);
    if (health.lock_timeouts == 0) {
        /* Nothing waited past the lock bound: every session was stored and resumed. */
        CHECK(resumed == offered);
        CHECK(total.misses == 0 && total.store_errors == 0);
        CHECK(total.stores == stores && total.entries == stores);
        CHECK(per[0].hits == (uint64_t)resumed / 2);
    } else {
        /* A worker descheduled while holding a shard lock (a loaded machine) makes another's wait
         * end at the bound: a counted store error that costs at most one resumption, never a
         * failed handshake or a wrong session. */
        printf("  %llu lock timeouts (a loaded machine): %d of %d resumed\n",
               (unsigned long long)health.lock_timeouts, resumed, offered);
        CHECK((uint64_t)(offered - resumed) <= health.lock_timeouts);
        CHECK(health.lock_timeouts * 100 <= (uint64_t)offered);
        CHECK(total.store_errors <= health.lock_timeouts && total.stores + total.store_errors >= stores - health.lock_timeouts);
    }
    CHECK(health.mapped_bytes > 0 && health.mapped_bytes <= 10 << 20);
    printf("  mapping %llu bytes; %.0f bytes charged per session\n", (unsigned long long)health.mapped_bytes,
           total.entries ? (double)total.bytes / (double)total.entries : 0.0);

    pthread_barrier_destroy(&area->barrier);
    munmap(area, sizeof *area);
    h_server_free(&srv);
    SSL_CTX_free(client);
    return h_done("shm");
}
