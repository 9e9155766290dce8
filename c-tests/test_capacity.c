/* The memory bound: snicache_config_set_size("64k") (16k is the smallest size accepted).
 * Full TLS 1.2 handshakes with session ids fill the cache well past the bound: sessions are
 * evicted, the store never charges more than the bound, the newest session still resumes and
 * the oldest does not. A cap on entries (snicache_config_set_max_entries) holds too. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define BOUND (64 * 1024)

static void fill(SSL_CTX *listener, SSL_CTX *client, const snicache_cache *cache, uint64_t max_bytes,
                 uint64_t max_entries, int n)
{
    struct h_opts o;
    struct h_result r, oldest, newest;
    SSL_SESSION *first = NULL, *last = NULL;
    snicache_stats st;
    uint64_t hits;
    int i;

    o = h_opts_for(TLS1_2_VERSION, "a.test");
    for (i = 0; i < n; i++) {
        r = h_connect(listener, client, &o);
        CHECK(r.ok && !r.resumed);
        if (i == 0)
            first = r.session;
        else {
            SSL_SESSION_free(last);
            last = r.session;
        }
        st = h_stats(cache, NULL);
        CHECK(st.bytes <= max_bytes && st.entries <= max_entries);
    }
    st = h_stats(cache, NULL);
    CHECK(st.stores == (uint64_t)n && st.store_errors == 0);
    CHECK(st.evictions > 0 && st.entries + st.evictions == (uint64_t)n);
    CHECK(st.bytes <= max_bytes && st.entries <= max_entries);
    if (h_failures)
        fprintf(stderr, "  stores=%llu evictions=%llu entries=%llu bytes=%llu\n", (unsigned long long)st.stores,
                (unsigned long long)st.evictions, (unsigned long long)st.entries, (unsigned long long)st.bytes);

    hits = st.hits;
    o.offer = last;
    newest = h_connect(listener, client, &o);
    CHECK(newest.ok && newest.resumed);
    o.offer = first;
    oldest = h_connect(listener, client, &o);
    CHECK(oldest.ok && !oldest.resumed && oldest.info.outcome == SNICACHE_OUTCOME_FULL);
    st = h_stats(cache, NULL);
    CHECK(st.hits == hits + 1 && st.misses == 1);
    CHECK(st.bytes <= max_bytes && st.entries <= max_entries);

    SSL_SESSION_free(first);
    SSL_SESSION_free(last);
    SSL_SESSION_free(newest.session);
    SSL_SESSION_free(oldest.session);
}

static void scenario(const char *size, uint64_t max_bytes, uint64_t max_entries, int n)
{
    const char *names[] = {"a.test"};
    struct h_server srv;
    SSL_CTX *client = h_client_ctx();

    h_server_init(&srv, names, NULL, 1, H_NO_TICKET);
    CHECK_OK(snicache_config_set_size(srv.config, size));
    if (max_entries != UINT64_MAX)
        CHECK_OK(snicache_config_set_max_entries(srv.config, max_entries));
    fill(srv.listener, client, h_server_start(&srv, 0), max_bytes, max_entries, n);
    h_server_free(&srv);
    SSL_CTX_free(client);
}

int main(void)
{
    snicache_ssl_api api;
    snicache_config *config = NULL;

    /* The smallest size accepted is 16k. */
    snicache_ssl_api_init(&api);
    CHECK_OK(snicache_config_new(&api, &config));
    CHECK(snicache_config_set_size(config, "16k") == SNICACHE_RESULT_OK);
    CHECK(snicache_config_set_size(config, "16383") == SNICACHE_RESULT_INVALID_SIZE);
    CHECK(snicache_config_set_size(config, "15k") == SNICACHE_RESULT_INVALID_SIZE);
    snicache_config_free(config);

    /* About 1 KiB per session (record, decoded session, overhead): ~60 fit in 64k. */
    scenario("64k", BOUND, UINT64_MAX, 150);
    /* 1m makes 16 shards: the cap of 10 entries must still hold in total. */
    scenario("1m", 1 << 20, 10, 40);
    return h_done("capacity");
}
