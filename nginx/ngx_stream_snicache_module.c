
/*
 * ngx_stream_snicache_module: hands the server-side TLS session resumption of nginx's stream
 * servers (TLS termination of TCP, "listen ... ssl") to snicache, with snicache's policy on
 * every resumption. Stream servers have no server_name (nginx 1.22): each server is one
 * snicache vhost, the default of its listen addresses, and snicache's "sni" rule binds every
 * session to the exact SNI it was made under, so a session never resumes under another name,
 * also when "ssl_certificate" holds variables and one server serves several names (stock
 * nginx resumes across them).
 *
 * Directives (stream{} main and server), with the meaning they have in the http module
 * (docs/nginx.md):
 *
 *   snicache on|off;                   stream, server
 *   snicache_store memory:SIZE | shm:SIZE | redis://HOST:PORT;   stream (default shm:10m)
 *   snicache_timeout TIME;             stream, server (default: ssl_session_timeout)
 *   snicache_ticket_key_file PATH;     stream, repeatable (default: ssl_session_ticket_key)
 *   snicache_ticket_rotation TIME;     stream
 *
 * The http module's "snicache_status" location shows these caches too.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_stream.h>

#include "snicache_ssl.h"
#include "ngx_snicache_common.h"


#define NGX_STREAM_SNICACHE_MAX_TIMEOUT    86400
#define NGX_STREAM_SNICACHE_MAX_ROTATION   (7 * 86400)

#define NGX_STREAM_SNICACHE_NONAME         "default.snicache.invalid"


/* One "snicache on" server with SSL: its listen addresses, vhost and cache. */
typedef struct {
    ngx_stream_core_srv_conf_t  *server;
    ngx_array_t                  names;      /* ngx_str_t */
    ngx_array_t                  addrs;      /* ngx_snicache_addr_t */
    ngx_array_t                 *ticket_keys;
} ngx_stream_snicache_group_t;


typedef struct {
    ngx_snicache_views_t         views;      /* first: read by the http status location */
    ngx_array_t                  groups;     /* ngx_stream_snicache_group_t * */
    ngx_str_t                    store;
    ngx_array_t                 *ticket_keys;
    time_t                       ticket_rotation;
} ngx_stream_snicache_main_conf_t;


typedef struct {
    ngx_flag_t                   enable;
    time_t                       timeout;
} ngx_stream_snicache_srv_conf_t;


