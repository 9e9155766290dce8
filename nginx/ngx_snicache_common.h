
/*
 * Code shared by ngx_http_snicache_module and ngx_stream_snicache_module: the directives both
 * have, ticket key files, the snicache config and vhost settings made from nginx's, snicache's
 * log and info callbacks, and the status output (JSON and Prometheus) of a list of caches,
 * which the http status location shows for both modules.
 */

#ifndef _NGX_SNICACHE_COMMON_H_INCLUDED_
#define _NGX_SNICACHE_COMMON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "snicache_ssl.h"


/* both modules carry a copy: keep each module's own out of the other's way */
#pragma GCC visibility push(hidden)


#define NGX_SNICACHE_MAX_TIMEOUT    86400
#define NGX_SNICACHE_MAX_ROTATION   (7 * 86400)

/* A synthetic vhost name for a server without a usable name (".invalid" is reserved,
 * RFC 2606: no client sends it as SNI). */
#define NGX_SNICACHE_NONAME         "default.snicache.invalid"


/* A server's "snicache" and "snicache_timeout". */
typedef struct {
    ngx_flag_t                  enable;
    time_t                      timeout;     /* unset: the server's ssl_session_timeout */
} ngx_snicache_srv_conf_t;


/* A listen address, copied out of the configuration's temporary structures. */
typedef struct {
    struct sockaddr            *sockaddr;
    socklen_t                   socklen;
    ngx_str_t                   text;
} ngx_snicache_addr_t;


/* What the status location shows of one cache. */
typedef struct {
    ngx_array_t                *names;       /* ngx_str_t, NUL-terminated vhost names */
    ngx_array_t                *addrs;       /* ngx_snicache_addr_t */
    const snicache_cache       *cache;
    ngx_uint_t                  remote;      /* a redis:// store: Redis counters */
} ngx_snicache_view_t;


/* The stream module's main configuration starts with its views. */
typedef struct {
    ngx_array_t                 views;       /* ngx_snicache_view_t */
} ngx_snicache_views_t;


/* "snicache_timeout" and "snicache_ticket_rotation" (ngx_conf_set_sec_slot's post) */
extern ngx_conf_num_bounds_t  ngx_snicache_timeout_bounds;
extern ngx_conf_num_bounds_t  ngx_snicache_rotation_bounds;

void *ngx_snicache_create_srv_conf(ngx_conf_t *cf);
char *ngx_snicache_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child);
char *ngx_snicache_conf_set_store_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_snicache_conf_set_key_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_snicache_read_key(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, ngx_str_t *key);
ngx_int_t ngx_snicache_ticket_keys(ngx_conf_t *cf, ngx_array_t *main_keys,
    ngx_array_t *paths, u_char *file, ngx_uint_t line, ngx_array_t **keys);
ngx_int_t ngx_snicache_add_addr(ngx_pool_t *pool, ngx_array_t *addrs,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *text);

snicache_result ngx_snicache_config_new(ngx_str_t *store,
    ngx_array_t *ticket_keys, time_t rotation, snicache_config **config);
snicache_result ngx_snicache_set_ticket_keys(snicache_config *config,
    ngx_array_t *keys, time_t rotation);
uint32_t ngx_snicache_vhost_timeout(SSL_CTX *ctx, time_t timeout,
    time_t session_timeout);
uint32_t ngx_snicache_vhost_flags(ssize_t builtin_session_cache);
ngx_int_t ngx_snicache_chain_info(SSL_CTX *ctx);
ngx_int_t ngx_snicache_add_cleanup(ngx_pool_t *pool,
    const snicache_cache **cache);
ngx_uint_t ngx_snicache_store_is_remote(ngx_str_t *store);
void ngx_snicache_log(void *userdata, snicache_log_level level,
    const char *message, size_t len);
u_char *ngx_snicache_message(snicache_result rc, u_char *buf, size_t len);
ngx_int_t ngx_snicache_status_json(ngx_pool_t *pool, ngx_log_t *log,
    ngx_array_t *views, ngx_buf_t **out);
ngx_int_t ngx_snicache_status_prometheus(ngx_pool_t *pool, ngx_log_t *log,
    ngx_array_t *views, ngx_buf_t **out);
ngx_snicache_views_t *ngx_snicache_stream_views(ngx_cycle_t *cycle);


#pragma GCC visibility pop


#endif /* _NGX_SNICACHE_COMMON_H_INCLUDED_ */
