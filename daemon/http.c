/* The optional HTTP server (see http.h): its own listening socket and accept loop on the
 * main context (max_clients, idle timeout), SoupServer for the HTTP itself (one request per
 * connection), the routing, and the small endpoints, each answered from the app's
 * callbacks (pictures and events: http_media.c; the page: http_page.c). */
#include "http.h"
#include "http_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <glib-unix.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bn_log.h"
#include "protocol.h"

#define MOD "http"
#define LISTEN_BACKLOG 64
/* Connections accepted per wake-up, so that a flood cannot starve the rest of the loop. */
#define ACCEPT_BATCH 32
#define CONTENT_TYPE_PROMETHEUS "text/plain; version=0.0.4"
#define CONTENT_TYPE_JSON "application/json"

static void tally_unref(conn_tally *t)
{
    if (--t->refs == 0)
        free(t);
}

static void on_conn_gone(gpointer data, GObject *where)
{
    (void)where;
    conn_tally *t = data;
    t->open--;
    tally_unref(t);
}

/* ---- responses ------------------------------------------------------------------------- */

void http_respond(SoupServerMessage *msg, guint status, const char *type, const char *body,
                  size_t len)
{
    soup_server_message_set_status(msg, status, NULL);
    SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
    soup_message_headers_replace(h, "Cache-Control", "no-store");
    /* One request per connection: SoupServer keeps connections alive only for sockets it
     * accepted itself, and this module accepts them (max_clients, idle timeout). Saying so
     * lets clients open the next connection at once instead of finding this one closed. */
    soup_message_headers_replace(h, "Connection", "close");
    soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, body, len);
}

/* o is consumed. */
void http_respond_json(SoupServerMessage *msg, guint status, json_t *o)
{
    size_t len = 0;
    char *line = o ? proto_dump_line(o, &len) : NULL;
    json_decref(o);
    if (!line) {
        static const char oom[] = "{\"type\":\"error\",\"error\":\"out of memory\"}\n";
        http_respond(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, CONTENT_TYPE_JSON, oom, sizeof oom - 1);
        return;
    }
    http_respond(msg, status, CONTENT_TYPE_JSON, line, len);
    free(line);
}

/* {"type":"error","error":"..."}, the protocol's error message. */
void http_respond_error(SoupServerMessage *msg, guint status, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    http_respond_json(msg, status, proto_error_json(NULL, NULL, text));
}

int http_format_refusal(char *resp, size_t cap, const char *status, const char *extra_headers,
                        const char *text)
{
    char body[400];
    json_t *o = proto_error_json(NULL, NULL, text);
    char *line = o ? proto_dump_line(o, NULL) : NULL;
    json_decref(o);
    snprintf(body, sizeof body, "%s", line ? line : "{\"type\":\"error\"}\n");
    free(line);
    return snprintf(resp, cap,
                    "HTTP/1.1 %s\r\nContent-Type: " CONTENT_TYPE_JSON "\r\nCache-Control: "
                    "no-store\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n%s",
                    status, extra_headers, strlen(body), body);
}

/* An answer decided from the headers alone (413, 401). SoupServer would read (and keep) a
 * request body of any size before answering, so the connection is taken from it: the
 * answer is written here and the connection closed, the body unread. */
static void refuse_early(http_server *s, SoupServerMessage *msg, const char *status,
                         const char *extra_headers, const char *text)
{
    char resp[800];
    int n = http_format_refusal(resp, sizeof resp, status, extra_headers, text);
    GIOStream *io = soup_server_message_steal_connection(msg);
    if (!io)
        return;
    /* Nothing was written on this connection yet: the answer fits the socket's buffer. */
    GOutputStream *out = g_io_stream_get_output_stream(io);
    if (n > 0 && G_IS_POLLABLE_OUTPUT_STREAM(out) &&
        g_pollable_output_stream_write_nonblocking(G_POLLABLE_OUTPUT_STREAM(out), resp,
                                                   (gsize)n, NULL, NULL) < 0)
        BN_LOGD(MOD, "%s: the client is gone", status);
    if (G_IS_SOCKET_CONNECTION(io))
        g_socket_shutdown(g_socket_connection_get_socket(G_SOCKET_CONNECTION(io)), FALSE, TRUE,
                          NULL);
    g_io_stream_close(io, NULL, NULL);
    g_object_unref(io);
    s->requests++;
}

