/* The http: section (docs/http.md): its defaults, http.listen (an IPv4 or bracketed IPv6
 * address with a port, or a Unix socket path) and the rule that an address other machines
 * can reach needs http.allow_remote. The plain keys are rows of the key table
 * (config_keys.c); this file holds what the table cannot say. */
#include "config_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "config_internal.h"

void config_http_init(http_config *h)
{
    memset(h, 0, sizeof *h);
    snprintf(h->listen, sizeof h->listen, "127.0.0.1:8080");
    h->allow_remote = false;
    h->max_clients = 16;
    h->stream_fps = 5;
}

/* Decimal 1..65535, digits only. */
static bool parse_port(const char *s, int *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5)
        return false;
    int v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *out = v;
    return true;
}

bool http_listen_parse(const char *s, http_listen *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(s);
    if (s[0] == '/') {
        if (len > HTTP_UNIX_PATH_MAX) {
            snprintf(why, whylen, "expected a Unix socket path of at most %d bytes (%zu given)",
                     HTTP_UNIX_PATH_MAX, len);
            return false;
        }
        if (s[len - 1] == '/') {
            snprintf(why, whylen, "expected a Unix socket path naming a file, not a directory");
            return false;
        }
        out->kind = HTTP_LISTEN_UNIX;
        out->family = AF_UNIX;
        out->loopback = true;
        memcpy(out->path, s, len + 1);
        return true;
    }
    char host[64];
    const char *port;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(why, whylen, "expected [IPV6-ADDRESS]:PORT such as [::1]:8080");
            return false;
        }
        size_t n = (size_t)(close - s - 1);
        if (n >= sizeof host) {
            snprintf(why, whylen, "expected an IPv6 address in the brackets such as [::1]:8080");
            return false;
        }
        memcpy(host, s + 1, n);
        host[n] = '\0';
        if (inet_pton(AF_INET6, host, out->addr) != 1) {
            snprintf(why, whylen, "expected an IPv6 address in the brackets such as [::1]:8080");
            return false;
        }
        out->family = AF_INET6;
        const struct in6_addr *a6 = (const struct in6_addr *)out->addr;
        out->loopback = IN6_IS_ADDR_LOOPBACK(a6) ||
                        (IN6_IS_ADDR_V4MAPPED(a6) && out->addr[12] == 127);
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon) {
            snprintf(why, whylen, "%s", HTTP_LISTEN_EXPECTED);
            return false;
        }
        size_t n = (size_t)(colon - s);
        if (memchr(s, ':', n)) {
            snprintf(why, whylen, "expected an IPv6 address in brackets such as [::1]:8080");
            return false;
        }
        if (n >= sizeof host)
            n = sizeof host - 1; /* too long for an address: inet_pton refuses it below */
        memcpy(host, s, n);
        host[n] = '\0';
        /* The one name everybody writes; anything else would need a resolver at start-up. */
        if (strcmp(host, "localhost") == 0)
            snprintf(host, sizeof host, "127.0.0.1");
        if (inet_pton(AF_INET, host, out->addr) != 1) {
            snprintf(why, whylen,
                     "expected a numeric IPv4 address before the port (host names other than "
                     "localhost are not resolved)");
            return false;
        }
        out->family = AF_INET;
        out->loopback = out->addr[0] == 127;
        port = colon + 1;
    }
    if (!parse_port(port, &out->port)) {
        snprintf(why, whylen, "expected a port from 1 to 65535 after the address");
        return false;
    }
    out->kind = HTTP_LISTEN_INET;
    return true;
}

bool http_listen_equal(const char *a, const char *b)
{
    http_listen la, lb;
    char why[160];
    if (!http_listen_parse(a, &la, why, sizeof why) || !http_listen_parse(b, &lb, why, sizeof why))
        return strcmp(a, b) == 0;
    if (la.kind != lb.kind)
        return false;
    if (la.kind == HTTP_LISTEN_UNIX)
        return strcmp(la.path, lb.path) == 0;
    return la.family == lb.family && la.port == lb.port && !memcmp(la.addr, lb.addr, 16);
}

void http_listen_format(const http_listen *l, char *buf, size_t len)
{
    if (l->kind == HTTP_LISTEN_UNIX) {
        snprintf(buf, len, "%s", l->path);
        return;
    }
    char a[INET6_ADDRSTRLEN] = "?";
    inet_ntop(l->family, l->addr, a, sizeof a);
    if (l->family == AF_INET6)
        snprintf(buf, len, "[%s]:%d", a, l->port);
    else
        snprintf(buf, len, "%s:%d", a, l->port);
}

/* ---- the loader's side (config_internal.h) --------------------------------------------- */

bool config_set_http_listen(parse_ctx *c, const key_spec *k, const char *path,
                            const yaml_node_t *v)
{
    if (v->type != YAML_SCALAR_NODE || config_node_is_null(v) ||
        memchr(v->data.scalar.value, '\0', v->data.scalar.length)) {
        config_err_expected(c, k, path, v);
        return false;
    }
    const char *s = (const char *)v->data.scalar.value; /* libyaml NUL-terminates scalars */
    http_listen l;
    char why[200], got[GOT_MAX];
    if (!http_listen_parse(s, &l, why, sizeof why)) {
        config_err_at(c, &v->start_mark, "key '%s': %s, got %s", path, why,
                      config_describe(v, got, sizeof got));
        return false;
    }
    /* Every form http_listen_parse accepts is shorter than the field. */
    snprintf((char *)config_field(c, k), k->size, "%s", s);
    return true;
}

void config_check_http(parse_ctx *c)
{
    int hi = config_key_index("http"), li = config_key_index("http.listen");
    int ai = config_key_index("http.allow_remote");
    if (hi < 0 || li < 0 || ai < 0 || !c->valid[hi] || (c->seen[li] && !c->valid[li]) ||
        (c->seen[ai] && !c->valid[ai]))
        return;
    const http_config *h = &c->cfg->http;
    http_listen l;
    char why[200];
    if (!http_listen_parse(h->listen, &l, why, sizeof why) || l.loopback || h->allow_remote)
        return;
    config_err_at(c, &c->mark[c->seen[li] ? li : hi],
                  "key 'http.listen': %s is not a loopback address, so other machines could "
                  "reach the endpoints%s; set http.allow_remote: true to serve them "
                  "(docs/http.md)",
                  h->listen, h->auth_file[0] ? "" : ", which have no authentication");
}
