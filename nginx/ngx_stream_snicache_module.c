
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


/* One "snicache on" server with SSL: its listen addresses, vhost and cache. */
typedef struct {
    ngx_stream_core_srv_conf_t  *server;
    ngx_array_t                  names;      /* ngx_str_t */
    ngx_array_t                  addrs;      /* ngx_snicache_addr_t */
    ngx_array_t                 *ticket_keys;
    const snicache_cache        *cache;
} ngx_stream_snicache_group_t;


typedef struct {
    ngx_snicache_views_t         views;      /* first: read by the http status location */
    ngx_array_t                  groups;     /* ngx_stream_snicache_group_t * */
    ngx_str_t                    store;
    ngx_array_t                 *ticket_keys;
    time_t                       ticket_rotation;
} ngx_stream_snicache_main_conf_t;


static void *ngx_stream_snicache_create_main_conf(ngx_conf_t *cf);
static char *ngx_stream_snicache_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_stream_snicache_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_stream_snicache_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_stream_snicache_group_init(ngx_cycle_t *cycle,
    ngx_stream_snicache_main_conf_t *smcf, ngx_stream_snicache_group_t *group);


static ngx_command_t  ngx_stream_snicache_commands[] = {

    { ngx_string("snicache"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_snicache_srv_conf_t, enable),
      NULL },

    { ngx_string("snicache_store"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_snicache_conf_set_store_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_snicache_main_conf_t, store),
      NULL },

    { ngx_string("snicache_timeout"),
      NGX_STREAM_MAIN_CONF|NGX_STREAM_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_STREAM_SRV_CONF_OFFSET,
      offsetof(ngx_snicache_srv_conf_t, timeout),
      &ngx_snicache_timeout_bounds },

    { ngx_string("snicache_ticket_key_file"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_snicache_conf_set_key_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_snicache_main_conf_t, ticket_keys),
      NULL },

    { ngx_string("snicache_ticket_rotation"),
      NGX_STREAM_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_STREAM_MAIN_CONF_OFFSET,
      offsetof(ngx_stream_snicache_main_conf_t, ticket_rotation),
      &ngx_snicache_rotation_bounds },

      ngx_null_command
};


static ngx_stream_module_t  ngx_stream_snicache_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_stream_snicache_postconfiguration, /* postconfiguration */

    ngx_stream_snicache_create_main_conf,  /* create main configuration */
    ngx_stream_snicache_init_main_conf,    /* init main configuration */

    ngx_snicache_create_srv_conf,          /* create server configuration */
    ngx_snicache_merge_srv_conf            /* merge server configuration */
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


/* One group per "snicache on" server listening with ssl, with every such listen address. */

static ngx_int_t
ngx_stream_snicache_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                        l, g;
    ngx_array_t                      *paths;
    ngx_stream_listen_t              *listen;
    ngx_stream_ssl_conf_t            *sslcf;
    ngx_snicache_srv_conf_t          *sconf;
    ngx_stream_core_srv_conf_t       *cscf;
    ngx_stream_core_main_conf_t      *cmcf;
    ngx_stream_snicache_group_t      *group, **groups;
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

            /* snicache_ticket_key_file, else the server's ssl_session_ticket_key */
            sslcf = cscf->ctx->srv_conf[ngx_stream_ssl_module.ctx_index];
            paths = sslcf->session_ticket_keys;

            if (ngx_snicache_ticket_keys(cf, smcf->ticket_keys,
                                         paths == NGX_CONF_UNSET_PTR
                                         ? NULL : paths,
                                         cscf->file_name, cscf->line,
                                         &group->ticket_keys)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (ngx_snicache_add_addr(cf->pool, &group->addrs, listen[l].sockaddr,
                                  listen[l].socklen, &listen[l].addr_text)
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
    u_char                    msg[256];
    SSL_CTX                  *ctx;
    uint32_t                  timeout, flags;
    ngx_str_t                *name;
    snicache_result           rc;
    snicache_config          *config;
    ngx_snicache_view_t      *view;
    ngx_stream_ssl_conf_t    *sslcf;
    ngx_snicache_srv_conf_t  *sconf;

    sslcf = group->server->ctx->srv_conf[ngx_stream_ssl_module.ctx_index];
    sconf = group->server->ctx->srv_conf[ngx_stream_snicache_module.ctx_index];
    ctx = sslcf->ssl.ctx;

    if (ctx == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"snicache\": the server in %s:%ui has no SSL context",
                      group->server->file_name, group->server->line);
        return NGX_ERROR;
    }

    timeout = ngx_snicache_vhost_timeout(ctx, sconf->timeout,
                                         sslcf->session_timeout);
    flags = SNICACHE_VHOST_DEFAULT
            | ngx_snicache_vhost_flags(sslcf->builtin_session_cache);

    name = ngx_array_push(&group->names);
    if (name == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(name, NGX_SNICACHE_NONAME);

    rc = ngx_snicache_config_new(&smcf->store, group->ticket_keys,
                                 smcf->ticket_rotation, &config);

    if (rc == SNICACHE_RESULT_OK) {
        rc = snicache_config_add_vhost(config, NGX_SNICACHE_NONAME, ctx,
                                       timeout, flags);
    }

    if (rc == SNICACHE_RESULT_OK) {
        rc = snicache_cache_new(config, &group->cache);
    }

    snicache_config_free(config);

    if (rc != SNICACHE_RESULT_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"snicache\" for the stream server in %s:%ui: %s",
                      group->server->file_name, group->server->line,
                      ngx_snicache_message(rc, msg, sizeof(msg)));
        return NGX_ERROR;
    }

    if (ngx_snicache_add_cleanup(cycle->pool, &group->cache) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * One server, one context: snicache's own ClientHello callback. nginx's info callback
     * (ngx_ssl_info_callback) stays, called from ours, which hands fatal alerts to snicache.
     * nginx's servername callback stays as well: it acknowledges every name, so that OpenSSL
     * keeps the name in TLS 1.2 sessions ($ssl_server_name on resumed connections). snicache's
     * answer would be "not acknowledged" for every name here (no SNI selects the one nameless
     * vhost), and would empty $ssl_server_name on every resumed TLS 1.2 connection.
     */

    rc = snicache_cache_attach(group->cache, ctx,
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

    if (ngx_snicache_chain_info(ctx) != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"snicache\": the SSL context of the stream server"
                      " in %s:%ui has an unexpected info callback",
                      group->server->file_name, group->server->line);
        return NGX_ERROR;
    }

    view = ngx_array_push(&smcf->views.views);
    if (view == NULL) {
        return NGX_ERROR;
    }

    view->names = &group->names;
    view->addrs = &group->addrs;
    view->cache = group->cache;
    view->remote = ngx_snicache_store_is_remote(&smcf->store);

    return NGX_OK;
}
