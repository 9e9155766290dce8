
/*
 * Shared by the http and stream modules (see ngx_snicache_common.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_snicache_common.h"


#define NGX_SNICACHE_SCOPE_VHOST    0
#define NGX_SNICACHE_SCOPE_LISTENER 1
#define NGX_SNICACHE_SCOPE_REMOTE   2
#define NGX_SNICACHE_SCOPE_SHM      3

typedef struct {
    const char                 *name;
    size_t                      offset;
    const char                 *type;
    ngx_uint_t                  scope;
    const char                 *help;
} ngx_snicache_metric_t;


static void ngx_snicache_key_cleanup(void *data);
static u_char *ngx_snicache_addrs(u_char *p, u_char *end,
    ngx_snicache_view_t *view, ngx_uint_t quoted);
static size_t ngx_snicache_addrs_len(ngx_snicache_view_t *view);


/* nginx's own info callback (ngx_ssl_info_callback), chained from ours. */
void (*ngx_snicache_next_info)(const ngx_ssl_conn_t *ssl_conn,
    int where, int ret);

#define ngx_snicache_stat(name, type, scope, help)                            \
    { #name, offsetof(snicache_stats, name), type, scope, help }
#define ngx_snicache_counter(name, help)                                      \
    { #name "_total", offsetof(snicache_stats, name), "counter",              \
      NGX_SNICACHE_SCOPE_VHOST, help }
#define ngx_snicache_listener(name, help)                                     \
    { #name "_total", offsetof(snicache_stats, name), "counter",              \
      NGX_SNICACHE_SCOPE_LISTENER, help }
#define ngx_snicache_remote(name, suffix, type, help)                         \
    { #name suffix, offsetof(snicache_stats, name), type,                     \
      NGX_SNICACHE_SCOPE_REMOTE, help }
#define ngx_snicache_shm(name, suffix, type, help)                            \
    { "shm_" #name suffix, offsetof(snicache_shm_health, name), type,         \
      NGX_SNICACHE_SCOPE_SHM, help }

/* Every family once; "refusals" is left out: it is the sum of refusals_by_reason. */
static ngx_snicache_metric_t  ngx_snicache_metrics[] = {
    ngx_snicache_counter(hits, "Sessions handed back for resumption"
                         " (session ids and tickets)."),
    ngx_snicache_counter(misses, "Offered session ids not found."),
    ngx_snicache_counter(stores, "Sessions stored."),
    ngx_snicache_counter(store_errors, "Sessions the store refused or"
                         " failed to store."),
    ngx_snicache_counter(evictions, "Sessions evicted to stay within the"
                         " memory bound."),
    ngx_snicache_counter(expirations, "Sessions found expired in the"
                         " store."),
    ngx_snicache_counter(corrupt, "Stored records or tickets that failed"
                         " to decode."),
    ngx_snicache_counter(bad_ids, "Offered session ids that were"
                         " unusable."),
    ngx_snicache_counter(invalidations, "Sessions invalidated after a"
                         " fatal alert."),
    ngx_snicache_counter(ticket_unknown_key, "Tickets naming a key this"
                         " vhost does not have."),
    ngx_snicache_counter(ticket_forged, "Tickets that failed"
                         " authentication."),
    ngx_snicache_counter(ticket_renewed, "Tickets accepted under a"
                         " decrypt-only key and renewed."),
    ngx_snicache_counter(pending, "Lookups the store answered"
                         " pending."),
    ngx_snicache_counter(early_data_accepted, "Early data accepted: the"
                         " ticket's single-use entry was taken."),
    ngx_snicache_counter(early_data_replayed, "Early data refused: the"
                         " ticket's entry was taken already or absent."),
    ngx_snicache_stat(entries, "gauge", NGX_SNICACHE_SCOPE_VHOST,
                           "Sessions in the store now."),
    ngx_snicache_stat(bytes, "gauge", NGX_SNICACHE_SCOPE_VHOST,
                           "Bytes the store charges now."),
    ngx_snicache_listener(unknown_sni, "ClientHellos naming no vhost"
                          " (default server, or refused with strict"
                          " SNI)."),
    ngx_snicache_listener(malformed_sni, "ClientHellos with a malformed"
                          " server_name (refused)."),
    ngx_snicache_remote(remote_hits, "_total", "counter", "Local misses the"
                        " remote store answered."),
    ngx_snicache_remote(remote_misses, "_total", "counter", "Local misses the"
                        " remote store did not have either."),
    ngx_snicache_remote(remote_timeouts, "_total", "counter", "Remote"
                        " operations cut off by their time budget."),
    ngx_snicache_remote(remote_errors, "_total", "counter", "Remote"
                        " operations that failed otherwise."),
    ngx_snicache_remote(remote_seal_failures, "_total", "counter", "Remote"
                        " records that failed to open."),
    ngx_snicache_remote(remote_breaker_state, "", "gauge", "Circuit breaker:"
                        " 0 closed, 1 open, 2 half-open."),
    ngx_snicache_remote(remote_breaker_trips, "_total", "counter", "Times the"
                        " circuit breaker opened."),
    ngx_snicache_remote(remote_breaker_skips, "_total", "counter", "Remote"
                        " operations skipped while the breaker was open."),
    ngx_snicache_remote(remote_writes, "_total", "counter", "Records written"
                        " to the remote store."),
    ngx_snicache_remote(remote_write_drops, "_total", "counter", "Remote"
                        " writes dropped."),
    ngx_snicache_remote(remote_fetches, "_total", "counter", "Background"
                        " fetches started for paused handshakes."),
    ngx_snicache_remote(remote_fetch_drops, "_total", "counter", "Lookups"
                        " that went on in full, too many fetches under"
                        " way."),
    ngx_snicache_shm(lock_timeouts, "_total", "counter", "Shared store lock waits"
                          " that timed out."),
    ngx_snicache_shm(lock_errors, "_total", "counter", "Shared store locks that"
                          " could not be taken."),
    ngx_snicache_shm(owner_dead, "_total", "counter", "Shared store locks taken"
                          " over from a dead process."),
    ngx_snicache_shm(repairs, "_total", "counter", "Shared store shards emptied"
                          " after inconsistency."),
    ngx_snicache_shm(corrupt, "_total", "counter", "Shared store entries dropped"
                          " on a checksum mismatch."),
    ngx_snicache_shm(mapped_bytes, "", "gauge", "Bytes of the shared store"
                          " mapping."),
    { NULL, 0, NULL, 0, NULL }
};

/* The built-in rules, in policy order. */
static const char  *ngx_snicache_reasons[] = {
    "vhost", "sni", "invalidated", "expired", "version", "cipher", "ems", NULL
};



/*
 * Reads a ticket key file: 32 to 80 bytes, nginx's 48- and 80-byte ssl_session_ticket_key
 * files among them, used whole as a snicache ticket master secret. The copy lives in the
 * configuration's pool and is zeroed with it.
 */
ngx_int_t
ngx_snicache_read_key(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, ngx_str_t *key)
{
    u_char              buf[80];
    size_t              size;
    ssize_t             n;
    ngx_file_t          file;
    ngx_file_info_t     fi;
    ngx_pool_cleanup_t *cln;

    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = *path;
    file.log = cf->log;

    file.fd = ngx_open_file(file.name.data, NGX_FILE_RDONLY,
                            NGX_FILE_OPEN, 0);

    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%s\": cannot open \"%V\"", directive, &file.name);
        return NGX_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%s\": cannot stat \"%V\"", directive, &file.name);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    if (size < 32 || size > 80) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" \"%V\" holds %uz bytes, it must hold 32 to"
                           " 80 bytes (nginx's ticket key files hold 48 or 80)",
                           directive, &file.name, size);
        goto failed;
    }

    n = ngx_read_file(&file, buf, size, 0);

    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "\"%s\": cannot read \"%V\"", directive, &file.name);
        goto failed;
    }

    if ((size_t) n != size) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\": \"%V\" changed while being read"
                           " (%z of %uz bytes)", directive, &file.name, n, size);
        goto failed;
    }

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(ngx_str_t));
    if (cln == NULL) {
        goto failed;
    }

    key->data = ngx_pnalloc(cf->pool, size);
    if (key->data == NULL) {
        goto failed;
    }

    ngx_memcpy(key->data, buf, size);
    key->len = size;

    cln->handler = ngx_snicache_key_cleanup;
    *(ngx_str_t *) cln->data = *key;

    ngx_explicit_memzero(buf, sizeof(buf));

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &file.name);
    }

    return NGX_OK;

