/* The GnuTLS client of the client matrix (tests/blackbox/clients.sh): COUNT sequential HTTPS
 * connections to 127.0.0.1:PORT with SNI NAME, keeping its latest session data as a GnuTLS
 * application does: after each connection, gnutls_session_get_data2() (in TLS 1.3 the newest
 * ticket, or data that cannot resume when no ticket came), offered with gnutls_session_set_data()
 * on the next one. gnutls-cli cannot carry session data from one run to the next, hence this.
 * Certificates are not verified (self-signed test certificates).
 *
 *   gnutls_client PORT NAME COUNT
 *
 * One line per connection: conn=I resumed=0|1 proto=TLS1.x body=FIRST_BODY_LINE */
#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int tcp(int port) {
    struct sockaddr_in a;
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The first non-empty line after the headers, printed in place. */
static void print_body_line(const char *resp) {
    const char *b = strstr(resp, "\r\n\r\n"), *e;
    if (!b) {
        fputs("-", stdout);
        return;
    }
    b += 4;
    while (*b == '\r' || *b == '\n')
        b++;
    e = b + strcspn(b, "\r\n");
    printf("%.*s", (int)(e - b), b);
}

int main(int argc, char **argv) {
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t data = {NULL, 0};
    int port, count, i;
    const char *name;
    char req[256], resp[8192];

    if (argc != 4) {
        fprintf(stderr, "usage: gnutls_client PORT NAME COUNT\n");
        return 2;
    }
    port = atoi(argv[1]);
    name = argv[2];
    count = atoi(argv[3]);
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", name);
    if (gnutls_global_init() < 0 || gnutls_certificate_allocate_credentials(&cred) < 0)
        return 1;
    for (i = 1; i <= count; i++) {
        gnutls_session_t s;
        size_t got = 0;
        int fd = tcp(port), ret;
        if (fd < 0) {
            printf("conn=%d resumed=0 proto=- body=connect-failed\n", i);
            continue;
        }
        gnutls_init(&s, GNUTLS_CLIENT);
        gnutls_set_default_priority(s);
        gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
        gnutls_server_name_set(s, GNUTLS_NAME_DNS, name, strlen(name));
        gnutls_transport_set_int(s, fd);
        gnutls_handshake_set_timeout(s, 10000);
        if (data.size)
            gnutls_session_set_data(s, data.data, data.size);
        do
            ret = gnutls_handshake(s);
        while (ret < 0 && !gnutls_error_is_fatal(ret));
        if (ret < 0) {
            printf("conn=%d resumed=0 proto=- body=handshake-failed:%s\n", i, gnutls_strerror(ret));
        } else {
            gnutls_record_send(s, req, strlen(req));
            for (;;) {
                ssize_t n = gnutls_record_recv(s, resp + got, sizeof resp - 1 - got);
                if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
                    continue;
                if (n <= 0)
                    break;
                got += (size_t)n;
                if (got == sizeof resp - 1)
                    break;
            }
            resp[got] = 0;
            printf("conn=%d resumed=%d proto=%s body=", i, gnutls_session_is_resumed(s) ? 1 : 0,
                   gnutls_protocol_get_name(gnutls_protocol_get_version(s)));
            print_body_line(resp);
            putchar('\n');
            /* The latest session data replaces the one kept. */
            gnutls_free(data.data);
            data.data = NULL;
            data.size = 0;
            if (gnutls_session_get_data2(s, &data) < 0) {
                data.data = NULL;
                data.size = 0;
            }
            gnutls_bye(s, GNUTLS_SHUT_WR);
        }
        gnutls_deinit(s);
        close(fd);
        fflush(stdout);
    }
    gnutls_free(data.data);
    gnutls_certificate_free_credentials(cred);
    gnutls_global_deinit();
    return 0;
}