static void *ngx_stream_snicache_create_main_conf(ngx_conf_t *cf);
static char *ngx_stream_snicache_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_stream_snicache_create_srv_conf(ngx_conf_t *cf);
static char *ngx_stream_snicache_merge_srv_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_stream_snicache_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_stream_snicache_init_module(ngx_cycle_t *cycle);
static char *ngx_stream_snicache_check_time(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_stream_snicache_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_stream_snicache_ticket_key_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_stream_snicache_group_keys(ngx_conf_t *cf,
    ngx_stream_snicache_main_conf_t *smcf, ngx_stream_snicache_group_t *group);
static ngx_int_t ngx_stream_snicache_group_init(ngx_cycle_t *cycle,
    ngx_stream_snicache_main_conf_t *smcf, ngx_stream_snicache_group_t *group);
static void ngx_stream_snicache_cleanup(void *data);


static ngx_conf_num_bounds_t  ngx_stream_snicache_timeout_bounds = {
    ngx_stream_snicache_check_time, 1, NGX_STREAM_SNICACHE_MAX_TIMEOUT
};

static ngx_conf_num_bounds_t  ngx_stream_snicache_rotation_bounds = {
    ngx_stream_snicache_check_time, 1, NGX_STREAM_SNICACHE_MAX_ROTATION
};


static ngx_command_t  ngx_stream_snicache_commands[] = {

    { ngx_string("snicache"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_snicache_srv_conf_t, enable),
      NULL },

    { ngx_string("snicache_store"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_snicache_store,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("snicache_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_stream_snicache_srv_conf_t, timeout),
      &ngx_stream_snicache_timeout_bounds },

    { ngx_string("snicache_ticket_key_file"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_stream_snicache_ticket_key_file,
      NGX_STREAM_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("snicache_ticket_rotation"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_snicache_main_conf_t, ticket_rotation),
      &ngx_stream_snicache_rotation_bounds },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_snicache_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_stream_snicache_postconfiguration, /* postconfiguration */

    ngx_stream_snicache_create_main_conf,  /* create main configuration */
    ngx_stream_snicache_init_main_conf,    /* init main configuration */

    ngx_stream_snicache_create_srv_conf,   /* create server configuration */
    ngx_stream_snicache_merge_srv_conf     /* merge server configuration */
};


ngx_module_t  ngx_stream_snicache_module = {
    NGX_MODULE_V1,
    &ngx_stream_snicache_module_ctx,       /* module context */
    ngx_stream_snicache_commands,          /* module directives */
    NGX_STREAM_MODULE,                     /* module type */
    NULL,                                  /* init master */
    ngx_stream_snicache_init_module,       /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_stream_snicache_create_main_conf(ngx_conf_t *cf)
{
    ngx_stream_snicache_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_snicache_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     smcf->store = { 0, NULL };
     *     smcf->ticket_keys = NULL;
     */

    smcf->ticket_rotation = NGX_CONF_UNSET;

    if (ngx_array_init(&smcf->views.views, cf->pool, 2,
                       sizeof(ngx_snicache_view_t))
        != NGX_OK
        || ngx_array_init(&smcf->groups, cf->pool, 2,
                          sizeof(ngx_stream_snicache_group_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return smcf;
}


static char *
ngx_stream_snicache_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_stream_snicache_main_conf_t *smcf = conf;

    ngx_conf_init_value(smcf->ticket_rotation, 0);

    /* shared by the workers, as the http module's default */
    if (smcf->store.data == NULL) {
        ngx_str_set(&smcf->store, "shm:10m");
    }

    return NGX_CONF_OK;
}


static void *
ngx_stream_snicache_create_srv_conf(ngx_conf_t *cf)
{
    ngx_stream_snicache_srv_conf_t  *sscf;

    sscf = ngx_pcalloc(cf->pool, sizeof(ngx_stream_snicache_srv_conf_t));
    if (sscf == NULL) {
        return NULL;
    }

    sscf->enable = NGX_CONF_UNSET;
    sscf->timeout = NGX_CONF_UNSET;

    return sscf;
}


static char *
ngx_stream_snicache_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_stream_snicache_srv_conf_t *prev = parent;
    ngx_stream_snicache_srv_conf_t *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);

    /* unset: the server's ssl_session_timeout */
    ngx_conf_merge_value(conf->timeout, prev->timeout, NGX_CONF_UNSET);

    return NGX_CONF_OK;
}


static char *
ngx_stream_snicache_check_time(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t *bounds = post;
    time_t *tp = data;

    if (*tp >= bounds->low && *tp <= bounds->high) {
        return NGX_CONF_OK;
    }

    return bounds->high == NGX_STREAM_SNICACHE_MAX_TIMEOUT
           ? "must be between 1s and 24h (RFC 5246 F.1.4)"
           : "must be between 1s and 7d";
}


static char *
ngx_stream_snicache_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_stream_snicache_main_conf_t *smcf = conf;

    u_char             msg[256];
    ngx_str_t         *value;
    snicache_result    rc;
    snicache_config   *config;
    snicache_ssl_api   api;

    if (smcf->store.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* snicache parses the specification itself: ask it now, so nginx -t reports it */

    snicache_ssl_api_init(&api);

    config = NULL;
    rc = snicache_config_new(&api, &config);

    if (rc == SNICACHE_RESULT_OK) {
        rc = snicache_config_set_store(config, (const char *) value[1].data);
    }

    snicache_config_free(config);

    if (rc != SNICACHE_RESULT_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"snicache_store\" value \"%V\" refused: %s",
                           &value[1], ngx_snicache_message(rc, msg, sizeof(msg)));
        return NGX_CONF_ERROR;
    }

    smcf->store = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_stream_snicache_ticket_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_stream_snicache_main_conf_t *smcf = conf;

    ngx_str_t  *value, *key;

    value = cf->args->elts;

    if (ngx_conf_full_name(cf->cycle, &value[1], 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (smcf->ticket_keys == NULL) {
        smcf->ticket_keys = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (smcf->ticket_keys == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    key = ngx_array_push(smcf->ticket_keys);
    if (key == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_snicache_read_key(cf, "snicache_ticket_key_file", &value[1], key)
        != NGX_OK)
    {
        smcf->ticket_keys->nelts--;
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* One group per "snicache on" server listening with ssl, with every such listen address. */

static ngx_int_t
ngx_stream_snicache_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                        l, g;
    ngx_stream_listen_t              *listen;
    ngx_snicache_addr_t              *addr;
    ngx_stream_core_srv_conf_t       *cscf;
    ngx_stream_core_main_conf_t      *cmcf;
    ngx_stream_snicache_group_t      *group, **groups;
    ngx_stream_snicache_srv_conf_t   *sconf;
    ngx_stream_snicache_main_conf_t  *smcf;

    cmcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_core_module);
    smcf = ngx_stream_conf_get_module_main_conf(cf, ngx_stream_snicache_module);

    listen = cmcf->listen.elts;

    for (l = 0; l < cmcf->listen.nelts; l++) {

        sconf = listen[l].ctx->srv_conf[ngx_stream_snicache_module.ctx_index];

        if (!listen[l].ssl || !sconf->enable) {
            continue;
        }

        cscf = listen[l].ctx->srv_conf[ngx_stream_core_module.ctx_index];

        groups = smcf->groups.elts;
        group = NULL;

        for (g = 0; g < smcf->groups.nelts; g++) {
            if (groups[g]->server == cscf) {
                group = groups[g];
                break;
            }
        }

        if (group == NULL) {
            group = ngx_pcalloc(cf->pool, sizeof(ngx_stream_snicache_group_t));
            if (group == NULL) {
                return NGX_ERROR;
            }

            group->server = cscf;

            if (ngx_array_init(&group->names, cf->pool, 1, sizeof(ngx_str_t))
                != NGX_OK
                || ngx_array_init(&group->addrs, cf->pool, 1,
                                  sizeof(ngx_snicache_addr_t))
                   != NGX_OK)
            {
                return NGX_ERROR;
            }

            groups = ngx_array_push(&smcf->groups);
            if (groups == NULL) {
                return NGX_ERROR;
            }

            *groups = group;

            if (ngx_stream_snicache_group_keys(cf, smcf, group) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        addr = ngx_array_push(&group->addrs);
        if (addr == NULL) {
            return NGX_ERROR;
        }

        addr->socklen = listen[l].socklen;
        addr->sockaddr = ngx_pnalloc(cf->pool, listen[l].socklen);
        addr->text.len = listen[l].addr_text.len;
        addr->text.data = ngx_pnalloc(cf->pool, addr->text.len);

        if (addr->sockaddr == NULL || addr->text.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(addr->sockaddr, listen[l].sockaddr, addr->socklen);
        ngx_memcpy(addr->text.data, listen[l].addr_text.data, addr->text.len);
    }

    return NGX_OK;
}


/* snicache_ticket_key_file, else the server's ssl_session_ticket_key files: first seals */

static ngx_int_t
ngx_stream_snicache_group_keys(ngx_conf_t *cf,
    ngx_stream_snicache_main_conf_t *smcf, ngx_stream_snicache_group_t *group)
{
    ngx_str_t              *path, *key;
    ngx_uint_t              k;
    ngx_array_t            *paths;
    ngx_stream_ssl_conf_t  *sslcf;

    sslcf = group->server->ctx->srv_conf[ngx_stream_ssl_module.ctx_index];
    paths = sslcf->session_ticket_keys;

    if (paths == NGX_CONF_UNSET_PTR) {
        paths = NULL;
    }

    if (smcf->ticket_keys) {
        if (paths) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "\"snicache\": \"ssl_session_ticket_key\" of the"
                          " server in %s:%ui is ignored:"
                          " \"snicache_ticket_key_file\" is set",
                          group->server->file_name, group->server->line);
        }

        group->ticket_keys = smcf->ticket_keys;
        return NGX_OK;
    }

    if (paths == NULL) {
        return NGX_OK;
    }

    group->ticket_keys = ngx_array_create(cf->pool, paths->nelts,
                                          sizeof(ngx_str_t));
    if (group->ticket_keys == NULL) {
        return NGX_ERROR;
    }

    path = paths->elts;

    for (k = 0; k < paths->nelts; k++) {
        key = ngx_array_push(group->ticket_keys);
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


/* In the master before the workers are forked (and for "nginx -t"), as the http module. */

static ngx_int_t
ngx_stream_snicache_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t                        g;
    ngx_stream_snicache_group_t     **groups;
    ngx_stream_snicache_main_conf_t  *smcf;

    if (cycle->conf_ctx[ngx_stream_module.index] == NULL) {
        return NGX_OK;
    }

    smcf = ngx_stream_cycle_get_module_main_conf(cycle,
                                                 ngx_stream_snicache_module);
    if (smcf == NULL) {
        return NGX_OK;
    }

    groups = smcf->groups.elts;

    for (g = 0; g < smcf->groups.nelts; g++) {
        if (ngx_stream_snicache_group_init(cycle, smcf, groups[g]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_stream_snicache_group_init(ngx_cycle_t *cycle,
    ngx_stream_snicache_main_conf_t *smcf, ngx_stream_snicache_group_t *group)
{
    u_char                           msg[256];
    time_t                           timeout;
    SSL_CTX                         *ctx;
    uint32_t                         flags;
    ngx_str_t                       *name;
    snicache_result                  rc;
    snicache_config                 *config;
    snicache_ssl_api                 api;
    ngx_pool_cleanup_t              *cln;
    ngx_snicache_view_t             *view;
    const snicache_cache            *cache;
    ngx_stream_ssl_conf_t           *sslcf;
    ngx_stream_snicache_srv_conf_t  *sconf;

    sslcf = group->server->ctx->srv_conf[ngx_stream_ssl_module.ctx_index];
    sconf = group->server->ctx->srv_conf[ngx_stream_snicache_module.ctx_index];
    ctx = sslcf->ssl.ctx;

    if (ctx == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"snicache\": the server in %s:%ui has no SSL context",
                      group->server->file_name, group->server->line);
        return NGX_ERROR;
    }

    if (sconf->timeout != NGX_CONF_UNSET) {
        /* OpenSSL checks its own session lifetime too: make them agree */
        timeout = sconf->timeout;
        SSL_CTX_set_timeout(ctx, (long) timeout);

    } else {
        timeout = ngx_min(sslcf->session_timeout,
                          NGX_STREAM_SNICACHE_MAX_TIMEOUT);
    }

    /* "ssl_session_cache off": no session ids, no stateful TLS 1.3 sessions */
    flags = SNICACHE_VHOST_DEFAULT
            | (sslcf->builtin_session_cache == NGX_SSL_NO_SCACHE
               ? SNICACHE_VHOST_NO_STORE : 0);

    name = ngx_array_push(&group->names);
    if (name == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(name, NGX_STREAM_SNICACHE_NONAME);

    snicache_ssl_api_init(&api);

    config = NULL;
    cache = NULL;
    rc = snicache_config_new(&api, &config);

    if (rc == SNICACHE_RESULT_OK && smcf->store.data) {
        rc = snicache_config_set_store(config, (const char *) smcf->store.data);
    }

    if (rc == SNICACHE_RESULT_OK) {
        rc = snicache_config_set_log(config, ngx_snicache_log, NULL,
                                     SNICACHE_LOG_LEVEL_INFO);
    }

    if (rc == SNICACHE_RESULT_OK) {
        rc = ngx_snicache_set_ticket_keys(config, group->ticket_keys,
                                          smcf->ticket_rotation);
    }

    if (rc == SNICACHE_RESULT_OK) {
        rc = snicache_config_add_vhost(config, NGX_STREAM_SNICACHE_NONAME, ctx,
                                       (uint32_t) ngx_max(timeout, 0), flags);
    }

    if (rc == SNICACHE_RESULT_OK) {
        rc = snicache_cache_new(config, &cache);
    }

    snicache_config_free(config);

    if (rc != SNICACHE_RESULT_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"snicache\" for the stream server in %s:%ui: %s",
                      group->server->file_name, group->server->line,
                      ngx_snicache_message(rc, msg, sizeof(msg)));
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        snicache_cache_free(cache);
        return NGX_ERROR;
    }

    cln->handler = ngx_stream_snicache_cleanup;
    cln->data = (void *) cache;

    /*
     * One server, one context: snicache's own ClientHello callback. nginx's info callback
     * (ngx_ssl_info_callback) stays, called from ours, which hands fatal alerts to snicache.
     */

    rc = snicache_cache_attach(cache, ctx,
                               SNICACHE_ATTACH_ALL
                               & ~(SNICACHE_INSTALL_SERVERNAME
                                   |SNICACHE_INSTALL_INFO));

    if (rc != SNICACHE_RESULT_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"snicache\": attaching to the SSL context of the stream"
                      " server in %s:%ui: %s",
                      group->server->file_name, group->server->line,
                      ngx_snicache_message(rc, msg, sizeof(msg)));
        return NGX_ERROR;
    }

    if (SSL_CTX_get_info_callback(ctx) != ngx_snicache_info_callback) {
        if (ngx_snicache_next_info == NULL) {
            ngx_snicache_next_info = SSL_CTX_get_info_callback(ctx);

        } else if (SSL_CTX_get_info_callback(ctx) != ngx_snicache_next_info) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "\"snicache\": the SSL context of the stream server"
                          " in %s:%ui has an unexpected info callback",
                          group->server->file_name, group->server->line);
            return NGX_ERROR;
        }

        SSL_CTX_set_info_callback(ctx, ngx_snicache_info_callback);
    }

    view = ngx_array_push(&smcf->views.views);
    if (view == NULL) {
        return NGX_ERROR;
    }

    view->names = &group->names;
    view->addrs = &group->addrs;
    view->cache = cache;
    view->remote = ngx_snicache_store_is_remote(&smcf->store);

    return NGX_OK;
}


static void
ngx_stream_snicache_cleanup(void *data)
{
    /* the attached SSL_CTX holds its own reference until it is freed */
    snicache_cache_free(data);
}
