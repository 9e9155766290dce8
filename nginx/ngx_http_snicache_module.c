
/*
 * ngx_http_snicache_module: hands nginx's server-side TLS session resumption to snicache,
 * partitioned by server block (virtual host), with snicache's policy on every resumption.
 *
 * Build and configuration: docs/nginx.md. Directives:
 *
 *   snicache on|off;                   http, server: manage the server's listen addresses
 *   snicache_store memory:SIZE | shm:SIZE | redis://HOST:PORT;            http
 *   snicache_timeout TIME;             http, server: session lifetime (1s .. 24h)
 *   snicache_strict_sni on|off;        http: unknown SNI gets unrecognized_name
 *   snicache_ticket_key_file PATH;     http, repeatable: 32 to 80 bytes, ticket master
 *                                      secrets, the first seals (default: the servers'
 *                                      ssl_session_ticket_key files, read the same way)
 *   snicache_ticket_rotation TIME;     http: how long a ticket key seals (1s .. 7d)
 *   snicache_status;                   location: stats JSON, ?format=prometheus, of every
 *                                      http and stream cache
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "snicache_ssl.h"
#include "ngx_snicache_common.h"


/*
 * The servers reachable on one set of listen addresses, and their cache. Connections on
 * these addresses start on the default server's SSL_CTX (ngx_http_ssl_handshake uses the
 * address's default server), which is the listener snicache attaches to.
 */
typedef struct {
    ngx_http_core_srv_conf_t   *default_server;
    ngx_array_t                 servers;     /* ngx_http_core_srv_conf_t * */
    ngx_array_t                 names;       /* ngx_str_t, NUL-terminated vhost names */
    ngx_array_t                 addrs;       /* ngx_snicache_addr_t */
    ngx_array_t                *ticket_keys; /* ngx_str_t: key bytes, first seals */
    const snicache_cache       *cache;
    ngx_shm_zone_t             *zone;        /* the shm store's zone, or NULL */
    void                       *store_mem;   /* the store's memory in the zone */
    size_t                      store_size;
} ngx_http_snicache_group_t;


typedef struct {
    ngx_str_t                   store;
    size_t                      store_size;  /* for shm:SIZE, else 0 */
    ngx_flag_t                  strict_sni;
    ngx_array_t                *ticket_keys; /* ngx_str_t: key bytes, first seals */
    time_t                      ticket_rotation;
    ngx_array_t                 groups;      /* ngx_http_snicache_group_t * */
} ngx_http_snicache_main_conf_t;


static void *ngx_http_snicache_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_snicache_init_main_conf(ngx_conf_t *cf, void *conf);
static ngx_int_t ngx_http_snicache_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_snicache_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_snicache_add_zones(ngx_conf_t *cf,
    ngx_http_snicache_main_conf_t *smcf);
static ngx_int_t ngx_http_snicache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_snicache_group_keys(ngx_conf_t *cf,
    ngx_http_snicache_main_conf_t *smcf, ngx_http_snicache_group_t *group);

