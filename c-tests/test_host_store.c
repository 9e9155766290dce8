/* A store supplied by the host (snicache_config_set_store_callbacks) on OpenSSL 3: sessions are
 * put, found and removed through it under (vhost name, id); a "pending" answer (which OpenSSL
 * cannot wait for), a failing store, an answer outside snicache_store_status and a corrupt record
 * each give a clean full handshake, counted; and the policy still decides (another name is
 * refused). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define SLOTS 64

struct slot {
    char vhost[256];
    uint8_t id[32];
    size_t id_len;
    uint8_t value[8192];
    size_t len;
    int used;
};

static struct host_store {
    pthread_mutex_t lock;
    struct slot slots[SLOTS];
    int mode; /* 0 normal, 1 pending, 2 error, 3 corrupt, 4 status out of range */
    int puts, gets, removes;
    char last_vhost[256];
} store = {PTHREAD_MUTEX_INITIALIZER, {{{0}, {0}, 0, {0}, 0, 0}}, 0, 0, 0, 0, {0}};

static struct slot *find(const char *vhost, size_t vlen, const uint8_t *id, size_t id_len)
{
    int i;
    for (i = 0; i < SLOTS; i++) {
        struct slot *s = &store.slots[i];
        if (s->used && strlen(s->vhost) == vlen && memcmp(s->vhost, vhost, vlen) == 0 && s->id_len == id_len
            && memcmp(s->id, id, id_len) == 0)
            return s;
    }
    return NULL;
}

static uint32_t get_cb(void *ud, const char *vhost, size_t vlen, const uint8_t *id, size_t id_len, uint8_t *buf,
                       size_t cap, size_t *out_len)
{
    struct slot *s;
    uint32_t r = SNICACHE_STORE_STATUS_MISSING;
    (void)ud;
    pthread_mutex_lock(&store.lock);
    store.gets++;
    snprintf(store.last_vhost, sizeof store.last_vhost, "%.*s", (int)vlen, vhost);
    if (store.mode == 1)
        r = SNICACHE_STORE_STATUS_PENDING;
    else if (store.mode == 2)
        r = SNICACHE_STORE_STATUS_ERROR;
    else if (store.mode == 4)
        r = 0x7fffffffu; /* no snicache_store_status: a store error, never undefined behaviour */
    else if ((s = find(vhost, vlen, id, id_len)) != NULL && s->len <= cap) {
        memcpy(buf, s->value, s->len);
        if (store.mode == 3)
            buf[0] ^= 0xff; /* breaks the record format: snicache must drop it */
        *out_len = s->len;
        r = SNICACHE_STORE_STATUS_FOUND;
    }
    pthread_mutex_unlock(&store.lock);
    return r;
}

static int put_cb(void *ud, const char *vhost, size_t vlen, const uint8_t *id, size_t id_len, const uint8_t *value,
                  size_t len, uint64_t expires_at)
{
    int i;
    (void)ud;
    (void)expires_at;
    if (len > sizeof store.slots[0].value || vlen >= 256)
        return 1;
    pthread_mutex_lock(&store.lock);
    store.puts++;
    for (i = 0; i < SLOTS && store.slots[i].used; i++)
        ;
    if (i < SLOTS) {
        struct slot *s = &store.slots[i];
        memcpy(s->vhost, vhost, vlen);
        s->vhost[vlen] = 0;
        memcpy(s->id, id, id_len);
        s->id_len = id_len;
        memcpy(s->value, value, len);
        s->len = len;
        s->used = 1;
    }
    pthread_mutex_unlock(&store.lock);
    return i < SLOTS ? 0 : 1;
}

static int remove_cb(void *ud, const char *vhost, size_t vlen, const uint8_t *id, size_t id_len)
{
    struct slot *s;
    (void)ud;
    pthread_mutex_lock(&store.lock);
    store.removes++;
    if ((s = find(vhost, vlen, id, id_len)) != NULL)
        s->used = 0;
    pthread_mutex_unlock(&store.lock);
    return s != NULL;
}

int main(void)
{
    const char *names[] = {"a.test", "*.example.com"};
    struct h_server srv;
    SSL_CTX *listener, *client = h_client_ctx();
    const snicache_cache *cache;
    struct h_opts o;
    struct h_result first, again, pending, failing, corrupt, other, strange;
    snicache_stats st;
    uint64_t errors;

    h_server_init(&srv, names, NULL, 2, 0);
    listener = srv.listener;
    CHECK(snicache_config_set_store_callbacks(srv.config, get_cb, put_cb, NULL, NULL) ==
          SNICACHE_RESULT_NULL_PARAMETER);
    CHECK_OK(snicache_config_set_store_callbacks(srv.config, get_cb, put_cb, remove_cb, NULL));
    SSL_CTX_set_options(listener, SSL_OP_NO_TICKET);
    cache = h_server_start(&srv, 0);
    o = h_opts_for(TLS1_2_VERSION, "x.example.com");

    first = h_connect(listener, client, &o);
    CHECK(first.ok && !first.resumed && store.puts == 1);
    o.offer = first.session;
    again = h_connect(listener, client, &o);
    CHECK(again.ok && again.resumed);
    CHECK(strcmp(store.last_vhost, "*.example.com") == 0);

    other = h_connect_forged(listener, client, &o, again.session, "y.example.com");
    CHECK(other.ok && !other.resumed && strcmp(other.reason, "sni") == 0);

    store.mode = 1;
    pending = h_connect(listener, client, &o);
    CHECK(pending.ok && !pending.resumed);
    store.mode = 2;
    failing = h_connect(listener, client, &o);
    CHECK(failing.ok && !failing.resumed);
    st = h_stats(cache, NULL);
    errors = st.store_errors;
    CHECK(errors >= 1);
    store.mode = 4;
    strange = h_connect(listener, client, &o);
    CHECK(strange.ok && !strange.resumed);
    st = h_stats(cache, NULL);
    CHECK(st.store_errors == errors + 1 && st.hits == 1);
    store.mode = 3;
    corrupt = h_connect(listener, client, &o);
    CHECK(corrupt.ok && !corrupt.resumed);
    CHECK(store.removes >= 1); /* the corrupt record was dropped */
    store.mode = 0;

    st = h_stats(cache, NULL);
    CHECK(st.hits == 1 && st.pending == 1 && st.store_errors == errors + 1 && st.corrupt == 1);
    if (h_failures)
        fprintf(stderr, "  hits=%llu pending=%llu store_errors=%llu corrupt=%llu puts=%d gets=%d removes=%d\n",
                (unsigned long long)st.hits, (unsigned long long)st.pending, (unsigned long long)st.store_errors,
                (unsigned long long)st.corrupt, store.puts, store.gets, store.removes);

    SSL_SESSION_free(first.session);
    SSL_SESSION_free(again.session);
    SSL_SESSION_free(pending.session);
    SSL_SESSION_free(failing.session);
    SSL_SESSION_free(corrupt.session);
    SSL_SESSION_free(strange.session);
    SSL_SESSION_free(other.session);
    h_server_free(&srv);
    SSL_CTX_free(client);
    return h_done("host_store");
}
