/* Bad input through the C API: NULL pointers and bad values get their documented result code,
 * outputs stay untouched on failure, *_free(NULL) is harmless, messages are NUL-terminated and
 * fit small buffers, the callbacks survive NULL, and snicache_version() matches the header. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define EXPECT(expr, code)                                                                       \
    do {                                                                                         \
        snicache_result got_ = (expr);                                                           \
        if (got_ != (code)) {                                                                    \
            fprintf(stderr, "%s:%d: %s -> %u, expected %u\n", __FILE__, __LINE__, #expr, got_, \
                    (unsigned)(code));                                                           \
            h_failures++;                                                                        \
        }                                                                                        \
    } while (0)

static int allow_all(void *userdata, const snicache_rule_input *input)
{
    (void)userdata;
    (void)input;
    return 0;
}

static void messages(void)
{
    char buf[256], small[8];
    size_t n;

    n = snicache_result_message(SNICACHE_RESULT_NULL_PARAMETER, buf, sizeof buf);
    CHECK(n > 0 && n == strlen(buf));
    n = snicache_result_message(SNICACHE_RESULT_OK, buf, sizeof buf);
    CHECK(n == strlen(buf) && strcmp(buf, "success") == 0);
    memset(small, 'x', sizeof small);
    n = snicache_result_message(SNICACHE_RESULT_INVALID_SIZE, small, sizeof small);
    CHECK(n == sizeof small - 1 && small[sizeof small - 1] == '\0' && strlen(small) == n);
    memset(small, 'x', sizeof small);
    CHECK(snicache_result_message(SNICACHE_RESULT_INVALID_SIZE, small, 1) == 0 && small[0] == '\0' &&
          small[1] == 'x');
    CHECK(snicache_result_message(SNICACHE_RESULT_INVALID_SIZE, small, 0) == 0 && small[0] == '\0' &&
          small[1] == 'x');
    CHECK(snicache_result_message(SNICACHE_RESULT_INVALID_SIZE, NULL, 100) == 0);
    n = snicache_result_message(12345, buf, sizeof buf);
    CHECK(n == strlen(buf) && strstr(buf, "12345") != NULL);
}

static void config_calls(void)
{
    snicache_ssl_api api, bad;
    snicache_config *config = NULL, *sentinel = (snicache_config *)&api;
    snicache_config *out = sentinel;
    const snicache_cache *cache = NULL, *csentinel = (const snicache_cache *)&api, *cout = csentinel;
    SSL_CTX *ctx = h_server_ctx("a.test");
    char buf[256], name[80];
    const char *bad_names[] = {"", "a..b", "*.", "a b", "-a.test", "a.test.", "a.*.test", "a\x01.test"};
    const char *bad_sizes[] = {"", "10x", "0", "k", "-1", "1.5m", "10mb", "99999999999999999999g", "15k"};
    size_t i;

    snicache_ssl_api_init(&api);
    /* config_new */
    EXPECT(snicache_config_new(NULL, &out), SNICACHE_RESULT_NULL_PARAMETER);
    CHECK(out == sentinel);
    EXPECT(snicache_config_new(&api, NULL), SNICACHE_RESULT_NULL_PARAMETER);
    bad = api;
    bad.version = SNICACHE_SSL_API_VERSION + 1;
    EXPECT(snicache_config_new(&bad, &out), SNICACHE_RESULT_SSL_API_VERSION);
    bad = api;
    bad.size = 8;
    EXPECT(snicache_config_new(&bad, &out), SNICACHE_RESULT_SSL_API_VERSION);
    bad = api;
    bad.session_free = NULL;
    EXPECT(snicache_config_new(&bad, &out), SNICACHE_RESULT_SSL_API_INCOMPLETE);
    CHECK(out == sentinel);
    CHECK_OK(snicache_config_new(&api, &config));

    /* size */
    EXPECT(snicache_config_set_size(NULL, "1m"), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_config_set_size(config, NULL), SNICACHE_RESULT_NULL_PARAMETER);
    for (i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++)
        EXPECT(snicache_config_set_size(config, bad_sizes[i]), SNICACHE_RESULT_INVALID_SIZE);
    EXPECT(snicache_config_set_size(config, "16k"), SNICACHE_RESULT_OK);
    EXPECT(snicache_config_set_size(config, "10m"), SNICACHE_RESULT_OK);
    /* The detail of this thread's last error is part of the message. */
    EXPECT(snicache_config_set_size(config, "10x"), SNICACHE_RESULT_INVALID_SIZE);
    snicache_result_message(SNICACHE_RESULT_INVALID_SIZE, buf, sizeof buf);
    CHECK(strstr(buf, "10x") != NULL);

    /* other setters */
    EXPECT(snicache_config_set_max_entries(NULL, 1), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_config_set_max_entries(config, 0), SNICACHE_RESULT_OK);
    EXPECT(snicache_config_set_timeout(NULL, 1), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_config_set_timeout(config, 0), SNICACHE_RESULT_INVALID_PARAMETER);
    EXPECT(snicache_config_set_timeout(config, 86401), SNICACHE_RESULT_INVALID_PARAMETER);
    EXPECT(snicache_config_set_timeout(config, 86400), SNICACHE_RESULT_OK);
    EXPECT(snicache_config_set_strict_sni(NULL, true), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_config_set_log(NULL, NULL, NULL, SNICACHE_LOG_LEVEL_INFO), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_config_set_log(config, NULL, NULL, 0), SNICACHE_RESULT_INVALID_PARAMETER);
    EXPECT(snicache_config_set_log(config, NULL, NULL, 5), SNICACHE_RESULT_INVALID_PARAMETER);
    EXPECT(snicache_config_set_log(config, NULL, NULL, SNICACHE_LOG_LEVEL_DEBUG), SNICACHE_RESULT_OK);

    /* vhosts */
    EXPECT(snicache_config_add_vhost(NULL, "a.test", ctx, 0, 0), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_config_add_vhost(config, NULL, ctx, 0, 0), SNICACHE_RESULT_NULL_PARAMETER);
    for (i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
        EXPECT(snicache_config_add_vhost(config, bad_names[i], ctx, 0, 0), SNICACHE_RESULT_INVALID_VHOST_NAME);
    memset(name, 'a', 64);
    strcpy(name + 64, ".test");
    EXPECT(snicache_config_add_vhost(config, name, ctx, 0, 0), SNICACHE_RESULT_INVALID_VHOST_NAME);
    EXPECT(snicache_config_add_vhost(config, "\xff.test", ctx, 0, 0), SNICACHE_RESULT_INVALID_PARAMETER);
    EXPECT(snicache_config_add_vhost(config, "a.test", ctx, 0, 0x80), SNICACHE_RESULT_INVALID_PARAMETER);
    /* no vhost yet */
    EXPECT(snicache_cache_new(config, &cout), SNICACHE_RESULT_NO_VHOSTS);
    CHECK(cout == csentinel);
    EXPECT(snicache_config_add_vhost(config, "a.test", ctx, 0, SNICACHE_VHOST_DEFAULT), SNICACHE_RESULT_OK);
    EXPECT(snicache_config_add_vhost(config, "A.Test", ctx, 0, 0), SNICACHE_RESULT_DUPLICATE_VHOST);
    EXPECT(snicache_config_add_vhost(config, "b.test", NULL, 0, SNICACHE_VHOST_DEFAULT), SNICACHE_RESULT_SECOND_DEFAULT);
    EXPECT(snicache_config_add_vhost(config, "*.a.test", NULL, 0, 0), SNICACHE_RESULT_OK);

    /* rules */
    EXPECT(snicache_config_add_rule(NULL, "r", allow_all, NULL), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_config_add_rule(config, NULL, allow_all, NULL), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_config_add_rule(config, "r", NULL, NULL), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_config_add_rule(config, "", allow_all, NULL), SNICACHE_RESULT_INVALID_PARAMETER);
    EXPECT(snicache_config_add_rule(config, "Upper", allow_all, NULL), SNICACHE_RESULT_INVALID_PARAMETER);
    EXPECT(snicache_config_add_rule(config, "a rule", allow_all, NULL), SNICACHE_RESULT_INVALID_PARAMETER);
    memset(name, 'r', 65);
    name[65] = '\0';
    EXPECT(snicache_config_add_rule(config, name, allow_all, NULL), SNICACHE_RESULT_INVALID_PARAMETER);
    EXPECT(snicache_config_add_rule(config, "sni", allow_all, NULL), SNICACHE_RESULT_DUPLICATE_RULE);
    EXPECT(snicache_config_add_rule(config, "mine", allow_all, NULL), SNICACHE_RESULT_OK);
    EXPECT(snicache_config_add_rule(config, "mine", allow_all, NULL), SNICACHE_RESULT_DUPLICATE_RULE);

    /* cache_new */
    EXPECT(snicache_cache_new(NULL, &cout), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_cache_new(config, NULL), SNICACHE_RESULT_NULL_PARAMETER);
    CHECK(cout == csentinel);
    CHECK_OK(snicache_cache_new(config, &cache));
    snicache_config_free(config);
    SSL_CTX_free(ctx);
    snicache_cache_free(cache); /* nothing attached: this is the last reference */
}