bool http_method_allowed(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

/* After the headers, before any body is read: a status set here is the answer, and the
 * body is never read. */
static void on_headers(SoupServer *soup, SoupServerMessage *msg, const char *path,
                       GHashTable *query, gpointer data)
{
    (void)soup, (void)query;
    http_server *s = data;
    char text[200];
    SoupMessageHeaders *rh = soup_server_message_get_request_headers(msg);
    SoupEncoding enc = soup_message_headers_get_encoding(rh);
    if (enc == SOUP_ENCODING_CHUNKED || enc == SOUP_ENCODING_EOF ||
        (enc == SOUP_ENCODING_CONTENT_LENGTH &&
         soup_message_headers_get_content_length(rh) > HTTP_BODY_MAX)) {
        snprintf(text, sizeof text,
                 "request body too large: the endpoints take none (at most %d bytes)",
                 HTTP_BODY_MAX);
        refuse_early(s, msg, "413 Request Entity Too Large", "", text);
        return;
    }
    /* /healthz stays open: a load balancer or systemd health check needs no password, and
     * it tells only whether frames flow. */
    if (s->auth && strcmp(path, "/healthz") != 0 &&
        !http_auth_check(s->auth, soup_message_headers_get_one(rh, "Authorization"),
                         g_get_monotonic_time())) {
        s->auth_failed++;
        refuse_early(s, msg, "401 Unauthorized",
                     "WWW-Authenticate: Basic realm=\"basisnetd\", charset=\"UTF-8\"\r\n",
                     "authentication required (http.auth_file)");
    }
}

static void serve_metrics(http_server *s, SoupServerMessage *msg)
{
    char *text = s->h.metrics ? s->h.metrics(s->h.user) : NULL;
    if (!text) {
        http_respond_error(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "metrics unavailable");
        return;
    }
    http_respond(msg, SOUP_STATUS_OK, CONTENT_TYPE_PROMETHEUS, text, strlen(text));
    free(text);
}

static void serve_state(http_server *s, SoupServerMessage *msg)
{
    json_t *o = s->h.state ? s->h.state(s->h.user) : NULL;
    if (!o) {
        http_respond_error(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "state unavailable");
        return;
    }
    http_respond_json(msg, SOUP_STATUS_OK, o);
}

static void serve_health(http_server *s, SoupServerMessage *msg)
{
    char why[600] = "no health check";
    if (s->h.health && s->h.health(s->h.user, why, sizeof why - 1)) {
        http_respond(msg, SOUP_STATUS_OK, "text/plain; charset=utf-8", "ok\n", 3);
        return;
    }
    size_t n = strlen(why);
    why[n++] = '\n';
    http_respond(msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", why, n);
}

/* The page's scripts and styles are inline and it loads nothing from elsewhere: the policy
 * says so, so that nothing injected could load more. */
static void serve_page(SoupServerMessage *msg)
{
    SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
    soup_message_headers_replace(h, "Content-Security-Policy",
                                 "default-src 'none'; script-src 'unsafe-inline'; style-src "
                                 "'unsafe-inline'; img-src 'self'; connect-src 'self'");
    http_respond(msg, SOUP_STATUS_OK, "text/html; charset=utf-8", http_page_html, http_page_len);
}

static void on_request(SoupServer *soup, SoupServerMessage *msg, const char *path,
                       GHashTable *query, gpointer data)
{
    (void)soup;
    http_server *s = data;
    if (!http_method_allowed(soup_server_message_get_method(msg))) {
        http_respond_error(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "method not allowed");
        return; /* not reached: the intake answered it (http_intake.c) */
    }
    if (strcmp(path, "/metrics") == 0)
        serve_metrics(s, msg);
    else if (strcmp(path, "/api/state") == 0)
        serve_state(s, msg);
    else if (strcmp(path, "/healthz") == 0)
        serve_health(s, msg);
    else if (strcmp(path, "/snapshot.jpg") == 0)
        http_serve_snapshot(s, msg, query);
    else if (strcmp(path, "/stream.mjpg") == 0)
        http_serve_stream(s, msg, query);
    else if (strcmp(path, "/events") == 0)
        http_serve_events(s, msg, query);
    else if (strncmp(path, "/events/", 8) == 0)
        http_serve_event_file(s, msg, path + 8);
    else if (strcmp(path, "/") == 0)
        serve_page(msg);
    else
        http_respond_error(msg, SOUP_STATUS_NOT_FOUND,
                           "no such endpoint: %.200s (there are /, /metrics, /api/state, "
                           "/healthz, /snapshot.jpg, /stream.mjpg, /events and /events/)",
                           path);
}

static void on_request_finished(SoupServer *soup, SoupServerMessage *msg, gpointer data)
{
    (void)soup, (void)msg;
    http_server *s = data;
    s->requests++;
}

/* ---- connections ----------------------------------------------------------------------- */

/* Over max_clients: a short answer, then close. Best effort: the socket is fresh, so the
 * few bytes fit its buffer. */
static void refuse(http_server *s, int fd)
{
    char resp[400];
    int n = http_format_refusal(resp, sizeof resp, "503 Service Unavailable", "Retry-After: 1\r\n",
                                "too many connections (http.max_clients)");
    if (n > 0 && send(fd, resp, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        BN_LOGD(MOD, "refusing a connection: %s", strerror(errno));
    shutdown(fd, SHUT_WR);
    close(fd);
    s->rejected++;
}

void http_adopt(http_server *s, int fd)
{
    GError *e = NULL;
    GSocket *gs = g_socket_new_from_fd(fd, &e);
    if (!gs) {
        BN_LOGW(MOD, "cannot take a connection: %s", e->message);
        g_error_free(e);
        close(fd);
        return;
    }
    /* An idle or stalled client gives its slot back (GSocket sources honour the timeout). */
    g_socket_set_timeout(gs, HTTP_IDLE_TIMEOUT_S);
    GSocketConnection *conn = g_socket_connection_factory_create_connection(gs);
    GSocketAddress *local = g_socket_get_local_address(gs, NULL);
    GSocketAddress *remote = g_socket_get_remote_address(gs, NULL);
    s->tally->open++;
    s->tally->refs++;
    g_object_weak_ref(G_OBJECT(conn), on_conn_gone, s->tally);
    if (!soup_server_accept_iostream(s->soup, G_IO_STREAM(conn), local, remote, &e)) {
        BN_LOGW(MOD, "cannot serve a connection: %s", e->message);
        g_error_free(e);
    }
    g_clear_object(&local);
    g_clear_object(&remote);
    g_object_unref(conn); /* SoupServer holds it until the connection ends */
    g_object_unref(gs);
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
    (void)cond;
    http_server *s = data;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && !s->warned_accept) {
                BN_LOGW(MOD, "accept on %s: %s", s->address, strerror(errno));
                s->warned_accept = true; /* once: EMFILE would repeat at every wake-up */
            }
            break;
        }
        s->warned_accept = false;
        if (s->tally->open >= s->max_clients)
            refuse(s, c);
        else
            http_intake_start(s, c);
    }
    return G_SOURCE_CONTINUE;
}

/* ---- listening ------------------------------------------------------------------------- */

static bn_status bind_unix(http_server *s, char *err, size_t errlen)
{
    const char *path = s->addr.path;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "http.listen %s exists and is not a socket; not removed", path);
            return BN_ERR_IO;
        }
        /* A socket nobody answers on is a leftover of a crash: replace it. */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int r = probe >= 0 ? connect(probe, (struct sockaddr *)&sa, sizeof sa) : -1;
        int saved = errno;
        if (probe >= 0)
            close(probe);
        if (r == 0) {
            snprintf(err, errlen, "http.listen %s: another process is listening on it", path);
            return BN_ERR_BUSY;
        }
        if (saved != ECONNREFUSED || unlink(path) != 0) {
            snprintf(err, errlen, "http.listen %s: cannot replace the stale socket: %s", path,
                     strerror(saved != ECONNREFUSED ? saved : errno));
            return BN_ERR_IO;
        }
    }
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        snprintf(err, errlen, "http.listen %s: socket: %s", path, strerror(errno));
        return BN_ERR_IO;
    }
    mode_t old = umask(0177); /* never more open than 0660, not even before the chmod */
    int r = bind(s->fd, (struct sockaddr *)&sa, sizeof sa);
    int saved = errno;
    umask(old);
    if (r != 0) {
        snprintf(err, errlen, "http.listen %s: cannot bind: %s", path, strerror(saved));
        return BN_ERR_IO;
    }
    s->created_path = true;
    if (chmod(path, 0660) != 0 || stat(path, &st) != 0) {
        snprintf(err, errlen, "http.listen %s: %s", path, strerror(errno));
        return BN_ERR_IO;
    }
    s->path_dev = st.st_dev;
    s->path_ino = st.st_ino;
    return BN_OK;
}

