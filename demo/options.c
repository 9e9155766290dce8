/* Command-line flags of the demo server. Every bad value exits 2 with a message naming the flag. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demo.h"

static const char usage[] =
    "usage: snicache-demo-server --vhost NAME:CERT:KEY [--vhost ...] [options]\n"
    "\n"
    "A TLS server (OpenSSL + snicache) with one listener and several virtual hosts; session\n"
    "resumption is decided per virtual host by snicache.\n"
    "\n"
    "  --listen ADDR:PORT      address to listen on (default 127.0.0.1:8443; [::1]:PORT for IPv6)\n"
    "  --vhost NAME:CERT:KEY   a virtual host: DNS name or *.wildcard, PEM certificate chain and\n"
    "                          PEM key files; repeatable, at least one\n"
    "  --default NAME          vhost for connections without SNI or with an unknown name\n"
    "                          (default: the first --vhost)\n"
    "  --strict-sni            refuse unknown names with a fatal unrecognized_name alert\n"
    "  --async-lookup          with a redis:// store: a session the local tier does not have is\n"
    "                          fetched in the background while its handshake waits, parked, and\n"
    "                          the worker serves other connections (for at most async_ms, 200 by\n"
    "                          default, a --store URL parameter); with --workers each worker\n"
    "                          process fetches with its own threads\n"
    "  --early-data            accept TLS 1.3 early data (0-RTT, a request sent with the\n"
    "                          resumption), at most once per ticket across the workers and\n"
    "                          servers sharing the store; a replay gets 1-RTT (logged\n"
    "                          early_data=rejected, counted early_data_replayed)\n"
    "  --single-use            every vhost's stored sessions resume at most once (RFC 8446\n"
    "                          section 8.1), across the workers and servers sharing the store\n"
    "  --store SPEC            session store: memory[:SIZE] with SIZE like 512k, 10m, 1g\n"
    "                          (default memory:10m); shm:SIZE; or\n"
    "                          redis://[user:password@]HOST:PORT[/DB][?budget_ms=5&...] shared\n"
    "                          by a fleet, behind a local memory tier (needs --seal-key-file);\n"
    "                          rediss://...?ca_file=PATH[&cert_file=PATH&key_file=PATH]: TLS;\n"
    "                          redis+sentinel://HOST:PORT,HOST:PORT.../MASTER[/DB]: Sentinel\n"
    "  --seal-key-file PATH    32 to 64 secret bytes that seal sessions kept in Redis; every\n"
    "                          server sharing the Redis store needs the same file\n"
    "  --ticket-secret-file PATH  32 to 64 secret bytes the ticket keys derive from, so servers\n"
    "                          given the same file open each other's tickets (default: random)\n"
    "  --threads N             worker threads serving connections (default 2)\n"
    "  --workers N             prefork: fork N worker processes after making the cache, each\n"
    "                          with --threads threads on the shared listening socket (default:\n"
    "                          none); use with --store shm:SIZE or redis://... so they share\n"
    "                          sessions\n"
    "  --tls-min 1.2|1.3       lowest TLS version (default 1.2)\n"
    "  --tls-max 1.2|1.3       highest TLS version (default 1.3)\n"
    "  --tickets on|off        off: no stateless tickets; session ids in TLS 1.2 and stateful\n"
    "                          sessions in TLS 1.3, both kept by snicache (default on)\n"
    "  --timeout SECONDS       session lifetime, 1..86400 (default 300)\n"
    "  --io-timeout SECONDS    time a connection gets for its handshake and for each request\n"
    "                          before it is closed, 1..3600 (default 5)\n"
    "  --help                  this text\n"
    "\n"
    "Requests: GET / answers 'vhost=NAME sni=SNI resumed=0|1 proto=TLSv1.x worker=ID';\n"
    "GET /stats answers snicache's counters as JSON. Logs one line per handshake to stderr.\n"
    "SIGTERM or SIGINT stops the server cleanly (exit 0).\n";

static void bad(const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "snicache-demo-server: %s '%s': %s\n(see --help)\n", flag, value, why);
    exit(2);
}

static unsigned long number(const char *flag, const char *s, unsigned long min, unsigned long max)
{
    char *end;
    unsigned long v;
    errno = 0;
    if (*s < '0' || *s > '9')
        bad(flag, s, "not a number");
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0')
        bad(flag, s, "not a number");
    if (v < min || v > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "out of range (%lu..%lu)", min, max);
        bad(flag, s, msg);
    }
    return v;
}

static int tls_version(const char *flag, const char *s)
{
    if (strcmp(s, "1.2") == 0)
        return TLS1_2_VERSION;
    if (strcmp(s, "1.3") == 0)
        return TLS1_3_VERSION;
    bad(flag, s, "must be 1.2 or 1.3");
    return 0;
}

/* NAME:CERT:KEY. The name has no ':'; the key file is after the last ':'. */
static void vhost(struct demo_options *o, const char *s)
{
    const char *c1 = strchr(s, ':'), *c2 = strrchr(s, ':');
    struct demo_vhost *v;
    if (c1 == NULL || c2 == c1 || c1 == s || c2 == c1 + 1 || c2[1] == '\0')
        bad("--vhost", s, "expected NAME:CERT:KEY");
    if (o->n_vhosts == DEMO_MAX_VHOSTS)
        bad("--vhost", s, "too many virtual hosts");
    v = &o->vhosts[o->n_vhosts++];
    v->name = strndup(s, (size_t)(c1 - s));
    v->cert = strndup(c1 + 1, (size_t)(c2 - c1 - 1));
    v->key = strdup(c2 + 1);
    if (v->name == NULL || v->cert == NULL || v->key == NULL) {
        perror("snicache-demo-server");
        exit(1);
    }
}

