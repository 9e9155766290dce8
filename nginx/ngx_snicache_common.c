
/*
 * Shared by the http and stream modules (see ngx_snicache_common.h).
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_snicache_common.h"


/* the groups of snicache.h's SNICACHE_*_FIELDS */
#define NGX_SNICACHE_SCOPE_vhost     0
#define NGX_SNICACHE_SCOPE_refusals  1
#define NGX_SNICACHE_SCOPE_listener  2
#define NGX_SNICACHE_SCOPE_remote    3
#define NGX_SNICACHE_SCOPE_shm       4

/* Prometheus family names: refusals are shown by reason; counters end in _total */
#define NGX_SNICACHE_INFIX_vhost     ""
#define NGX_SNICACHE_INFIX_refusals  "_by_reason"
#define NGX_SNICACHE_INFIX_listener  ""
#define NGX_SNICACHE_INFIX_remote    ""

#define NGX_SNICACHE_SUFFIX_counter  "_total"
#define NGX_SNICACHE_SUFFIX_gauge    ""

typedef struct {
    const char                 *name;
    size_t                      offset;
    const char                 *type;
    ngx_uint_t                  scope;
    const char                 *help;
} ngx_snicache_metric_t;


static char *ngx_snicache_check_time(ngx_conf_t *cf, void *post, void *data);
static void ngx_snicache_key_cleanup(void *data);
static void ngx_snicache_info_callback(const ngx_ssl_conn_t *ssl_conn,
    int where, int ret);
static void ngx_snicache_cleanup(void *data);
static u_char *ngx_snicache_addrs(u_char *p, u_char *end,
    ngx_snicache_view_t *view, ngx_uint_t quoted);
static size_t ngx_snicache_addrs_len(ngx_snicache_view_t *view);


/* nginx's own info callback (ngx_ssl_info_callback), chained from ours. */
static void (*ngx_snicache_next_info)(const ngx_ssl_conn_t *ssl_conn,
    int where, int ret);


ngx_conf_num_bounds_t  ngx_snicache_timeout_bounds = {
    ngx_snicache_check_time, 1, NGX_SNICACHE_MAX_TIMEOUT
};

ngx_conf_num_bounds_t  ngx_snicache_rotation_bounds = {
    ngx_snicache_check_time, 1, NGX_SNICACHE_MAX_ROTATION
};

/*
 * Every family once, from snicache.h's field lists; the refusals field is shown by reason only
 * (refusals_by_reason_total), as its sum would repeat the same data.
 */