static void cache_calls(void)
{
    const char *names[] = {"a.test"};
    SSL_CTX *vhost = h_server_ctx("a.test"), *listener = h_server_ctx("listener");
    snicache_config *config = h_config(names, &vhost, 1);
    const snicache_cache *cache = NULL;
    snicache_stats st, sentinel;
    snicache_conn_info info, isentinel;
    uint64_t count = 777;
    size_t len = 777, len2;
    char json[8192], tiny[4];
    SSL *ssl;
    int alert = -5, copy = -5;
    unsigned char id[4] = {1, 2, 3, 4};

    CHECK_OK(snicache_cache_new(config, &cache));
    EXPECT(snicache_cache_attach(NULL, listener, 0), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_cache_attach(cache, NULL, 0), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_cache_attach(cache, listener, 0x1000), SNICACHE_RESULT_INVALID_PARAMETER);
    CHECK_OK(snicache_cache_attach(cache, listener, 0));
    CHECK_OK(snicache_cache_attach(cache, listener, 0)); /* again: harmless */

    memset(&sentinel, 0xab, sizeof sentinel);
    st = sentinel;
    EXPECT(snicache_cache_stats(NULL, NULL, &st), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_cache_stats(cache, NULL, NULL), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_cache_stats(cache, "nope.test", &st), SNICACHE_RESULT_UNKNOWN_VHOST);
    CHECK(memcmp(&st, &sentinel, sizeof st) == 0);
    EXPECT(snicache_cache_stats(cache, "a.test", &st), SNICACHE_RESULT_OK);
    CHECK(st.hits == 0 && st.entries == 0);

    EXPECT(snicache_cache_refusals(NULL, NULL, "sni", &count), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_cache_refusals(cache, NULL, NULL, &count), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_cache_refusals(cache, NULL, "sni", NULL), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_cache_refusals(cache, NULL, "no-such-rule", &count), SNICACHE_RESULT_UNKNOWN_REASON);
    EXPECT(snicache_cache_refusals(cache, "nope.test", "sni", &count), SNICACHE_RESULT_UNKNOWN_VHOST);
    CHECK(count == 777);
    EXPECT(snicache_cache_refusals(cache, "a.test", "sni", &count), SNICACHE_RESULT_OK);
    CHECK(count == 0);

    EXPECT(snicache_cache_stats_json(NULL, json, sizeof json, &len), SNICACHE_RESULT_NULL_PARAMETER);
    EXPECT(snicache_cache_stats_json(cache, json, sizeof json, NULL), SNICACHE_RESULT_NULL_PARAMETER);
    memset(tiny, 'x', sizeof tiny);
    EXPECT(snicache_cache_stats_json(cache, tiny, sizeof tiny, &len), SNICACHE_RESULT_BUFFER_TOO_SMALL);
    CHECK(len == 777 && tiny[0] == 'x' && tiny[3] == 'x');
    EXPECT(snicache_cache_stats_json(cache, NULL, 0, &len), SNICACHE_RESULT_OK);
    CHECK(len > 0 && len < sizeof json);
    EXPECT(snicache_cache_stats_json(cache, json, len, &len2), SNICACHE_RESULT_BUFFER_TOO_SMALL);
    EXPECT(snicache_cache_stats_json(cache, json, len + 1, &len2), SNICACHE_RESULT_OK);
    CHECK(len2 == len && strlen(json) == len && json[0] == '{' && json[len - 1] == '}');

    /* conn_info */
    memset(&isentinel, 0xcd, sizeof isentinel);
    info = isentinel;
    EXPECT(snicache_conn_info_get(NULL, &info), SNICACHE_RESULT_NULL_PARAMETER);
    ssl = SSL_new(listener);
    EXPECT(snicache_conn_info_get(ssl, &info), SNICACHE_RESULT_INVALID_PARAMETER);
    CHECK(memcmp(&info, &isentinel, sizeof info) == 0);

    /* The raw callbacks with NULL or state-less arguments go on without crashing. */
    CHECK(snicache_on_client_hello(NULL, NULL, &alert, NULL) == 1 && alert == -5);
    CHECK(snicache_on_servername(NULL, &alert, NULL) == 0 && alert == -5);
    CHECK(snicache_on_get_session(NULL, id, 4, &copy) == NULL && copy == -5);
    CHECK(snicache_on_get_session(ssl, id, 4, &copy) == NULL && copy == -5);
    CHECK(snicache_on_get_session(ssl, NULL, -1, NULL) == NULL);
    CHECK(snicache_on_new_session(NULL, NULL) == 0);
    CHECK(snicache_on_new_session(ssl, NULL) == 0);
    snicache_on_remove_session(NULL, NULL);
    snicache_on_remove_session(listener, NULL);
    snicache_on_info(NULL, 0x4000, (2 << 8) | 20);
    snicache_on_info(ssl, 0x4000, (2 << 8) | 20);
    CHECK(snicache_on_ticket_generate(NULL, NULL) == 1);
    CHECK(snicache_on_ticket_decrypt(NULL, NULL, 1, NULL) == 0);
    CHECK(snicache_on_ticket_decrypt(ssl, NULL, 1, NULL) == 0);
    SSL_free(ssl);

    snicache_cache_free(cache);
    snicache_config_free(config);
    SSL_CTX_free(listener);
    SSL_CTX_free(vhost);
}

int main(void)
{
    CHECK(strcmp(snicache_version(), SNICACHE_VERSION) == 0);
    snicache_config_free(NULL);
    snicache_cache_free(NULL);
    snicache_hook_free_conn(NULL);
    snicache_hook_release_cache(NULL);
    messages();
    config_calls();
    cache_calls();
    return h_done("api");
}