/* Hides "user:password@" after "SCHEME://" (shows "***@" instead), so logs never show credentials. */
static void hide_credentials(const char *spec, char *out, size_t cap)
{
    const char *rest = strstr(spec, "://"), *at, *end;
    if (rest == NULL) {
        snprintf(out, cap, "%s", spec);
        return;
    }
    rest += 3;
    end = rest + strcspn(rest, "/?#");
    at = NULL;
    for (const char *p = rest; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL)
        snprintf(out, cap, "%s", spec);
    else
        snprintf(out, cap, "%.*s***%s", (int)(rest - spec), spec, at);
}

static int takes_value(const char *flag)
{
    static const char *const flags[] = {"--listen", "--vhost", "--default", "--store", "--threads", "--workers",
                                        "--tls-min", "--tls-max", "--tickets", "--timeout", "--io-timeout",
                                        "--seal-key-file", "--ticket-secret-file"};
    size_t i;
    for (i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (strcmp(flag, flags[i]) == 0)
            return 1;
    return 0;
}

void demo_parse_options(int argc, char **argv, struct demo_options *o)
{
    int i;
    memset(o, 0, sizeof *o);
    o->listen = "127.0.0.1:8443";
    o->store = "memory:10m";
    o->threads = 2;
    o->tls_min = TLS1_2_VERSION;
    o->tls_max = TLS1_3_VERSION;
    o->tickets = 1;
    o->timeout = 300;
    o->io_timeout = 5;

    for (i = 1; i < argc; i++) {
        char flag[32];
        const char *arg = argv[i], *eq = strchr(arg, '='), *value = NULL;
        size_t flen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);

        if (strncmp(arg, "--", 2) != 0 || flen >= sizeof flag)
            bad("argument", arg, "unknown argument");
        memcpy(flag, arg, flen);
        flag[flen] = '\0';

        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        if (strcmp(flag, "--strict-sni") == 0 || strcmp(flag, "--async-lookup") == 0
            || strcmp(flag, "--early-data") == 0 || strcmp(flag, "--single-use") == 0) {
            if (eq != NULL)
                bad(flag, eq + 1, "takes no value");
            if (strcmp(flag, "--strict-sni") == 0)
                o->strict_sni = 1;
            else if (strcmp(flag, "--early-data") == 0)
                o->early_data = 1;
            else if (strcmp(flag, "--single-use") == 0)
                o->single_use = 1;
            else
                o->async_lookup = 1;
            continue;
        }
        /* Every other flag takes a value: --flag VALUE or --flag=VALUE. */
        if (!takes_value(flag))
            bad("flag", flag, "unknown flag");
        if (eq != NULL)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else
            bad(flag, "", "missing value");

        if (strcmp(flag, "--listen") == 0) {
            const char *colon = strrchr(value, ':');
            if (colon == NULL || colon == value)
                bad(flag, value, "expected ADDR:PORT");
            number(flag, colon + 1, 0, 65535);
            o->listen = value;
        } else if (strcmp(flag, "--vhost") == 0) {
            vhost(o, value);
        } else if (strcmp(flag, "--default") == 0) {
            o->default_vhost = value;
        } else if (strcmp(flag, "--store") == 0) {
            /* Parsed and checked by snicache_config_set_store in main(). */
            if (*value == '\0')
                bad(flag, value, "expected memory[:SIZE], shm:SIZE or redis://HOST:PORT");
            o->store = value;
        } else if (strcmp(flag, "--threads") == 0) {
            o->threads = (int)number(flag, value, 1, 256);
        } else if (strcmp(flag, "--workers") == 0) {
            o->workers = (int)number(flag, value, 1, 64);
        } else if (strcmp(flag, "--tls-min") == 0) {
            o->tls_min = tls_version(flag, value);
        } else if (strcmp(flag, "--tls-max") == 0) {
            o->tls_max = tls_version(flag, value);
        } else if (strcmp(flag, "--tickets") == 0) {
            if (strcmp(value, "on") == 0)
                o->tickets = 1;
            else if (strcmp(value, "off") == 0)
                o->tickets = 0;
            else
                bad(flag, value, "must be on or off");
        } else if (strcmp(flag, "--timeout") == 0) {
            o->timeout = (unsigned)number(flag, value, 1, 86400);
        } else if (strcmp(flag, "--seal-key-file") == 0) {
            o->seal_key_file = value;
        } else if (strcmp(flag, "--ticket-secret-file") == 0) {
            o->ticket_secret_file = value;
        } else if (strcmp(flag, "--io-timeout") == 0) {
            o->io_timeout = (unsigned)number(flag, value, 1, 3600);
        }
    }

    hide_credentials(o->store, o->store_shown, sizeof o->store_shown);
    if (o->n_vhosts == 0)
        bad("--vhost", "", "at least one --vhost NAME:CERT:KEY is required");
    if (o->async_lookup && strncmp(o->store, "redis://", 8) != 0 && strncmp(o->store, "rediss://", 9) != 0 &&
        strncmp(o->store, "redis+sentinel://", 17) != 0)
        bad("--async-lookup", "", "needs a redis:// or rediss:// --store (other stores answer at once)");
    if (o->tls_min > o->tls_max)
        bad("--tls-min", o->tls_min == TLS1_3_VERSION ? "1.3" : "1.2", "is above --tls-max");
    if (o->default_vhost != NULL) {
        int found = 0;
        for (i = 0; i < o->n_vhosts; i++)
            found |= strcmp(o->vhosts[i].name, o->default_vhost) == 0;
        if (!found)
            bad("--default", o->default_vhost, "is not the NAME of any --vhost");
    }
}