#define ngx_snicache_stat(group, name, type, help)                            \
    { #name NGX_SNICACHE_INFIX_##group NGX_SNICACHE_SUFFIX_##type,            \
      offsetof(snicache_stats, name), #type, NGX_SNICACHE_SCOPE_##group, help },
#define ngx_snicache_shm(name, type, help)                                    \
    { "shm_" #name NGX_SNICACHE_SUFFIX_##type,                               \
      offsetof(snicache_shm_health, name), #type, NGX_SNICACHE_SCOPE_shm, help },

static ngx_snicache_metric_t  ngx_snicache_metrics[] = {
    SNICACHE_STATS_FIELDS(ngx_snicache_stat)
    SNICACHE_SHM_HEALTH_FIELDS(ngx_snicache_shm)
    { NULL, 0, NULL, 0, NULL }
};

#define ngx_snicache_rule(name, help)  #name,

/* The built-in rules, in policy order. */
static const char  *ngx_snicache_reasons[] = {
    SNICACHE_RULES(ngx_snicache_rule)
    NULL
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


void *
ngx_snicache_create_srv_conf(ngx_conf_t *cf)
{
    ngx_snicache_srv_conf_t  *sscf;

    sscf = ngx_pcalloc(cf->pool, sizeof(ngx_snicache_srv_conf_t));
    if (sscf == NULL) {
        return NULL;
    }

    sscf->enable = NGX_CONF_UNSET;
    sscf->timeout = NGX_CONF_UNSET;

    return sscf;
}


char *
ngx_snicache_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_snicache_srv_conf_t *prev = parent;
    ngx_snicache_srv_conf_t *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    /* unset: the server's ssl_session_timeout (see ngx_snicache_vhost_timeout) */
    ngx_conf_merge_value(conf->timeout, prev->timeout, NGX_CONF_UNSET);

    return NGX_CONF_OK;
}


/* returned strings are printed after the directive's name by nginx */

static char *
ngx_snicache_check_time(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t *bounds = post;
    time_t *tp = data;

    if (*tp >= bounds->low && *tp <= bounds->high) {
        return NGX_CONF_OK;
    }

    return bounds->high == NGX_SNICACHE_MAX_TIMEOUT
           ? "must be between 1s and 24h (RFC 5246 F.1.4)"
           : "must be between 1s and 7d";
}


/* "snicache_store": an ngx_str_t at cmd->offset, checked by snicache now, so nginx -t reports it */

char *
ngx_snicache_conf_set_store_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    u_char           msg[256];
    ngx_str_t       *store, *value;
    snicache_result  rc;
    snicache_config *config;

    store = (ngx_str_t *) ((char *) conf + cmd->offset);

    if (store->data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rc = ngx_snicache_config_new(&value[1], NULL, 0, &config);

    snicache_config_free(config);

    if (rc != SNICACHE_RESULT_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" value \"%V\" refused: %s",
                           &cmd->name, &value[1],
                           ngx_snicache_message(rc, msg, sizeof(msg)));
        return NGX_CONF_ERROR;
    }

    *store = value[1];

    return NGX_CONF_OK;
}


/* "snicache_ticket_key_file", repeatable: the keys in an ngx_array_t * at cmd->offset */

char *
ngx_snicache_conf_set_key_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t     *value, *key;
    ngx_array_t  **keys;

    keys = (ngx_array_t **) ((char *) conf + cmd->offset);
    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (*keys == NULL) {
        *keys = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (*keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    key = ngx_array_push(*keys);
    if (key == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_snicache_read_key(cf, (const char *) cmd->name.data, &value[1],
                              key)
        != NGX_OK)
    {
        (*keys)->nelts--;
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The ticket master secrets of a server (in file:line) whose ssl_session_ticket_key files are
 * paths (NULL: none): snicache_ticket_key_file's (main_keys) when set, which win over the
 * server's files with a warning, else the server's files read now (first seals), else none
 * (*keys stays NULL: a random secret per cache).
 */
ngx_int_t
ngx_snicache_ticket_keys(ngx_conf_t *cf, ngx_array_t *main_keys,
    ngx_array_t *paths, u_char *file, ngx_uint_t line, ngx_array_t **keys)
{
    ngx_str_t   *path, *key;
    ngx_uint_t   k;

    if (main_keys) {
        if (paths) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "\"snicache\": \"ssl_session_ticket_key\" of the"
                          " server in %s:%ui is ignored:"
                          " \"snicache_ticket_key_file\" is set",
                          file, line);
        }

        *keys = main_keys;
        return NGX_OK;
    }

    if (paths == NULL) {
        return NGX_OK;
    }

    *keys = ngx_array_create(cf->pool, paths->nelts, sizeof(ngx_str_t));
    if (*keys == NULL) {
        return NGX_ERROR;
    }

    path = paths->elts;

    for (k = 0; k < paths->nelts; k++) {
        key = ngx_array_push(*keys);
        if (key == NULL) {
            return NGX_ERROR;
        }

        if (ngx_conf_full_name(cf->cycle, &path[k], 1) != NGX_OK
            || ngx_snicache_read_key(cf, "ssl_session_ticket_key", &path[k],
                                     key)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
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

        if (metric->scope == NGX_SNICACHE_SCOPE_shm) {
            if (!any_shm) {
                continue;
            }

        } else if (metric->scope == NGX_SNICACHE_SCOPE_remote) {
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

            if (metric->scope == NGX_SNICACHE_SCOPE_vhost) {
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

            if (metric->scope == NGX_SNICACHE_SCOPE_refusals) {
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
                                               "snicache_%s{listen=\"",
                                               metric->name);
                        b->last = ngx_snicache_addrs(b->last, b->end, group, 0);
                        b->last = ngx_slprintf(b->last, b->end,
                                       "\",vhost=\"%V\",reason=\"%s\"} %uL\n",
                                       &names[v], ngx_snicache_reasons[k],
                                       count);
                    }
                }

                continue;
            }

            /* listener, remote and shm families: one sample per group */

            if (metric->scope == NGX_SNICACHE_SCOPE_shm) {
                if (!shm[g]) {
                    continue;
                }

                base = (u_char *) &health[g];

            } else if (metric->scope == NGX_SNICACHE_SCOPE_remote
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


/* The ports are in the configuration's temporary pool: a copy of a listen address. */

ngx_int_t
ngx_snicache_add_addr(ngx_pool_t *pool, ngx_array_t *addrs,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *text)
{
    ngx_snicache_addr_t  *addr;

    addr = ngx_array_push(addrs);
    if (addr == NULL) {
        return NGX_ERROR;
    }

    addr->socklen = socklen;
    addr->sockaddr = ngx_pnalloc(pool, socklen);
    addr->text.len = text->len;
    addr->text.data = ngx_pnalloc(pool, text->len);

    if (addr->sockaddr == NULL || addr->text.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(addr->sockaddr, sockaddr, socklen);
    ngx_memcpy(addr->text.data, text->data, text->len);

    return NGX_OK;
}


/*
 * A snicache config with what every cache of both modules has: the store (store->data NULL:
 * snicache's default), nginx's error log, the ticket secrets. On failure *config may still
 * hold a config: snicache_config_free() it either way.
 */
snicache_result
ngx_snicache_config_new(ngx_str_t *store, ngx_array_t *ticket_keys,
    time_t rotation, snicache_config **config)
{
    snicache_result   rc;
    snicache_ssl_api  api;

    snicache_ssl_api_init(&api);

    *config = NULL;
    rc = snicache_config_new(&api, config);

    if (rc == SNICACHE_RESULT_OK && store->data) {
        rc = snicache_config_set_store(*config, (const char *) store->data);
    }

    if (rc == SNICACHE_RESULT_OK) {
        rc = snicache_config_set_log(*config, ngx_snicache_log, NULL,
                                     SNICACHE_LOG_LEVEL_INFO);
    }

    if (rc == SNICACHE_RESULT_OK) {
        rc = ngx_snicache_set_ticket_keys(*config, ticket_keys, rotation);
    }

    return rc;
}


/*
 * A vhost's session lifetime: snicache_timeout when set (timeout), which OpenSSL's own check
 * of the context is made to agree with, else the server's ssl_session_timeout, at most 24h.
 */
uint32_t
ngx_snicache_vhost_timeout(SSL_CTX *ctx, time_t timeout, time_t session_timeout)
{
    if (timeout != NGX_CONF_UNSET) {
        SSL_CTX_set_timeout(ctx, (long) timeout);

    } else {
        timeout = ngx_min(session_timeout, NGX_SNICACHE_MAX_TIMEOUT);
    }

    return (uint32_t) ngx_max(timeout, 0);
}


/* "ssl_session_cache off": no session ids, no stateful TLS 1.3 sessions */

uint32_t
ngx_snicache_vhost_flags(ssize_t builtin_session_cache)
{
    return builtin_session_cache == NGX_SSL_NO_SCACHE
           ? SNICACHE_VHOST_NO_STORE : 0;
}


/*
 * Puts the module's info callback on a context, calling the one nginx set there
 * (ngx_ssl_info_callback: handshake buffer size, renegotiation); NGX_DECLINED when the
 * context has another callback than nginx's on its other contexts.
 */
ngx_int_t
ngx_snicache_chain_info(SSL_CTX *ctx)
{
    void  (*cb)(const ngx_ssl_conn_t *ssl_conn, int where, int ret);

    cb = SSL_CTX_get_info_callback(ctx);

    if (cb == ngx_snicache_info_callback) {
        return NGX_OK;
    }

    if (ngx_snicache_next_info == NULL) {
        ngx_snicache_next_info = cb;

    } else if (cb != ngx_snicache_next_info) {
        return NGX_DECLINED;
    }

    SSL_CTX_set_info_callback(ctx, ngx_snicache_info_callback);

    return NGX_OK;
}


/* Frees *cache with the cycle's pool; frees it now if that cannot be arranged. */

ngx_int_t
ngx_snicache_add_cleanup(ngx_pool_t *pool, const snicache_cache **cache)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        snicache_cache_free(*cache);
        *cache = NULL;
        return NGX_ERROR;
    }

    cln->handler = ngx_snicache_cleanup;
    cln->data = cache;

    return NGX_OK;
}


static void
ngx_snicache_cleanup(void *data)
{
    const snicache_cache  **cache = data;

    /* the attached SSL_CTXs hold their own references until they are freed */
    snicache_cache_free(*cache);
    *cache = NULL;
}