failed:

    ngx_explicit_memzero(buf, sizeof(buf));

    if (ngx_close_file(file.fd) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_ALERT, cf->log, ngx_errno,
                      ngx_close_file_n " \"%V\" failed", &file.name);
    }

    return NGX_ERROR;
}


static void
ngx_snicache_key_cleanup(void *data)
{
    ngx_str_t  *key = data;

    ngx_explicit_memzero(key->data, key->len);
}


void
ngx_snicache_info_callback(const ngx_ssl_conn_t *ssl_conn, int where,
    int ret)
{
    if (ngx_snicache_next_info) {
        ngx_snicache_next_info(ssl_conn, where, ret);
    }

    if ((where & SSL_CB_ALERT) && ((ret >> 8) & 0xff) == SSL3_AL_FATAL) {
        snicache_on_info(ssl_conn, where, ret);
    }
}


/* refusals arrive at info, store errors at warn */

void
ngx_snicache_log(void *userdata, snicache_log_level level,
    const char *message, size_t len)
{
    ngx_uint_t  ngx_level;

    switch (level) {
    case SNICACHE_LOG_LEVEL_ERROR:
        ngx_level = NGX_LOG_ERR;
        break;
    case SNICACHE_LOG_LEVEL_WARN:
        ngx_level = NGX_LOG_WARN;
        break;
    case SNICACHE_LOG_LEVEL_INFO:
        ngx_level = NGX_LOG_INFO;
        break;
    default:
        ngx_level = NGX_LOG_DEBUG;
        break;
    }

    ngx_log_error(ngx_level, ngx_cycle->log, 0, "snicache: %*s",
                  len, (u_char *) message);
}