static char *ngx_http_snicache_store(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_snicache_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

static ngx_int_t ngx_http_snicache_group_init(ngx_cycle_t *cycle,
    ngx_http_snicache_main_conf_t *smcf, ngx_http_snicache_group_t *group);
static ngx_int_t ngx_http_snicache_add_names(ngx_cycle_t *cycle,
    snicache_config *config, ngx_http_snicache_group_t *group,
    ngx_http_core_srv_conf_t *cscf, SSL_CTX *ctx, uint32_t timeout,
    ngx_uint_t is_default, uint32_t flags);
static ngx_int_t ngx_http_snicache_add_vhost(ngx_cycle_t *cycle,
    snicache_config *config, ngx_http_snicache_group_t *group,
    ngx_http_core_srv_conf_t *cscf, ngx_str_t *name, SSL_CTX *ctx,
    uint32_t timeout, uint32_t is_default, uint32_t flags);
static ngx_http_snicache_group_t *ngx_http_snicache_find_group(
    ngx_connection_t *c);
#ifdef OPENSSL_IS_BORINGSSL
static enum ssl_select_cert_result_t ngx_http_snicache_select_cert(
    const SSL_CLIENT_HELLO *hello);
#else
static int ngx_http_snicache_client_hello(ngx_ssl_conn_t *ssl_conn,
    int *alert, void *arg);
#endif
#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME
static int ngx_http_snicache_servername(ngx_ssl_conn_t *ssl_conn, int *ad,
    void *arg);
#endif
static ngx_int_t ngx_http_snicache_status_handler(ngx_http_request_t *r);


static ngx_command_t  ngx_http_snicache_commands[] = {

    { ngx_string("snicache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_snicache_srv_conf_t, enable),
      NULL },

    { ngx_string("snicache_store"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_snicache_store,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_snicache_main_conf_t, store),
      NULL },

    { ngx_string("snicache_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_SRV_CONF_OFFSET,
      offsetof(ngx_snicache_srv_conf_t, timeout),
      &ngx_snicache_timeout_bounds },

    { ngx_string("snicache_strict_sni"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_snicache_main_conf_t, strict_sni),
      NULL },

    { ngx_string("snicache_ticket_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_snicache_conf_set_key_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_snicache_main_conf_t, ticket_keys),
      NULL },

    { ngx_string("snicache_ticket_rotation"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_snicache_main_conf_t, ticket_rotation),
      &ngx_snicache_rotation_bounds },

    { ngx_string("snicache_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_snicache_status,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_snicache_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_snicache_postconfiguration,   /* postconfiguration */

    ngx_http_snicache_create_main_conf,    /* create main configuration */
    ngx_http_snicache_init_main_conf,      /* init main configuration */

    ngx_snicache_create_srv_conf,          /* create server configuration */
    ngx_snicache_merge_srv_conf,           /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_snicache_module = {
    NGX_MODULE_V1,
    &ngx_http_snicache_module_ctx,         /* module context */
    ngx_http_snicache_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_snicache_init_module,         /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_snicache_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_snicache_main_conf_t  *smcf;

    smcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_snicache_main_conf_t));
    if (smcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     smcf->store = { 0, NULL };
     *     smcf->ticket_keys = NULL;
     */

    smcf->strict_sni = NGX_CONF_UNSET;
    smcf->ticket_rotation = NGX_CONF_UNSET;

    if (ngx_array_init(&smcf->groups, cf->pool, 2,
                       sizeof(ngx_http_snicache_group_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return smcf;
}


static char *
ngx_http_snicache_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_snicache_main_conf_t *smcf = conf;

    ngx_conf_init_value(smcf->strict_sni, 0);
    ngx_conf_init_value(smcf->ticket_rotation, 0);

    return NGX_CONF_OK;
}


/* snicache_store, and the size of a shm: store's zone */

static char *
ngx_http_snicache_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_snicache_main_conf_t *smcf = conf;

    off_t       bytes;
    char       *rv;
    ngx_str_t   size;

    rv = ngx_snicache_conf_set_store_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (ngx_strncmp(smcf->store.data, "shm:", 4) == 0) {
        size.data = smcf->store.data + 4;
        size.len = smcf->store.len - 4;
        bytes = ngx_parse_offset(&size);

        /* snicache accepted it: only a size nginx reads differently lands here */
        if (bytes == NGX_ERROR || (uint64_t) bytes > (uint64_t) NGX_MAX_SIZE_T_VALUE / 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"snicache_store\" size \"%V\" is invalid",
                               &size);
            return NGX_CONF_ERROR;
        }

        smcf->store_size = (size_t) bytes;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_snicache_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_snicache_status_handler;

    return NGX_CONF_OK;
}


/*
 * Groups the servers by listen address while the configuration's ports are still there
 * (they live in the configuration's temporary pool, gone by init_module). Every SSL server
 * sharing an address with a "snicache on" server must have it on too: the address's
 * connections all go through the cache of its group. Addresses with the same set of servers
 * share one group (one cache); a server listening on addresses with different sets of
 * servers is a vhost of each of their groups, and the module's ClientHello callback picks
 * the group by the address a connection came in on.
 */
static ngx_int_t
ngx_http_snicache_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                      p, a, s, g, i, on, off, same;
    ngx_http_conf_port_t           *port;
    ngx_http_conf_addr_t           *addr;
    ngx_http_core_srv_conf_t      **servers, **gservers, **cscfp;
    ngx_http_snicache_group_t      *group, **groups;
    ngx_snicache_srv_conf_t        *sconf;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_snicache_main_conf_t  *smcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    smcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_snicache_module);

    if (cmcf->ports == NULL) {
        return NGX_OK;
    }

    port = cmcf->ports->elts;

    for (p = 0; p < cmcf->ports->nelts; p++) {

        addr = port[p].addrs.elts;

        for (a = 0; a < port[p].addrs.nelts; a++) {

            if (!addr[a].opt.ssl) {
                continue;
            }

            servers = addr[a].servers.elts;
            on = 0;
            off = 0;

            for (s = 0; s < addr[a].servers.nelts; s++) {
                sconf = ngx_http_conf_get_module_srv_conf(servers[s],
                                                      ngx_http_snicache_module);
                if (sconf->enable) {
                    on++;

                } else {
                    off++;
                }
            }

            if (on == 0) {
                continue;
            }

            if (off) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "\"snicache\" is on for some servers listening"
                              " on %V and off for others (the server in"
                              " %s:%ui among them): all servers sharing a"
                              " listen address must agree",
                              &addr[a].opt.addr_text,
                              addr[a].default_server->file_name,
                              addr[a].default_server->line);
                return NGX_ERROR;
            }

            groups = smcf->groups.elts;
            group = NULL;

            for (g = 0; g < smcf->groups.nelts; g++) {
                gservers = groups[g]->servers.elts;
                same = groups[g]->default_server == addr[a].default_server
                       && groups[g]->servers.nelts == addr[a].servers.nelts;

                for (s = 0; same && s < addr[a].servers.nelts; s++) {
                    same = gservers[s] == servers[s];
                }

                if (same) {
                    group = groups[g];
                    break;
                }
            }

            if (group == NULL) {
                group = ngx_pcalloc(cf->pool,
                                    sizeof(ngx_http_snicache_group_t));
                if (group == NULL) {
                    return NGX_ERROR;
                }

                group->default_server = addr[a].default_server;

                if (ngx_array_init(&group->servers, cf->pool,
                                   addr[a].servers.nelts,
                                   sizeof(ngx_http_core_srv_conf_t *))
                    != NGX_OK
                    || ngx_array_init(&group->names, cf->pool, 4,
                                      sizeof(ngx_str_t))
                       != NGX_OK
                    || ngx_array_init(&group->addrs, cf->pool, 1,
                                      sizeof(ngx_snicache_addr_t))
                       != NGX_OK)
                {
                    return NGX_ERROR;
                }

                for (i = 0; i < addr[a].servers.nelts; i++) {
                    cscfp = ngx_array_push(&group->servers);
                    if (cscfp == NULL) {
                        return NGX_ERROR;
                    }

                    *cscfp = servers[i];
                }

                groups = ngx_array_push(&smcf->groups);
                if (groups == NULL) {
                    return NGX_ERROR;
                }

                *groups = group;
            }

            if (ngx_snicache_add_addr(cf->pool, &group->addrs,
                                      addr[a].opt.sockaddr,
                                      addr[a].opt.socklen,
                                      &addr[a].opt.addr_text)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }
    }

    groups = smcf->groups.elts;

    for (g = 0; g < smcf->groups.nelts; g++) {
        if (ngx_http_snicache_group_keys(cf, smcf, groups[g]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_http_snicache_add_zones(cf, smcf);
}


/*
 * The ticket master secrets of a group: snicache_ticket_key_file when set, else the
 * servers' ssl_session_ticket_key files (the same list for every server of the group: one
 * cache seals with one secret), else none (a random secret per cache). As in nginx, the first
 * file seals and the others only open tickets.
 */
static ngx_int_t
ngx_http_snicache_group_keys(ngx_conf_t *cf,
    ngx_http_snicache_main_conf_t *smcf, ngx_http_snicache_group_t *group)
{
    ngx_str_t                  *path, *fpath;
    ngx_uint_t                  s, k, same;
    ngx_array_t                *paths, *first;
    ngx_http_ssl_srv_conf_t    *sslcf;
    ngx_http_core_srv_conf_t  **servers, *first_server;

    servers = group->servers.elts;
    first = NULL;
    first_server = NULL;

    for (s = 0; s < group->servers.nelts; s++) {
        sslcf = ngx_http_conf_get_module_srv_conf(servers[s],
                                                  ngx_http_ssl_module);
        paths = sslcf->session_ticket_keys;

        if (paths == NULL || paths == NGX_CONF_UNSET_PTR) {
            paths = NULL;
        }

        if (smcf->ticket_keys) {
            /* warns about the server's own files */
            if (ngx_snicache_ticket_keys(cf, smcf->ticket_keys, paths,
                                         servers[s]->file_name,
                                         servers[s]->line,
                                         &group->ticket_keys)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (s == 0) {
            first = paths;
            first_server = servers[s];
            continue;
        }

        same = (first == NULL) == (paths == NULL);

        if (same && first && paths != first) {
            same = first->nelts == paths->nelts;
            fpath = first->elts;
            path = paths->elts;

            for (k = 0; same && k < paths->nelts; k++) {
                same = fpath[k].len == path[k].len
                       && ngx_strncmp(fpath[k].data, path[k].data,
                                      path[k].len) == 0;
            }
        }

        if (!same) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"snicache\": the servers in %s:%ui and %s:%ui"
                          " share listen addresses but not their"
                          " \"ssl_session_ticket_key\" files; with"
                          " \"snicache on\" they must name the same files (or"
                          " set \"snicache_ticket_key_file\")",
                          first_server->file_name, first_server->line,
                          servers[s]->file_name, servers[s]->line);
            return NGX_ERROR;
        }
    }

    if (smcf->ticket_keys || first == NULL) {
        return NGX_OK;
    }

    return ngx_snicache_ticket_keys(cf, NULL, first, first_server->file_name,
                                    first_server->line, &group->ticket_keys);
}


/*
 * The shm store lives in an nginx shared zone per group, created by nginx before init_module
 * (a zone it cannot make fails the new cycle, and a reload keeps the old one serving), and
 * reused by a reload that keeps its name, size and tag: the store in it then keeps its
 * sessions (snicache finds its own header there, see snicache_config_set_shm_memory). With no
 * snicache_store the store is such a zone too (shm:10m), so every worker shares the sessions.
 */
static ngx_int_t
ngx_http_snicache_add_zones(ngx_conf_t *cf, ngx_http_snicache_main_conf_t *smcf)
{
    u_char                      *p;
    size_t                       size;
    ngx_str_t                    name;
    ngx_uint_t                   g;
    ngx_http_snicache_group_t  **groups;

    if (smcf->groups.nelts == 0) {
        return NGX_OK;
    }

    if (smcf->store.data == NULL) {
        ngx_str_set(&smcf->store, "shm:10m");
        smcf->store_size = 10 * 1024 * 1024;
    }

    if (smcf->store_size == 0) {
        return NGX_OK;
    }

    /* room for the slab pool's own pages around the store (under 0.6% of the size) */
    size = smcf->store_size + smcf->store_size / 128 + 64 * 1024;

    groups = smcf->groups.elts;

    for (g = 0; g < smcf->groups.nelts; g++) {
        p = ngx_pnalloc(cf->pool, sizeof("snicache_store#") + NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        name.data = p;
        name.len = ngx_sprintf(p, "snicache_store#%ui", g) - p;

        groups[g]->store_size = smcf->store_size;
        groups[g]->zone = ngx_shared_memory_add(cf, &name, size,
                                                &ngx_http_snicache_module);
        if (groups[g]->zone == NULL) {
            return NGX_ERROR;
        }

        if (groups[g]->zone->data) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "shared memory zone \"%V\" is already used", &name);
            return NGX_ERROR;
        }

        groups[g]->zone->init = ngx_http_snicache_init_zone;
        groups[g]->zone->data = groups[g];
    }

    return NGX_OK;
}


/*
 * data: the zone's data in the previous cycle (the store's memory) when nginx reuses the
 * zone, else NULL. The store is carved out of the zone's slab pool as one block, whose
 * pages nginx never touches: snicache writes its header now and entries as they come.
 */
static ngx_int_t
ngx_http_snicache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    void                       *mem;
    ngx_slab_pool_t            *shpool;
    ngx_http_snicache_group_t  *group;

    group = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        mem = data;

    } else if (shm_zone->shm.exists) {
        mem = shpool->data;

    } else {
        mem = ngx_slab_alloc(shpool, group->store_size);
        if (mem == NULL) {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "\"snicache_store\": no room for %uz bytes in shared"
                          " memory zone \"%V\"", group->store_size,
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        shpool->data = mem;
    }

    group->store_mem = mem;
    shm_zone->data = mem;

    return NGX_OK;
}


/*
 * Runs in the master after the configuration is read and before the workers are forked
 * (and for "nginx -t"), so each cache is made once and inherited by every worker. With the
 * memory store each worker then has its own copy-on-write copy of the (empty) store: a
 * session resumes only on the worker that stored it, and the status location shows the
 * counters of the worker that answers. With "shm:SIZE" the sessions and counters live in
 * a shared mapping made here, seen by all workers. With "redis://" no connection or thread
 * is made here: each worker starts its own (writer, connections) on its first handshake, its
 * local tier and counters are its own, and the sessions are shared through Redis.
 */
static ngx_int_t
ngx_http_snicache_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t                      g;
    ngx_http_snicache_group_t     **groups;
    ngx_http_snicache_main_conf_t  *smcf;

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;
    }

    smcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_snicache_module);
    if (smcf == NULL) {
        return NGX_OK;
    }

    groups = smcf->groups.elts;

    for (g = 0; g < smcf->groups.nelts; g++) {
        if (ngx_http_snicache_group_init(cycle, smcf, groups[g]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_snicache_group_init(ngx_cycle_t *cycle,
    ngx_http_snicache_main_conf_t *smcf, ngx_http_snicache_group_t *group)
{
    bool                        inherited;
    u_char                      msg[256];
    SSL_CTX                    *listener, *ctx;
    uint32_t                    timeout;
    ngx_uint_t                  s;
    snicache_result             rc;
    snicache_config            *config;
    ngx_snicache_srv_conf_t    *sconf;
    ngx_http_ssl_srv_conf_t    *sslcf;
    ngx_http_core_srv_conf_t  **servers, *cscf;

    sslcf = ngx_http_conf_get_module_srv_conf(group->default_server,
                                              ngx_http_ssl_module);
    listener = sslcf->ssl.ctx;

    if (listener == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"snicache\": the server in %s:%ui has no SSL context",
                      group->default_server->file_name,
                      group->default_server->line);
        return NGX_ERROR;
    }

    rc = ngx_snicache_config_new(&smcf->store, group->ticket_keys,
                                 smcf->ticket_rotation, &config);

    if (rc == SNICACHE_RESULT_OK && group->store_mem) {
        rc = snicache_config_set_shm_memory(config, group->store_mem,
                                            group->store_size);
    }

    if (rc == SNICACHE_RESULT_OK) {
        rc = snicache_config_set_strict_sni(config, smcf->strict_sni != 0);
    }

    for (s = 0; rc == SNICACHE_RESULT_OK && s < group->servers.nelts; s++) {
        /* ssl_early_data on in any server of the group: 0-RTT at most once per ticket */
        sslcf = ngx_http_conf_get_module_srv_conf(
                    ((ngx_http_core_srv_conf_t **) group->servers.elts)[s],
                    ngx_http_ssl_module);

        if (sslcf->early_data == 1) {
            rc = snicache_config_set_early_data(config, 1);
            break;
        }
    }

    if (rc != SNICACHE_RESULT_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "\"snicache\": %s",
                      ngx_snicache_message(rc, msg, sizeof(msg)));
        goto failed;
    }

    servers = group->servers.elts;

    for (s = 0; s < group->servers.nelts; s++) {
        sslcf = ngx_http_conf_get_module_srv_conf(servers[s],
                                                  ngx_http_ssl_module);
        sconf = ngx_http_conf_get_module_srv_conf(servers[s],
                                                  ngx_http_snicache_module);
        ctx = sslcf->ssl.ctx;

        if (ctx == NULL) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "\"snicache\": the server in %s:%ui has no SSL"
                          " context, skipped",
                          servers[s]->file_name, servers[s]->line);
            continue;
        }

        timeout = ngx_snicache_vhost_timeout(ctx, sconf->timeout,
                                             sslcf->session_timeout);

        if (ngx_http_snicache_add_names(cycle, config, group, servers[s], ctx,
                                        timeout,
                                        servers[s] == group->default_server,
                                        ngx_snicache_vhost_flags(
                                            sslcf->builtin_session_cache))
            != NGX_OK)
        {
            goto failed;
        }
    }

    rc = snicache_cache_new(config, &group->cache);

    if (rc != SNICACHE_RESULT_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"snicache\" for the servers of %s:%ui%s%V%s: %s",
                      group->default_server->file_name,
                      group->default_server->line,
                      smcf->store.data ? " (snicache_store \"" : "",
                      &smcf->store,
                      smcf->store.data ? "\")" : "",
                      ngx_snicache_message(rc, msg, sizeof(msg)));
        goto failed;
    }

    snicache_config_free(config);
    config = NULL;

    if (group->store_mem
        && snicache_shm_inherited(group->cache, &inherited) == SNICACHE_RESULT_OK)
    {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "\"snicache\" for the servers of %s:%ui: %s store in"
                      " shared memory zone \"%V\"",
                      group->default_server->file_name,
                      group->default_server->line,
                      inherited ? "kept the" : "made a new",
                      &group->zone->shm.name);
    }

    if (ngx_snicache_add_cleanup(cycle->pool, &group->cache) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * nginx's servername callback (ngx_http_ssl_servername) still runs, inside the module's
     * (ngx_http_snicache_servername): snicache's ClientHello callback has already moved the
     * connection to the SSL_CTX of the server block matching the SNI, and nginx's callback,
     * which OpenSSL runs on that context afterwards, finds the same server block and does the
     * per-server setup the request needs (the connection's server configuration, error log,
     * buffer size, verify mode and options; its SSL_set_SSL_CTX to the context already in use
     * changes nothing). The module's callback then takes snicache's answer on the server_name
     * acknowledgement (snicache_on_servername: routed connections are only asked), so an
     * unknown name served by the default server gets no server_name back (RFC 6066 section 3),
     * where nginx alone acknowledges every name. Both route by the SNI alone, and snicache's
     * "sni" rule binds a session to the exact SNI it was made under, so a session never
     * resumes in a server block other than the one it was made in, even for names only nginx
     * routes (regular expressions, "www.example.*"; snicache does not acknowledge those).
     *
     * nginx's info callback (ngx_ssl_info_callback: handshake buffer size, renegotiation)
     * stays too: ours calls it, then hands fatal alerts to snicache_on_info.
     */

    rc = snicache_cache_attach(group->cache, listener,
                               SNICACHE_ATTACH_ALL
                               & ~(SNICACHE_INSTALL_SERVERNAME
                                   |SNICACHE_INSTALL_INFO
                                   |SNICACHE_INSTALL_CLIENT_HELLO));

    /*
     * The ClientHello callback is the module's: a context may start connections on several
     * addresses of different groups (a server listening on :443 with others and on :8443
     * alone), so the group is found by the connection's address, as nginx finds its servers.
     * Every server's context gets it too: OpenSSL runs the second ClientHello (after a
     * HelloRetryRequest) through the context the connection was switched to, where snicache
     * checks that the server_name did not change. The module's servername callback goes on
     * every context for the same reason: OpenSSL and BoringSSL call the one of the context
     * the connection was switched to.
     */

    if (rc != SNICACHE_RESULT_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "\"snicache\": attaching to the SSL context of the server"
                      " in %s:%ui: %s",
                      group->default_server->file_name,
                      group->default_server->line,
                      ngx_snicache_message(rc, msg, sizeof(msg)));
        return NGX_ERROR;
    }

    for (s = 0; s <= group->servers.nelts; s++) {

        if (s < group->servers.nelts) {
            sslcf = ngx_http_conf_get_module_srv_conf(servers[s],
                                                      ngx_http_ssl_module);
            ctx = sslcf->ssl.ctx;
            cscf = servers[s];

        } else {
            ctx = listener;
            cscf = group->default_server;
        }

        if (ctx == NULL) {
            continue;
        }

#ifdef OPENSSL_IS_BORINGSSL
        SSL_CTX_set_select_certificate_cb(ctx, ngx_http_snicache_select_cert);
#else
        SSL_CTX_set_client_hello_cb(ctx, ngx_http_snicache_client_hello, NULL);
#endif

#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME
        SSL_CTX_set_tlsext_servername_callback(ctx,
                                               ngx_http_snicache_servername);
#endif

        if (ngx_snicache_chain_info(ctx) != NGX_OK) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "\"snicache\": the SSL context of the server in"
                          " %s:%ui has an unexpected info callback",
                          cscf->file_name, cscf->line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;

failed:

    snicache_config_free(config);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_snicache_add_names(ngx_cycle_t *cycle, snicache_config *config,
    ngx_http_snicache_group_t *group, ngx_http_core_srv_conf_t *cscf,
    SSL_CTX *ctx, uint32_t timeout, ngx_uint_t is_default, uint32_t flags)
{
    ngx_int_t                rc;
    ngx_str_t                name, noname;
    const char              *skipped;
    ngx_uint_t               n, added;
    ngx_http_server_name_t  *sn;

    sn = cscf->server_names.elts;
    added = 0;

    for (n = 0; n < cscf->server_names.nelts; n++) {

        name = sn[n].name;

        if (name.len == 0) {
            continue;
        }

        /* names only nginx routes */
        skipped = name.data[name.len - 1] == '*' ? "trailing wildcard" : NULL;
#if (NGX_PCRE)
        if (sn[n].regex) {
            skipped = "regular expression";
        }
#endif

        if (skipped) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                          "\"snicache\": server_name \"%V\" in %s:%ui is a"
                          " %s: skipped (its connections are kept under the"
                          " default server's vhost)",
                          &name, cscf->file_name, cscf->line, skipped);
            continue;
        }

        if (name.data[0] == '.') {
            /* ".example.com" is "example.com" and "*.example.com" */
            name.data++;
            name.len--;

            rc = ngx_http_snicache_add_vhost(cycle, config, group, cscf, &name,
                                             ctx, timeout,
                                             is_default && added == 0, flags);
            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            added += (rc == NGX_OK);

            name.data = ngx_pnalloc(cycle->pool, sn[n].name.len + 1);
            if (name.data == NULL) {
                return NGX_ERROR;
            }

            name.data[0] = '*';
            ngx_memcpy(name.data + 1, sn[n].name.data, sn[n].name.len);
            name.len = sn[n].name.len + 1;
        }

        rc = ngx_http_snicache_add_vhost(cycle, config, group, cscf, &name,
                                         ctx, timeout, is_default && added == 0,
                                         flags);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        added += (rc == NGX_OK);
    }

    if (is_default && added == 0) {
        ngx_str_set(&noname, NGX_SNICACHE_NONAME);

        if (ngx_http_snicache_add_vhost(cycle, config, group, cscf, &noname,
                                        ctx, timeout, 1, flags)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* NGX_OK: added; NGX_DECLINED: skipped with a warning; NGX_ERROR: failed */

static ngx_int_t
ngx_http_snicache_add_vhost(ngx_cycle_t *cycle, snicache_config *config,
    ngx_http_snicache_group_t *group, ngx_http_core_srv_conf_t *cscf,
    ngx_str_t *name, SSL_CTX *ctx, uint32_t timeout, uint32_t is_default,
    uint32_t flags)
{
    u_char           msg[256];
    ngx_str_t       *copy;
    snicache_result  rc;

    copy = ngx_array_push(&group->names);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    copy->len = name->len;
    copy->data = ngx_pnalloc(cycle->pool, name->len + 1);
    if (copy->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(copy->data, name->data, name->len);
    copy->data[name->len] = '\0';

    rc = snicache_config_add_vhost(config, (const char *) copy->data, ctx,
                                   timeout,
                                   (is_default ? SNICACHE_VHOST_DEFAULT : 0)
                                   | flags);

    if (rc == SNICACHE_RESULT_OK) {
        return NGX_OK;
    }

    group->names.nelts--;

    if (rc == SNICACHE_RESULT_DUPLICATE_VHOST
        || rc == SNICACHE_RESULT_INVALID_VHOST_NAME)
    {
        /* nginx warns about conflicting names itself and keeps the first */
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "\"snicache\": server_name \"%s\" in %s:%ui skipped: %s",
                      copy->data, cscf->file_name, cscf->line,
                      ngx_snicache_message(rc, msg, sizeof(msg)));
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                  "\"snicache\": server_name \"%s\" in %s:%ui: %s",
                  copy->data, cscf->file_name, cscf->line,
                  ngx_snicache_message(rc, msg, sizeof(msg)));

    return NGX_ERROR;
}


/* The group of the address a connection came in on: an exact address, else a wildcard one. */

static ngx_http_snicache_group_t *
ngx_http_snicache_find_group(ngx_connection_t *c)
{
    ngx_uint_t                      g, i;
    ngx_http_connection_t          *hc;
    ngx_snicache_addr_t       *addrs;
    ngx_http_snicache_group_t     **groups, *wildcard;
    ngx_http_snicache_main_conf_t  *smcf;

    if (c == NULL || c->data == NULL) {
        return NULL;
    }

    hc = c->data;
    smcf = hc->conf_ctx->main_conf[ngx_http_snicache_module.ctx_index];

    if (ngx_connection_local_sockaddr(c, NULL, 0) != NGX_OK) {
        return NULL;
    }

    groups = smcf->groups.elts;
    wildcard = NULL;

    for (g = 0; g < smcf->groups.nelts; g++) {
        addrs = groups[g]->addrs.elts;

        for (i = 0; i < groups[g]->addrs.nelts; i++) {
            if (ngx_cmp_sockaddr(addrs[i].sockaddr, addrs[i].socklen,
                                 c->local_sockaddr, c->local_socklen, 1)
                == NGX_OK)
            {
                return groups[g];
            }

            if (wildcard == NULL
                && addrs[i].sockaddr->sa_family == c->local_sockaddr->sa_family
                && ngx_inet_wildcard(addrs[i].sockaddr)
                && ngx_inet_get_port(addrs[i].sockaddr)
                   == ngx_inet_get_port(c->local_sockaddr))
            {
                wildcard = groups[g];
            }
        }
    }

    return wildcard;
}


#ifdef OPENSSL_IS_BORINGSSL

static enum ssl_select_cert_result_t
ngx_http_snicache_select_cert(const SSL_CLIENT_HELLO *hello)
{
    int                         rc, alert;
    ngx_http_snicache_group_t  *group;

    group = ngx_http_snicache_find_group(ngx_ssl_get_connection(hello->ssl));

    alert = 0;
    rc = snicache_on_client_hello(hello->ssl, hello, &alert,
                                  group ? (void *) group->cache : NULL);

    if (rc == SNICACHE_CLIENT_HELLO_RETRY) {
        return ssl_select_cert_retry;
    }

    if (rc == 1) {
        return ssl_select_cert_success;
    }

    SSL_send_fatal_alert(hello->ssl, (uint8_t) alert);

    return ssl_select_cert_error;
}

#else

static int
ngx_http_snicache_client_hello(ngx_ssl_conn_t *ssl_conn, int *alert, void *arg)
{
    int                         rc;
    ngx_http_snicache_group_t  *group;

    group = ngx_http_snicache_find_group(ngx_ssl_get_connection(ssl_conn));

    /* NULL: the cache attached to the connection's context */
    rc = snicache_on_client_hello(ssl_conn, NULL, alert,
                                  group ? (void *) group->cache : NULL);

    if (rc == SNICACHE_CLIENT_HELLO_RETRY) {
        return SSL_CLIENT_HELLO_RETRY;
    }

    return rc == 1 ? SSL_CLIENT_HELLO_SUCCESS : SSL_CLIENT_HELLO_ERROR;
}

#endif


#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME

/*
 * nginx's servername callback, then snicache's answer on the acknowledgement: nginx's says OK
 * for every name, snicache's NOACK (SSL_TLSEXT_ERR_NOACK, on OpenSSL and BoringSSL) unless
 * the name selected its vhost. The connection is routed already, so snicache only answers.
 */
static int
ngx_http_snicache_servername(ngx_ssl_conn_t *ssl_conn, int *ad, void *arg)
{
    int  rc, alert;

    rc = ngx_http_ssl_servername(ssl_conn, ad, arg);

    if (rc != SSL_TLSEXT_ERR_OK) {
        return rc;
    }

    alert = 0;

    if (snicache_on_servername(ssl_conn, &alert, NULL) == SSL_TLSEXT_ERR_NOACK) {
        return SSL_TLSEXT_ERR_NOACK;
    }

    return rc;
}

#endif


static ngx_int_t
ngx_http_snicache_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       format;
    ngx_buf_t                      *b;
    ngx_uint_t                      g, prometheus;
    ngx_array_t                    *views;
    ngx_chain_t                     out;
    ngx_snicache_view_t            *view, *sview;
    ngx_snicache_views_t           *stream;
    ngx_http_snicache_group_t     **groups;
    ngx_http_snicache_main_conf_t  *smcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /*
     * every group of listen addresses, whichever server the status location is in, and
     * those of the stream module
     */

    smcf = ngx_http_get_module_main_conf(r, ngx_http_snicache_module);
    groups = smcf->groups.elts;
    stream = ngx_snicache_stream_views((ngx_cycle_t *) ngx_cycle);

    views = ngx_array_create(r->pool, smcf->groups.nelts + 1,
                             sizeof(ngx_snicache_view_t));
    if (views == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (g = 0; g < smcf->groups.nelts; g++) {
        if (groups[g]->cache == NULL) {
            continue;
        }

        view = ngx_array_push(views);
        if (view == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        view->names = &groups[g]->names;
        view->addrs = &groups[g]->addrs;
        view->cache = groups[g]->cache;
        view->remote = ngx_snicache_store_is_remote(&smcf->store);
    }

    if (stream) {
        sview = stream->views.elts;

        for (g = 0; g < stream->views.nelts; g++) {
            if (sview[g].cache == NULL) {
                continue;
            }

            view = ngx_array_push(views);
            if (view == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            *view = sview[g];
        }
    }

    if (views->nelts == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "snicache_status: no server has \"snicache on\"");
        return NGX_HTTP_NOT_FOUND;
    }

    prometheus = ngx_http_arg(r, (u_char *) "format", 6, &format) == NGX_OK
                 && format.len == 10
                 && ngx_strncmp(format.data, "prometheus", 10) == 0;

    if (prometheus) {
        rc = ngx_snicache_status_prometheus(r->pool, r->connection->log, views,
                                            &b);
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

    } else {
        rc = ngx_snicache_status_json(r->pool, r->connection->log, views, &b);
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return rc;
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


