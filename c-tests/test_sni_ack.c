/* RFC 6066 §3: the server returns an empty server_name extension (TLS 1.2 ServerHello, TLS 1.3
 * EncryptedExtensions) only when it used the name. A name that selected a vhost (exact or
 * wildcard) is acknowledged; an unknown name served by the default vhost is not, and neither is
 * a connection without SNI. The client reads the server's messages with a message callback.
 * Control: with snicache's servername callback left out, OpenSSL acknowledges nothing (its
 * default without a callback), so the "acked" checks below can fail. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static int acked; /* the last connection's server sent server_name back */

static size_t get16(const unsigned char *p)
{
    return (size_t)p[0] << 8 | p[1];
}

/* Looks for extension 0 in a ServerHello (2) or EncryptedExtensions (8) the client read. */
static void client_msg(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl, void *arg)
{
    const unsigned char *m = buf;
    size_t p, end;
    (void)version;
    (void)ssl;
    (void)arg;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 6)
        return;
    if (m[0] == SSL3_MT_SERVER_HELLO) {
        p = 4 + 2 + 32;
        if (p >= len)
            return;
        p += 1 + m[p] + 2 + 1; /* session id, cipher suite, compression */
    } else if (m[0] == SSL3_MT_ENCRYPTED_EXTENSIONS) {
        p = 4;
    } else {
        return;
    }
    if (p + 2 > len)
        return;
    end = p + 2 + get16(m + p);
    for (p += 2; p + 4 <= end && end <= len; p += 4 + get16(m + p + 2)) {
        if (get16(m + p) == 0)
            acked = 1;
    }
}

static int connect_acked(SSL_CTX *listener, SSL_CTX *client, int version, const char *sni, const char *want_vhost)
{
    struct h_opts o;
    struct h_result r;
    o = h_opts_for(version, sni);
    acked = 0;
    r = h_connect(listener, client, &o);
    CHECK(r.ok && strcmp(r.vhost, want_vhost) == 0);
    SSL_SESSION_free(r.session);
    return acked;
}

static void scenario(int version, uint32_t flags)
{
    const char *names[] = {"a.test", "*.example.com"};
    struct h_server srv;
    SSL_CTX *listener, *client = h_client_ctx();
    int with_cb = flags == 0 || (flags & SNICACHE_INSTALL_SERVERNAME);

    h_server_init(&srv, names, NULL, 2, 0);
    listener = srv.listener;
    SSL_CTX_set_msg_callback(client, client_msg);
    h_server_start(&srv, flags);
    /* Names that selected their vhost: acknowledged (only snicache's callback acks at all). */
    CHECK(connect_acked(listener, client, version, "a.test", "a.test") == with_cb);
    CHECK(connect_acked(listener, client, version, "x.example.com", "*.example.com") == with_cb);
    /* The default vhost serving an unknown name, or no name: never acknowledged. */
    CHECK(connect_acked(listener, client, version, "unknown.test", "a.test") == 0);
    CHECK(connect_acked(listener, client, version, NULL, "a.test") == 0);
    h_server_free(&srv);
    SSL_CTX_free(client);
}

int main(void)
{
    scenario(TLS1_2_VERSION, 0);
    scenario(TLS1_3_VERSION, 0);
    scenario(TLS1_2_VERSION, SNICACHE_ATTACH_ALL & ~SNICACHE_INSTALL_SERVERNAME);
    scenario(TLS1_3_VERSION, SNICACHE_ATTACH_ALL & ~SNICACHE_INSTALL_SERVERNAME);
    return h_done("sni_ack");
}