/* The addresses of a group as a label value or JSON list items: "a","b" or a,b. */

static u_char *
ngx_snicache_addrs(u_char *p, u_char *end, ngx_snicache_view_t *view,
    ngx_uint_t quoted)
{
    ngx_uint_t            i;
    ngx_snicache_addr_t  *addrs;

    addrs = view->addrs->elts;

    for (i = 0; i < view->addrs->nelts; i++) {
        p = ngx_slprintf(p, end, quoted ? "%s\"%V\"" : "%s%V",
                         i ? "," : "", &addrs[i].text);
    }

    return p;
}


static size_t
ngx_snicache_addrs_len(ngx_snicache_view_t *view)
{
    size_t                len;
    ngx_uint_t            i;
    ngx_snicache_addr_t  *addrs;

    addrs = view->addrs->elts;
    len = 0;

    for (i = 0; i < view->addrs->nelts; i++) {
        len += addrs[i].text.len + 3;
    }

    return len;
}


/*
 * {"listeners":[{"listen":["127.0.0.1:443"],"cache":{...}}, ...]}: one entry per group of
 * listen addresses, its cache's snicache_cache_stats_json.
 */
ngx_int_t
ngx_snicache_status_json(ngx_pool_t *pool, ngx_log_t *log, ngx_array_t *views,
    ngx_buf_t **out)
{
    u_char                      msg[256];
    size_t                      len, cap, need;
    ngx_buf_t                  *b;
    ngx_uint_t                  g, tries;
    snicache_result             rc;
    ngx_snicache_view_t        *view;

    view = views->elts;
    rc = SNICACHE_RESULT_OK;

    /* the counters may grow between the calls: leave room, retry */

    for (tries = 0; rc == SNICACHE_RESULT_OK && tries < 4; tries++) {

        need = sizeof("{\"listeners\":[]}\n");

        for (g = 0; g < views->nelts; g++) {
            rc = snicache_cache_stats_json(view[g].cache, NULL, 0, &len);
            if (rc != SNICACHE_RESULT_OK) {
                goto failed;
            }

            need += len + 1024 + ngx_snicache_addrs_len(&view[g])
                    + sizeof(",{\"listen\":[],\"cache\":}");
        }

        b = ngx_create_temp_buf(pool, need);
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->last = ngx_cpymem(b->last, "{\"listeners\":[",
                             sizeof("{\"listeners\":[") - 1);

        for (g = 0; g < views->nelts; g++) {
            b->last = ngx_slprintf(b->last, b->end, "%s{\"listen\":[",
                                   g ? "," : "");
            b->last = ngx_snicache_addrs(b->last, b->end, &view[g], 1);
            b->last = ngx_slprintf(b->last, b->end, "],\"cache\":");

            cap = b->end - b->last;
            rc = snicache_cache_stats_json(view[g].cache, (char *) b->last,
                                           cap, &len);
            if (rc != SNICACHE_RESULT_OK) {
                break;
            }

            b->last += len;

            if ((size_t) (b->end - b->last) < 8) {
                rc = SNICACHE_RESULT_BUFFER_TOO_SMALL;
                break;
            }

            *b->last++ = '}';
        }

        if (rc == SNICACHE_RESULT_OK) {
            *b->last++ = ']';
            *b->last++ = '}';
            *b->last++ = '\n';
            *out = b;
            return NGX_OK;
        }

        if (rc == SNICACHE_RESULT_BUFFER_TOO_SMALL) {
            rc = SNICACHE_RESULT_OK;
        }
    }

failed:

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "snicache_status: %s",
                  ngx_snicache_message(rc, msg, sizeof(msg)));

    return NGX_ERROR;
}


