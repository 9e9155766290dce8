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
    SSL_CTX *ctxs[1] = {h_server_ctx("a.test")};
    SSL_CTX *listener = h_server_ctx("listener");
    SSL_CTX *client = h_client_ctx();
    snicache_config *config = h_config(names, ctxs, 1);
    const snicache_cache *cache = NULL;
    struct h_opts o;
    struct h_result first, resumed, broken, after, born_bad, offer_bad;
    SSL_SESSION *copy;
    snicache_stats st;
    uint64_t misses;

    SSL_CTX_set_options(listener, SSL_OP_NO_TICKET);
    SSL_CTX_set_options(ctxs[0], SSL_OP_NO_TICKET);
    CHECK_OK(snicache_cache_new(config, &cache));
    CHECK_OK(snicache_cache_attach(cache, listener, 0));

    memset(&o, 0, sizeof o);
    o.version = version;
    o.sni = "a.test";
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
    copy = h_session_copy(first.session);
    o.offer = copy;
    after = h_connect(listener, client, &o);
    CHECK(after.ok && !after.resumed);
    CHECK(after.info.outcome == SNICACHE_OUTCOME_REFUSED && strcmp(after.reason, "invalidated") == 0);
    CHECK(h_refusals(cache, "a.test", "invalidated") == 1);
    CHECK(h_refusals(cache, NULL, "invalidated") == 1);
    SSL_SESSION_free(copy);

    /* A fatal alert on the connection that created the session. */
    o.offer = NULL;
    o.corrupt_after = 1;
    born_bad = h_connect(listener, client, &o);
    CHECK(born_bad.ok && !born_bad.resumed && born_bad.alert == AD_BAD_RECORD_MAC && born_bad.session != NULL);
    o.corrupt_after = 0;
    copy = h_session_copy(born_bad.session);
    o.offer = copy;
    misses = h_stats(cache, "a.test").misses;
    offer_bad = h_connect(listener, client, &o);
    CHECK(offer_bad.ok && !offer_bad.resumed);
    /* It was offered and looked up: gone (OpenSSL's remove callback and ours both drop it). */
    CHECK(h_stats(cache, "a.test").misses == misses + 1);
    CHECK(offer_bad.info.outcome != SNICACHE_OUTCOME_RESUMED);
    SSL_SESSION_free(copy);

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
    snicache_cache_free(cache);
    snicache_config_free(config);
    SSL_CTX_free(client);
    SSL_CTX_free(listener);
    SSL_CTX_free(ctxs[0]);
}

int main(void)
{
    scenario(TLS1_2_VERSION);
    scenario(TLS1_3_VERSION);
    return h_done("alert");
}
