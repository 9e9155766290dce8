/* Garbage in the shared mapping, as a misbehaving process could write it. Sessions are made on
 * a "shm:1m" cache, then bytes of the mapping (reached through the test-only
 * snicache_debug_shm_mapping, in a library built with `--features test-hooks`) are overwritten: first scattered random bytes over the whole
 * mapping (header, lock words, shard state, slots, counters), round after round, then every
 * byte (0xa5). After each round every stored session is offered again. No handshake may fail
 * or take over 1 s (a damaged entry is a counted miss and a full handshake, never a resumption
 * of garbage), the counters must account for every offer (hits + misses), and nothing may
 * crash (also under ASan+UBSan and valgrind). Then the store must heal: lock words naming no
 * thread are taken back, damaged shards reset (counted in `repairs`), the header rewritten, so
 * sessions made after the wipe resume again (>= 90%). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SNICACHE_TEST_HOOKS 1 /* declares snicache_debug_shm_mapping */
#include "harness.h"

/* Weak: the other tests and the demo, built with this one, link against a library built without
 * the feature too; this test then fails, saying so. */
#pragma weak snicache_debug_shm_mapping

#define SESSIONS 100

static const char *names[2] = {"a.test", "b.test"};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(void)
{
    struct h_server srv;
    SSL_CTX *listener, *client;
    SSL_SESSION *sess[SESSIONS];
    const snicache_cache *cache;
    snicache_shm_health health;
    snicache_stats before, after;
    struct h_opts o;
    unsigned char *base = NULL;
    void *vbase = NULL;
    size_t len = 0;
    const char *quick = getenv("SNICACHE_TEST_QUICK");
    int rounds = 20, round, i, offers = 0, resumed = 0, failed = 0;
    double max_ms = 0;
    unsigned long long rng = 0x9e3779b97f4a7c15ULL;

    memset(&after, 0, sizeof after);
    if (quick != NULL && strcmp(quick, "1") == 0)
        rounds = 5;
    if (snicache_debug_shm_mapping == NULL) {
        fprintf(stderr, "FAIL shm_garbage: libsnicache built without --features test-hooks\n");
        return 1;
    }
    cache = h_server_stateful(&srv, names, 2, "shm:1m");
    listener = srv.listener;
    client = h_client_ctx();
    CHECK_OK(snicache_debug_shm_mapping(cache, &vbase, &len));
    if (cache == NULL || vbase == NULL)
        return h_done("shm_garbage");
    base = vbase;

    memset(&o, 0, sizeof o);
    for (i = 0; i < SESSIONS; i++) {
        struct h_result r;
        o.sni = names[i % 2];
        o.version = i % 2 ? TLS1_3_VERSION : TLS1_2_VERSION;
        r = h_connect(listener, client, &o);
        CHECK(r.ok && !r.resumed && r.session != NULL);
        sess[i] = r.session;
    }
    before = h_stats(cache, NULL);
    for (round = 0; round <= rounds; round++) {
        if (round == rounds) {
            /* The counters live in the mapping too: read them before the wipe scrambles them. */
            after = h_stats(cache, NULL);
            CHECK_OK(snicache_shm_health_get(cache, &health));
            memset(base, 0xa5, len); /* everything, locks included */
        } else {
            for (i = 0; i < 256; i++) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                base[rng % len] = (unsigned char)(rng >> 32);
            }
        }
        for (i = 0; i < (round == rounds ? 10 : SESSIONS); i++) {
            struct h_result r;
            double t0 = now_ms();
            o.sni = names[i % 2];
            o.version = i % 2 ? TLS1_3_VERSION : TLS1_2_VERSION;
            o.offer = sess[i];
            r = h_connect(listener, client, &o);
            t0 = now_ms() - t0;
            if (t0 > max_ms)
                max_ms = t0;
            offers++;
            resumed += r.resumed;
            failed += !r.ok;
            if (r.ok && !r.resumed && r.session != NULL) {
                SSL_SESSION_free(sess[i]); /* offer the fresh one next round */
                sess[i] = r.session;
            } else {
                SSL_SESSION_free(r.session);
            }
        }
    }
    printf("  %d rounds of 256 random bytes, then all %zu bytes: %d offers, %d resumed, %d failed, "
           "slowest %.1f ms\n  before the wipe:",
           rounds, len, offers, resumed, failed, max_ms);
    printf(" engine: hits=%llu misses=%llu store_errors=%llu corrupt=%llu; shm health: corrupt=%llu repairs=%llu "
           "lock_timeouts=%llu lock_errors=%llu\n",
           (unsigned long long)(after.hits - before.hits), (unsigned long long)(after.misses - before.misses),
           (unsigned long long)after.store_errors, (unsigned long long)after.corrupt,
           (unsigned long long)health.corrupt, (unsigned long long)health.repairs,
           (unsigned long long)health.lock_timeouts, (unsigned long long)health.lock_errors);
    CHECK(failed == 0 && max_ms < 1000);
    CHECK(health.corrupt + health.repairs > 0);
    CHECK(resumed > 0 && resumed < offers);
    /* Up to the wipe, every offer was a hit or a counted miss, and only hits resumed. */
    CHECK(after.hits - before.hits + after.misses - before.misses == (uint64_t)rounds * SESSIONS);
    CHECK(after.hits - before.hits == (uint64_t)resumed && after.corrupt == 0);

    /* Healing: new sessions after the wipe, then each offered again. */
    {
        int healed = 0;
        double t_heal = now_ms();
        for (i = 0; i < SESSIONS; i++) {
            struct h_result r;
            o.sni = names[i % 2];
            o.version = i % 2 ? TLS1_3_VERSION : TLS1_2_VERSION;
            o.offer = NULL;
            r = h_connect(listener, client, &o);
            CHECK(r.ok && r.session != NULL);
            SSL_SESSION_free(sess[i]);
            sess[i] = r.session;
        }
        for (i = 0; i < SESSIONS; i++) {
            struct h_result r;
            o.sni = names[i % 2];
            o.version = i % 2 ? TLS1_3_VERSION : TLS1_2_VERSION;
            o.offer = sess[i];
            r = h_connect(listener, client, &o);
            CHECK(r.ok);
            healed += r.resumed;
            SSL_SESSION_free(r.session);
        }
        CHECK_OK(snicache_shm_health_get(cache, &health));
        printf("  after the wipe: %d of %d new sessions resumed (%.0f ms); repairs=%llu lock_errors=%llu\n", healed,
               SESSIONS, now_ms() - t_heal, (unsigned long long)health.repairs,
               (unsigned long long)health.lock_errors);
        CHECK(healed * 10 >= SESSIONS * 9);
    }

    for (i = 0; i < SESSIONS; i++)
        SSL_SESSION_free(sess[i]);
    h_server_free(&srv);
    SSL_CTX_free(client);
    return h_done("shm_garbage");
}