/*
 * Prometheus text format 0.0.4: every family once with HELP and TYPE, then its samples for
 * every group ("listen" label: the group's addresses) and vhost. Per vhost: the snicache_stats
 * counters (refusals only by reason, not also summed), per group: the listener counters, the
 * Redis counters (redis:// stores) and the shm health counters (shm: stores).
 */
ngx_int_t
ngx_snicache_status_prometheus(ngx_pool_t *pool, ngx_log_t *log,
    ngx_array_t *views, ngx_buf_t **out)
{
    u_char                        msg[256];
    size_t                        size;
    uint64_t                      count;
    ngx_buf_t                    *b;
    ngx_str_t                    *names;
    ngx_uint_t                    g, v, k, n, *shm, any_shm;
    u_char                       *base;
    snicache_stats              **stats, *totals;
    snicache_result               rc;
    snicache_shm_health          *health;
    ngx_snicache_view_t          *view, *group;
    ngx_snicache_metric_t   *metric;

    view = views->elts;

    stats = ngx_pcalloc(pool, views->nelts * sizeof(snicache_stats *));
    totals = ngx_pcalloc(pool, views->nelts * sizeof(snicache_stats));
    health = ngx_pcalloc(pool,
                         views->nelts * sizeof(snicache_shm_health));
    shm = ngx_pcalloc(pool, views->nelts * sizeof(ngx_uint_t));
    if (stats == NULL || totals == NULL || health == NULL || shm == NULL) {
        return NGX_ERROR;
    }

    size = 0;
    n = 0;
    any_shm = 0;

    for (g = 0; g < views->nelts; g++) {
        group = &view[g];
        names = group->names->elts;

        stats[g] = ngx_palloc(pool,
                              (group->names->nelts + 1) * sizeof(snicache_stats));
        if (stats[g] == NULL) {
            return NGX_ERROR;
        }

        for (v = 0; v < group->names->nelts; v++) {
            rc = snicache_cache_stats(group->cache, (const char *) names[v].data,
                                      &stats[g][v]);
            if (rc != SNICACHE_RESULT_OK) {
                ngx_log_error(NGX_LOG_ERR, log, 0,
                         "snicache_status: vhost \"%V\": %s", &names[v],
                              ngx_snicache_message(rc, msg, sizeof(msg)));
                return NGX_ERROR;
            }

            size += names[v].len + ngx_snicache_addrs_len(group);
        }

        rc = snicache_cache_stats(group->cache, NULL, &totals[g]);
        if (rc != SNICACHE_RESULT_OK) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "snicache_status: %s",
                          ngx_snicache_message(rc, msg, sizeof(msg)));
            return NGX_ERROR;
        }

        shm[g] = snicache_shm_health_get(group->cache, &health[g])
                 == SNICACHE_RESULT_OK;
        any_shm |= shm[g];

        n += group->names->nelts;
        size += ngx_snicache_addrs_len(group);
    }

    /* each sample: name, labels, a 20-digit number; HELP and TYPE lines per family */
    size = size * 32 + (n + views->nelts) * 64 * 160 + 64 * 256;

    b = ngx_create_temp_buf(pool, size);
    if (b == NULL) {
        return NGX_ERROR;
    }

    for (metric = ngx_snicache_metrics; metric->name; metric++) {

        if (metric->scope == NGX_SNICACHE_SCOPE_SHM) {
            if (!any_shm) {
                continue;
            }

        } else if (metric->scope == NGX_SNICACHE_SCOPE_REMOTE) {
            for (g = 0; g < views->nelts; g++) {
                if (view[g].remote) {
                    break;
                }
            }

            if (g == views->nelts) {
                continue;
            }
        }

        b->last = ngx_slprintf(b->last, b->end,
                          "# HELP snicache_%s %s\n# TYPE snicache_%s %s\n",
                               metric->name, metric->help, metric->name,
                               metric->type);

        for (g = 0; g < views->nelts; g++) {
            group = &view[g];
            names = group->names->elts;

            if (metric->scope == NGX_SNICACHE_SCOPE_VHOST) {
                for (v = 0; v < group->names->nelts; v++) {
                    count = *(uint64_t *) ((u_char *) &stats[g][v]
                                           + metric->offset);
                    b->last = ngx_slprintf(b->last, b->end,
                                           "snicache_%s{listen=\"", metric->name);
                    b->last = ngx_snicache_addrs(b->last, b->end, group, 0);
                    b->last = ngx_slprintf(b->last, b->end,
                                           "\",vhost=\"%V\"} %uL\n",
                                           &names[v], count);
                }

                continue;
            }

            /* listener, remote and shm families: one sample per group */

            if (metric->scope == NGX_SNICACHE_SCOPE_SHM) {
                if (!shm[g]) {
                    continue;
                }

                base = (u_char *) &health[g];

            } else if (metric->scope == NGX_SNICACHE_SCOPE_REMOTE
                       && !group->remote)
            {
                continue;

            } else {
                base = (u_char *) &totals[g];
            }

            count = *(uint64_t *) (base + metric->offset);

            b->last = ngx_slprintf(b->last, b->end,
                                   "snicache_%s{listen=\"", metric->name);
            b->last = ngx_snicache_addrs(b->last, b->end, group, 0);
            b->last = ngx_slprintf(b->last, b->end, "\"} %uL\n", count);
        }
    }

    b->last = ngx_slprintf(b->last, b->end,
                           "# HELP snicache_refusals_by_reason_total Resumptions"
                           " refused by a policy rule, by rule.\n"
                           "# TYPE snicache_refusals_by_reason_total counter\n");

    for (g = 0; g < views->nelts; g++) {
        group = &view[g];
        names = group->names->elts;

        for (v = 0; v < group->names->nelts; v++) {
            for (k = 0; ngx_snicache_reasons[k]; k++) {
                rc = snicache_cache_refusals(group->cache,
                                             (const char *) names[v].data,
                                             ngx_snicache_reasons[k],
                                             &count);
                if (rc != SNICACHE_RESULT_OK) {
                    continue;
                }

                b->last = ngx_slprintf(b->last, b->end,
                                       "snicache_refusals_by_reason_total"
                                       "{listen=\"");
                b->last = ngx_snicache_addrs(b->last, b->end, group, 0);
                b->last = ngx_slprintf(b->last, b->end,
                                       "\",vhost=\"%V\",reason=\"%s\"} %uL\n",
                                       &names[v], ngx_snicache_reasons[k],
                                       count);
            }
        }
    }

    if (b->last == b->end) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "snicache_status: prometheus text truncated");
        return NGX_ERROR;
    }

    *out = b;

    return NGX_OK;
}


