/* Concurrency: 4 threads x 2000 handshakes on one listener (stateful: TLS 1.2 session ids on
 * two threads, TLS 1.3 stateful sessions on the other two), spread over three vhosts, mixing
 * new sessions and resumptions. No handshake may fail, every offered session must resume, and
 * the counters must add up: hits = resumptions seen by the server, stores = sessions OpenSSL
 * issued (TLS 1.2: one per full handshake; TLS 1.3: two per full handshake, one per
 * resumption), and the per-vhost counters sum to the totals.
 * SNICACHE_TEST_QUICK=1 (set by scripts/test.sh for valgrind) runs 4 x 200. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define THREADS 4
#define VHOSTS 3

static const char *vhost_names[VHOSTS] = {"a.test", "b.test", "*.c.test"};
static const char *snis[VHOSTS] = {"a.test", "b.test", "x.c.test"};

static SSL_CTX *listener;
static SSL_CTX *client;
static int per_thread = 2000;

struct worker {
    pthread_t tid;
    int version;
    uint64_t full[VHOSTS], offered[VHOSTS], resumed[VHOSTS];
    uint64_t errors, not_resumed, wrong_vhost;
};

static void *run(void *arg)
{
    struct worker *w = arg;
    SSL_SESSION *sess[VHOSTS] = {NULL, NULL, NULL};
    struct h_opts o;
    int i, v;

    o = h_opts_for(w->version, NULL);
    for (i = 0; i < per_thread; i++) {
        struct h_result r;
        v = i % VHOSTS;
        o.sni = snis[v];
        o.offer = (sess[v] != NULL && i % 5 != 0) ? sess[v] : NULL;
        r = h_connect(listener, client, &o);
        if (!r.ok || r.session == NULL) {
            w->errors++;
            SSL_SESSION_free(r.session);
            continue;
        }
        if (!r.have_info || strcmp(r.vhost, vhost_names[v]) != 0)
            w->wrong_vhost++;
        if (o.offer != NULL) {
            w->offered[v]++;
            if (!r.resumed)
                w->not_resumed++;
        }
        if (r.resumed)
            w->resumed[v]++;
        else
            w->full[v]++;
        SSL_SESSION_free(sess[v]);
        sess[v] = r.session;
    }
    for (v = 0; v < VHOSTS; v++)
        SSL_SESSION_free(sess[v]);
    return NULL;
}

int main(void)
{
    struct h_server srv;
    const snicache_cache *cache;
    struct worker w[THREADS];
    uint64_t hits = 0, stores = 0, vh_hits[VHOSTS] = {0}, vh_stores[VHOSTS] = {0};
    snicache_stats total, sum, st;
    const char *quick = getenv("SNICACHE_TEST_QUICK");
    int t, v;

    if (quick != NULL && strcmp(quick, "1") == 0)
        per_thread = 200;
    h_server_init(&srv, vhost_names, NULL, VHOSTS, H_NO_TICKET);
    listener = srv.listener;
    client = h_client_ctx();
    /* Large enough that nothing is evicted, so stores and entries can be compared exactly. */
    CHECK_OK(snicache_config_set_size(srv.config, "64m"));
    cache = h_server_start(&srv, 0);

    memset(w, 0, sizeof w);
    for (t = 0; t < THREADS; t++) {
        w[t].version = t < 2 ? TLS1_2_VERSION : TLS1_3_VERSION;
        CHECK(pthread_create(&w[t].tid, NULL, run, &w[t]) == 0);
    }
    for (t = 0; t < THREADS; t++)
        pthread_join(w[t].tid, NULL);

    for (t = 0; t < THREADS; t++) {
        CHECK(w[t].errors == 0 && w[t].not_resumed == 0 && w[t].wrong_vhost == 0);
        if (w[t].errors || w[t].not_resumed || w[t].wrong_vhost)
            fprintf(stderr, "  thread %d: errors=%llu not_resumed=%llu wrong_vhost=%llu\n", t,
                    (unsigned long long)w[t].errors, (unsigned long long)w[t].not_resumed,
                    (unsigned long long)w[t].wrong_vhost);
        for (v = 0; v < VHOSTS; v++) {
            uint64_t s = w[t].version == TLS1_2_VERSION ? w[t].full[v] : 2 * w[t].full[v] + w[t].resumed[v];
            CHECK(w[t].resumed[v] == w[t].offered[v]);
            vh_hits[v] += w[t].resumed[v];
            vh_stores[v] += s;
            hits += w[t].resumed[v];
            stores += s;
        }
    }
    CHECK(hits > (uint64_t)per_thread * THREADS / 2);

    total = h_stats(cache, NULL);
    memset(&sum, 0, sizeof sum);
    for (v = 0; v < VHOSTS; v++) {
        st = h_stats(cache, vhost_names[v]);
        CHECK(st.hits == vh_hits[v] && st.stores == vh_stores[v]);
        if (st.hits != vh_hits[v] || st.stores != vh_stores[v])
            fprintf(stderr, "  %s: hits %llu (expected %llu) stores %llu (expected %llu)\n", vhost_names[v],
                    (unsigned long long)st.hits, (unsigned long long)vh_hits[v], (unsigned long long)st.stores,
                    (unsigned long long)vh_stores[v]);
        sum.hits += st.hits;
        sum.misses += st.misses;
        sum.stores += st.stores;
        sum.entries += st.entries;
        sum.bytes += st.bytes;
        sum.refusals += st.refusals;
        sum.evictions += st.evictions;
        sum.invalidations += st.invalidations;
    }
    CHECK(total.hits == hits && total.stores == stores);
    CHECK(total.misses == 0 && total.refusals == 0 && total.store_errors == 0 && total.corrupt == 0);
    CHECK(total.evictions == 0 && total.invalidations == 0 && total.entries == total.stores);
    CHECK(sum.hits == total.hits && sum.misses == total.misses && sum.stores == total.stores);
    CHECK(sum.entries == total.entries && sum.bytes == total.bytes && sum.refusals == total.refusals);
    CHECK(sum.evictions == total.evictions && sum.invalidations == total.invalidations);
    if (h_failures)
        fprintf(stderr, "  total: hits=%llu/%llu stores=%llu/%llu misses=%llu entries=%llu evictions=%llu\n",
                (unsigned long long)total.hits, (unsigned long long)hits, (unsigned long long)total.stores,
                (unsigned long long)stores, (unsigned long long)total.misses, (unsigned long long)total.entries,
                (unsigned long long)total.evictions);

    h_server_free(&srv);
    SSL_CTX_free(client);
    return h_done("threads");
}
