/* Workers dying mid-write on the shared-memory store. The parent makes the cache ("shm:4m")
 * and forks 3 steady workers that loop over handshakes:
 * each resumes sessions the others published (TLS 1.2 ids and TLS 1.3 stateful sessions) and
 * makes new ones. Meanwhile the parent forks a writer that makes full handshakes (each a store)
 * as fast as it can and kills it with SIGKILL after a few milliseconds, again and again. No
 * steady handshake may fail or take over 1 s, the steady workers must keep resuming, and
 * nothing corrupt may ever come back (no failed handshake, engine `corrupt` 0).
 * Prints the kills, the locks taken over from dead holders and the shards repaired.
 * SNICACHE_TEST_QUICK=1 (valgrind) runs 10 kills instead of 200 and allows 30 s per handshake. */
#define _DEFAULT_SOURCE 1 /* MAP_ANONYMOUS, usleep */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define STEADY 3
#define SLOTS 64
#define DER_MAX 2048

static const char *names[2] = {"a.test", "b.test"};

struct area {
    volatile int stop;
    struct {
        volatile unsigned seq; /* odd while being written */
        volatile int len;
        unsigned char der[DER_MAX];
    } pub[STEADY][SLOTS];
    struct {
        long handshakes, offered, resumed, errors, over_1s;
        double max_ms;
    } w[STEADY];
};

static struct area *area;
static struct h_server srv; /* global: its config still reachable when a worker exits under valgrind */
static SSL_CTX *client;

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double limit_ms = 1000; /* a handshake longer than this is counted (over_1s) */

static void steady(int w)
{
    struct h_opts o;
    long i;
    memset(&o, 0, sizeof o);
    for (i = 0; !area->stop; i++) {
        int from = (int)((w + 1 + i % (STEADY - 1)) % STEADY), k = (int)(i % SLOTS);
        unsigned seq = area->pub[from][k].seq;
        int len = area->pub[from][k].len;
        SSL_SESSION *offer = NULL;
        struct h_result r;
        double t0;
        if (len > 0 && len <= DER_MAX && seq % 2 == 0 && i % 4 != 0) {
            unsigned char der[DER_MAX];
            const unsigned char *p = der;
            __sync_synchronize();
            memcpy(der, area->pub[from][k].der, (size_t)len);
            __sync_synchronize();
            if (area->pub[from][k].seq == seq)
                offer = d2i_SSL_SESSION(NULL, &p, len);
        }
        o.sni = names[k % 2];
        o.offer = offer;
        o.version = offer ? SSL_SESSION_get_protocol_version(offer) : (k % 3 == 0 ? TLS1_3_VERSION : TLS1_2_VERSION);
        t0 = now_ms();
        r = h_connect(srv.listener, client, &o);
        t0 = now_ms() - t0;
        area->w[w].handshakes++;
        if (t0 > area->w[w].max_ms)
            area->w[w].max_ms = t0;
        if (t0 > limit_ms)
            area->w[w].over_1s++;
        if (!r.ok)
            area->w[w].errors++;
        if (offer) {
            area->w[w].offered++;
            area->w[w].resumed += r.resumed;
        }
        if (r.ok && r.session && !r.resumed) {
            int n = i2d_SSL_SESSION(r.session, NULL);
            if (n > 0 && n <= DER_MAX) {
                unsigned char *p = area->pub[w][k].der;
                area->pub[w][k].seq++;
                __sync_synchronize();
                area->pub[w][k].len = n;
                i2d_SSL_SESSION(r.session, &p);
                __sync_synchronize();
                area->pub[w][k].seq++;
            }
        }
        SSL_SESSION_free(r.session);
        SSL_SESSION_free(offer);
    }
}

/* Full handshakes until killed. */
static void writer(int w)
{
    struct h_opts o;
    int i;
    (void)w;
    memset(&o, 0, sizeof o);
    for (i = 0;; i++) {
        struct h_result r;
        o.sni = names[i % 2];
        o.version = i % 2 ? TLS1_3_VERSION : TLS1_2_VERSION;
        r = h_connect(srv.listener, client, &o);
        SSL_SESSION_free(r.session);
    }
}

int main(void)
{
    snicache_shm_health health;
    snicache_stats total;
    const char *quick = getenv("SNICACHE_TEST_QUICK");
    int kills = 200, k, w, status, waited;
    long offered = 0, resumed = 0, handshakes = 0;
    double max_ms = 0;
    pid_t pids[STEADY];

    /* Quick runs are valgrind's, 20-50x slower: fewer kills, and a handshake may take longer. */
    if (quick != NULL && strcmp(quick, "1") == 0) {
        kills = 10;
        limit_ms = 30000;
    }
    area = mmap(NULL, sizeof *area, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(area != MAP_FAILED);
    if (area == MAP_FAILED)
        return h_done("shm_crash");
    memset(area, 0, sizeof *area);
    client = h_client_ctx();
    if (h_server_stateful(&srv, names, 2, "shm:4m") == NULL)
        return h_done("shm_crash");

    h_fork(STEADY, steady, pids);
    for (k = 0; k < kills; k++) {
        pid_t victim;
        h_fork(1, writer, &victim);
        usleep(2000 + (unsigned)(k % 7) * 1500);
        kill(victim, SIGKILL);
        CHECK(waitpid(victim, &status, 0) == victim && WIFSIGNALED(status));
    }
    /* Every steady worker must have gone on through the kills (bounded wait for slow runs). */
    for (waited = 0; waited < 1200; waited++) {
        int busy = 1;
        for (w = 0; w < STEADY; w++)
            busy &= area->w[w].handshakes >= 20;
        if (busy)
            break;
        usleep(100000);
    }
    area->stop = 1;
    for (w = 0; w < STEADY; w++)
        CHECK(waitpid(pids[w], &status, 0) == pids[w] && WIFEXITED(status) && WEXITSTATUS(status) == 0);

    for (w = 0; w < STEADY; w++) {
        CHECK(area->w[w].errors == 0 && area->w[w].over_1s == 0);
        handshakes += area->w[w].handshakes;
        offered += area->w[w].offered;
        resumed += area->w[w].resumed;
        if (area->w[w].max_ms > max_ms)
            max_ms = area->w[w].max_ms;
    }
    total = h_stats(srv.cache, NULL);
    CHECK_OK(snicache_shm_health_get(srv.cache, &health));
    printf("  %d writers killed; steady workers: %ld handshakes, %ld/%ld offered sessions resumed (%.1f%%), "
           "slowest %.1f ms\n",
           kills, handshakes, resumed, offered, offered ? 100.0 * resumed / offered : 0.0, max_ms);
    printf("  store: stores=%llu evictions=%llu corrupt=%llu store_errors=%llu; shm health: owner_dead=%llu "
           "repairs=%llu corrupt=%llu lock_timeouts=%llu lock_errors=%llu\n",
           (unsigned long long)total.stores, (unsigned long long)total.evictions,
           (unsigned long long)total.corrupt, (unsigned long long)total.store_errors,
           (unsigned long long)health.owner_dead, (unsigned long long)health.repairs,
           (unsigned long long)health.corrupt, (unsigned long long)health.lock_timeouts,
           (unsigned long long)health.lock_errors);
    CHECK(offered > 0 && resumed * 4 >= offered * 3);
    CHECK(total.corrupt == 0 && health.corrupt == 0 && health.lock_errors == 0);

    munmap(area, sizeof *area);
    h_server_free(&srv);
    SSL_CTX_free(client);
    return h_done("shm_crash");
}