/* The first key seals, the others only open tickets; rotation 0 keeps snicache's default. */

snicache_result
ngx_snicache_set_ticket_keys(snicache_config *config, ngx_array_t *keys,
    time_t rotation)
{
    ngx_str_t        *key;
    ngx_uint_t        k;
    snicache_result   rc;

    key = keys ? keys->elts : NULL;

    if (key == NULL && rotation == 0) {
        return SNICACHE_RESULT_OK;
    }

    /* NULL: a random secret per cache, drawn in the master, shared by the workers */
    rc = snicache_config_set_ticket_keys(config, key ? key[0].data : NULL,
                                         key ? key[0].len : 0,
                                         (uint32_t) rotation);

    for (k = 1; key && k < keys->nelts && rc == SNICACHE_RESULT_OK; k++) {
        rc = snicache_config_add_ticket_secret(config, key[k].data, key[k].len);
    }

    return rc;
}


ngx_uint_t
ngx_snicache_store_is_remote(ngx_str_t *store)
{
    return store->len >= 5 && ngx_strncmp(store->data, "redis", 5) == 0;
}


u_char *
ngx_snicache_message(snicache_result rc, u_char *buf, size_t len)
{
    if (snicache_result_message(rc, (char *) buf, len) == 0) {
        ngx_snprintf(buf, len - 1, "snicache error %ui%Z", (ngx_uint_t) rc);
        buf[len - 1] = '\0';
    }

    return buf;
}


/* The stream module's views, found by name: the http module does not link against it. */

ngx_snicache_views_t *
ngx_snicache_stream_views(ngx_cycle_t *cycle)
{
    void        ***ctx;
    ngx_uint_t     i;
    ngx_module_t  *stream, *snicache;

    stream = NULL;
    snicache = NULL;

    for (i = 0; cycle->modules[i]; i++) {
        if (cycle->modules[i]->name == NULL) {
            continue;
        }

        if (ngx_strcmp(cycle->modules[i]->name, "ngx_stream_module") == 0) {
            stream = cycle->modules[i];

        } else if (ngx_strcmp(cycle->modules[i]->name,
                         "ngx_stream_snicache_module")
                   == 0)
        {
            snicache = cycle->modules[i];
        }
    }

    if (stream == NULL || snicache == NULL
        || cycle->conf_ctx[stream->index] == NULL)
    {
        return NULL;
    }

    /* ngx_stream_conf_ctx_t: main_conf first */
    ctx = (void ***) cycle->conf_ctx[stream->index];

    return (*ctx)[snicache->ctx_index];
}
