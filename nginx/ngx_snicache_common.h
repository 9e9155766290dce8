
/*
 * Code shared by ngx_http_snicache_module and ngx_stream_snicache_module: ticket key files,
 * snicache's log and info callbacks, and the status output (JSON and Prometheus) of a list of
 * caches, which the http status location shows for both modules.
 */

#ifndef _NGX_SNICACHE_COMMON_H_INCLUDED_
#define _NGX_SNICACHE_COMMON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "snicache_ssl.h"


/* both modules carry a copy: keep each module's own out of the other's way */
#pragma GCC visibility push(hidden)


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


ngx_int_t ngx_snicache_read_key(ngx_conf_t *cf, const char *directive,
    ngx_str_t *path, ngx_str_t *key);
snicache_result ngx_snicache_set_ticket_keys(snicache_config *config,
    ngx_array_t *keys, time_t rotation);
ngx_uint_t ngx_snicache_store_is_remote(ngx_str_t *store);
void ngx_snicache_log(void *userdata, snicache_log_level level,
    const char *message, size_t len);
u_char *ngx_snicache_message(snicache_result rc, u_char *buf, size_t len);
void ngx_snicache_info_callback(const ngx_ssl_conn_t *ssl_conn, int where,
    int ret);
ngx_int_t ngx_snicache_status_json(ngx_pool_t *pool, ngx_log_t *log,
    ngx_array_t *views, ngx_buf_t **out);
ngx_int_t ngx_snicache_status_prometheus(ngx_pool_t *pool, ngx_log_t *log,
    ngx_array_t *views, ngx_buf_t **out);
ngx_snicache_views_t *ngx_snicache_stream_views(ngx_cycle_t *cycle);

/* nginx's own info callback (ngx_ssl_info_callback), chained from ours. */
extern void (*ngx_snicache_next_info)(const ngx_ssl_conn_t *ssl_conn,
    int where, int ret);


#pragma GCC visibility pop


#endif /* _NGX_SNICACHE_COMMON_H_INCLUDED_ */
