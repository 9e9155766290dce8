/* R1 (RFC 5246 §7.2.2): a connection that ends with a fatal alert makes its session
 * non-resumable. TLS 1.2 session ids and TLS 1.3 stateful sessions (SSL_OP_NO_TICKET): a
 * resumed connection whose client record is corrupted (the server answers bad_record_mac)
 * leaves a tombstone, so the next offer is a full handshake refused as `invalidated`. In TLS 1.3
 * OpenSSL itself only removes the id it just issued, not the PSK that was resumed. A fatal alert
 * on the connection that made the session also makes it unusable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define AD_BAD_RECORD_MAC 20

static void scenario(int version)
{
    const char *names[] = {"a.test"};
    struct h_server srv;
    SSL_CTX *listener, *client = h_client_ctx();
    const snicache_cache *cache;
    struct h_opts o;
    struct h_result first, resumed, broken, after, born_bad, offer_bad;
    snicache_stats st;
    uint64_t misses;

    h_server_init(&srv, names, NULL, 1, H_NO_TICKET);
    listener = srv.listener;
    cache = h_server_start(&srv, 0);

    o = h_opts_for(version, "a.test");
    first = h_connect(listener, client, &o);
    CHECK(first.ok && !first.resumed && first.session != NULL);

    /* The session resumes (so it is live in the cache) ... */
    o.offer = first.session;
    resumed = h_connect(listener, client, &o);
    CHECK(resumed.ok && resumed.resumed);

    /* ... then a resumed connection ends with a fatal alert ... */
    o.corrupt_after = 1;
    broken = h_connect(listener, client, &o);
    CHECK(broken.ok && broken.resumed);
    CHECK(broken.alert == AD_BAD_RECORD_MAC);
    st = h_stats(cache, "a.test");
    CHECK(st.invalidations >= 1);

    /* ... and the same session offered again is a full handshake. */
    o.corrupt_after = 0;
    after = h_connect_copy(listener, client, &o, first.session);
    CHECK(after.ok && !after.resumed);
    CHECK(after.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(after.reason, "invalidated") == 0);
    CHECK(h_refusals(cache, "a.test", "invalidated") == 1);
    CHECK(h_refusals(cache, NULL, "invalidated") == 1);

    /* A fatal alert on the connection that created the session. */
    o.offer = NULL;
    o.corrupt_after = 1;
    born_bad = h_connect(listener, client, &o);
    CHECK(born_bad.ok && !born_bad.resumed && born_bad.alert == AD_BAD_RECORD_MAC && born_bad.session != NULL);
    o.corrupt_after = 0;
    misses = h_stats(cache, "a.test").misses;
    offer_bad = h_connect_copy(listener, client, &o, born_bad.session);
    CHECK(offer_bad.ok && !offer_bad.resumed);
    /* It was offered and looked up: gone (OpenSSL's remove callback and ours both drop it). */
    CHECK(h_stats(cache, "a.test").misses == misses + 1);
    CHECK(offer_bad.info.outcome != SNICACHE_OUTCOME_RESUMED);

    st = h_stats(cache, NULL);
    CHECK(st.hits == 2);
    if (h_failures || getenv("H_DEBUG"))
        fprintf(stderr, "  v=%x hits=%llu misses=%llu refusals=%llu invalidations=%llu entries=%llu reason=%s\n",
                version, (unsigned long long)st.hits, (unsigned long long)st.misses,
                (unsigned long long)st.refusals, (unsigned long long)st.invalidations,
                (unsigned long long)st.entries, after.reason);

    SSL_SESSION_free(first.session);
    SSL_SESSION_free(resumed.session);
    SSL_SESSION_free(broken.session);
    SSL_SESSION_free(after.session);
    SSL_SESSION_free(born_bad.session);
    SSL_SESSION_free(offer_bad.session);
    h_server_free(&srv);
    SSL_CTX_free(client);
}

int main(void)
{
    scenario(TLS1_2_VERSION);
    scenario(TLS1_3_VERSION);
    return h_done("alert");
}