static bn_status bind_inet(http_server *s, char *err, size_t errlen)
{
    const http_listen *l = &s->addr;
    s->fd = socket(l->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        int saved = errno;
        snprintf(err, errlen, "http.listen %s: socket: %s%s", s->address, strerror(saved),
                 saved == EAFNOSUPPORT
                     ? " (is IP forbidden here? the shipped systemd units allow only Unix "
                       "sockets: use a socket path, or the drop-in in docs/http.md)"
                     : "");
        return BN_ERR_IO;
    }
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* restart over TIME_WAIT */
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (l->family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)l->port);
        memcpy(&a->sin6_addr, l->addr, 16);
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)l->port);
        memcpy(&a->sin_addr, l->addr, 4);
        sl = sizeof *a;
    }
    if (bind(s->fd, (struct sockaddr *)&ss, sl) != 0) {
        snprintf(err, errlen, "http.listen %s: cannot bind: %s", s->address, strerror(errno));
        return BN_ERR_IO;
    }
    return BN_OK;
}

bn_status http_open(const http_config *cfg, const http_handlers *h, GMainContext *ctx,
                    http_server **out, char *err, size_t errlen)
{
    *out = NULL;
    http_server *s = calloc(1, sizeof *s);
    conn_tally *t = calloc(1, sizeof *t);
    if (!s || !t) {
        free(s);
        free(t);
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    t->refs = 1;
    s->tally = t;
    s->fd = -1;
    s->intake_ep = -1;
    s->h = *h;
    s->ctx = ctx;
    s->max_clients = cfg->max_clients;
    s->stream_fps = cfg->stream_fps;
    char why[200];
    bn_status st = BN_OK;
    if (!http_listen_parse(cfg->listen, &s->addr, why, sizeof why)) {
        snprintf(err, errlen, "http.listen '%s': %s", cfg->listen, why);
        st = BN_ERR_CONFIG;
        goto fail;
    }
    http_listen_format(&s->addr, s->address, sizeof s->address);
    if (!s->addr.loopback && !cfg->allow_remote) {
        snprintf(err, errlen, "http.listen %s is not a loopback address and http.allow_remote "
                              "is false", s->address);
        st = BN_ERR_CONFIG;
        goto fail;
    }
    st = s->addr.kind == HTTP_LISTEN_UNIX ? bind_unix(s, err, errlen) : bind_inet(s, err, errlen);
    if (st != BN_OK)
        goto fail;
    if (listen(s->fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "http.listen %s: listen: %s", s->address, strerror(errno));
        st = BN_ERR_IO;
        goto fail;
    }
    if (ctx)
        g_main_context_push_thread_default(ctx); /* SoupServer's sources go where ours do */
    s->soup = soup_server_new("server-header", "basisnetd", NULL);
    if (ctx)
        g_main_context_pop_thread_default(ctx);
    st = http_intake_open(s, err, errlen);
    if (st != BN_OK)
        goto fail;
    soup_server_add_early_handler(s->soup, NULL, on_headers, s, NULL);
    soup_server_add_handler(s->soup, NULL, on_request, s, NULL);
    g_signal_connect(s->soup, "request-finished", G_CALLBACK(on_request_finished), s);
    s->accept_src = g_unix_fd_source_new(s->fd, G_IO_IN);
    g_source_set_callback(s->accept_src, G_SOURCE_FUNC(on_accept), s, NULL);
    g_source_attach(s->accept_src, ctx);
    *out = s;
    return BN_OK;
fail:
    s->h.closed = NULL; /* a server that never opened tells nobody it closed */
    http_close(s);
    return st;
}

void http_close(http_server *s)
{
    if (!s)
        return;
    if (s->accept_src) {
        g_source_destroy(s->accept_src);
        g_source_unref(s->accept_src);
        s->accept_src = NULL;
    }
    http_media_close(s);
    http_intake_close(s);
    if (s->soup) {
        g_signal_handlers_disconnect_by_data(s->soup, s);
        soup_server_disconnect(s->soup); /* closes every connection */
        g_object_unref(s->soup);
        s->soup = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    struct stat st;
    if (s->created_path && stat(s->addr.path, &st) == 0 && st.st_dev == s->path_dev &&
        st.st_ino == s->path_ino)
        unlink(s->addr.path); /* only while it is still the file this server made */
    tally_unref(s->tally);
    http_auth_free(s->auth);
    if (s->h.closed)
        s->h.closed(s->h.user);
    free(s);
}

void http_set_auth(http_server *s, http_auth *auth)
{
    if (!s) {
        http_auth_free(auth);
        return;
    }
    http_auth_free(s->auth);
    s->auth = auth;
}

void http_set_max_clients(http_server *s, int max_clients)
{
    if (s)
        s->max_clients = max_clients;
}

void http_get_stats(const http_server *s, http_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    out->requests = s->requests;
    out->rejected = s->rejected;
    out->connected = s->tally->open;
    out->streams = s->n_mjpeg;
    out->event_clients = s->n_events;
    out->jpegs = s->jpegs;
    out->events_lost = s->events_lost;
    out->auth_failed = s->auth_failed;
}

const char *http_address(const http_server *s)
{
    return s ? s->address : "";
}
