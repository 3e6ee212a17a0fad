/* A connection's request head, before SoupServer sees the connection (see http_internal.h).
 *
 * libsoup 3.2 (Debian 12's) loses the request path when it refuses a request whose
 * Content-Length is not a number or whose Transfer-Encoding it does not know: the path was
 * already copied when the encoding is checked (fixed upstream in libsoup 3.5.2, commit
 * 450d43c4 "Fix memory leak in error path"). That happens before any handler runs, so any
 * client that reaches the port, without a password, could grow the daemon by up to 64 KiB
 * per request. Here the head is peeked at (not consumed), found where libsoup's reader would
 * end it, and parsed with libsoup's own parser; only a head that parses and has a body
 * encoding libsoup knows goes on to SoupServer, which then reads it from the socket itself.
 * The rest is answered here with the status libsoup would give and a JSON error naming the
 * problem. A head longer than HTTP_HEAD_MAX gets 431.
 *
 * Peeking leaves the bytes in the socket, so the socket stays readable: the connections
 * waiting for the rest of their head are watched through one edge-triggered epoll set,
 * which wakes the main loop when more bytes (or the client's close) arrive, not while the
 * first ones wait. A client that closes its side first, or whose head is not complete
 * within HTTP_IDLE_TIMEOUT_S (checked once a second), is closed without an answer, as
 * SoupServer would. */
#include "http_internal.h"

#include <errno.h>
#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bn_log.h"

#define MOD "http"
#define EVENTS_PER_WAKE 64

struct http_intake {
    http_server *s;
    int fd;
    gint64 deadline_us;
    http_intake *next;
};

/* Where libsoup's header reader ends a head: at the first empty line ("\n" or "\r\n") that
 * follows at least one byte of head ("\r\n\r\n" at the very start is not an end). Returns the
 * head's length up to and including the newline before the empty line, -1 if not there. */
static ssize_t head_length(const char *b, size_t n)
{
    for (size_t p = 1; p < n; p++) {
        if (b[p - 1] != '\n')
            continue;
        if (b[p] == '\n' && p >= 2)
            return (ssize_t)p;
        if (b[p] == '\r' && p + 1 < n && b[p + 1] == '\n' && p >= 3)
            return (ssize_t)p;
    }
    return -1;
}

static const char *status_line(guint code)
{
    switch (code) {
    case SOUP_STATUS_EXPECTATION_FAILED:
        return "417 Expectation Failed";
    case SOUP_STATUS_HTTP_VERSION_NOT_SUPPORTED:
        return "505 HTTP Version Not Supported";
    case SOUP_STATUS_NOT_IMPLEMENTED:
        return "501 Not Implemented";
    default:
        return "400 Bad Request";
    }
}

/* NULL: the head may go to SoupServer. Else the status line of the answer, and why in why
 * (and *allow: the answer names the allowed methods). A method other than GET and HEAD is
 * answered here because libsoup 3.2 interns the method of every request it reads
 * (g_intern_string: kept until exit), so distinct methods from clients would grow the
 * daemon's memory without bound.
 * unix: the server listens on a Unix socket, where libsoup 3.2 makes the URI of an HTTP/1.0
 * request without Host from the local address as if it were an IP one (four GLib-CRITICAL
 * lines on stderr per request, then 400): answered here instead. */
static const char *judge(const char *head, size_t len, bool unix_socket, char *why, size_t whylen,
                         bool *allow)
{
    *allow = false;
    SoupMessageHeaders *h = soup_message_headers_new(SOUP_MESSAGE_HEADERS_REQUEST);
    char *method = NULL, *path = NULL;
    SoupHTTPVersion ver = SOUP_HTTP_1_1;
    guint code = soup_headers_parse_request(head, (int)len, h, &method, &path, &ver);
    const char *answer = NULL;
    if (!SOUP_STATUS_IS_SUCCESSFUL(code)) {
        snprintf(why, whylen, "malformed request head (%s)",
                 code == SOUP_STATUS_HTTP_VERSION_NOT_SUPPORTED ? "only HTTP/1.0 and 1.1"
                 : code == SOUP_STATUS_EXPECTATION_FAILED      ? "unknown Expect"
                                                               : "request line or header lines");
        answer = status_line(code);
    } else if (soup_message_headers_get_encoding(h) == SOUP_ENCODING_UNRECOGNIZED) {
        const char *te = soup_message_headers_get_list(h, "Transfer-Encoding");
        if (te) {
            snprintf(why, whylen, "Transfer-Encoding '%.64s' is not supported", te);
            answer = status_line(SOUP_STATUS_NOT_IMPLEMENTED);
        } else {
            snprintf(why, whylen, "Content-Length '%.64s' is not a number",
                     soup_message_headers_get_one(h, "Content-Length"));
            answer = status_line(SOUP_STATUS_BAD_REQUEST);
        }
    } else if (!http_method_allowed(method)) {
        snprintf(why, whylen, "method %.32s is not allowed; the endpoints answer GET", method);
        answer = "405 Method Not Allowed";
        *allow = true;
    } else if (unix_socket && ver == SOUP_HTTP_1_0 && path[0] == '/' &&
               strcmp(method, "CONNECT") != 0 && !soup_message_headers_get_one(h, "Host")) {
        snprintf(why, whylen, "an HTTP/1.0 request on a Unix socket needs a Host header");
        answer = status_line(SOUP_STATUS_BAD_REQUEST);
    }
    g_free(method);
    g_free(path);
    soup_message_headers_unref(h);
    return answer;
}

static void intake_free(http_intake *in, bool close_fd)
{
    http_server *s = in->s;
    for (http_intake **p = &s->intakes; *p; p = &(*p)->next)
        if (*p == in) {
            *p = in->next;
            break;
        }
    epoll_ctl(s->intake_ep, EPOLL_CTL_DEL, in->fd, NULL);
    if (close_fd)
        close(in->fd);
    s->tally->open--;
    free(in);
    if (!s->intakes && s->intake_sweep) {
        g_source_destroy(s->intake_sweep);
        g_source_unref(s->intake_sweep);
        s->intake_sweep = NULL;
    }
}

/* The answer, best effort (a fresh socket's buffer takes it), then the head is read off so
 * that closing does not reset the connection before the client reads the answer. */
static void answer_and_close(http_intake *in, const char *status, const char *extra_headers,
                             const char *text, size_t head_bytes)
{
    char resp[800];
    int n = http_format_refusal(resp, sizeof resp, status, extra_headers, text);
    if (n > 0 && send(in->fd, resp, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        BN_LOGD(MOD, "%s: the client is gone", status);
    while (head_bytes > 0) {
        ssize_t r = recv(in->fd, in->s->intake_buf, head_bytes, MSG_DONTWAIT);
        if (r <= 0)
            break;
        head_bytes -= (size_t)r;
    }
    shutdown(in->fd, SHUT_WR);
    in->s->requests++;
    intake_free(in, true);
}

/* rdhup: the client closed its side (no more bytes will come). */
static void look(http_intake *in, bool rdhup)
{
    http_server *s = in->s;
    ssize_t n = recv(in->fd, s->intake_buf, HTTP_HEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        intake_free(in, true); /* gone before a head */
        return;
    }
    ssize_t len = n > 0 ? head_length(s->intake_buf, (size_t)n) : -1;
    if (len < 0) {
        if (n == HTTP_HEAD_MAX) {
            char text[160];
            snprintf(text, sizeof text, "request head longer than %d bytes", HTTP_HEAD_MAX);
            answer_and_close(in, "431 Request Header Fields Too Large", "", text, (size_t)n);
        } else if (rdhup) {
            intake_free(in, true); /* closed before the head was complete */
        }
        return; /* else the next bytes wake the epoll set */
    }
    char why[200];
    bool allow;
    const char *status = judge(s->intake_buf, (size_t)len, s->addr.kind == HTTP_LISTEN_UNIX,
                               why, sizeof why, &allow);
    if (status) {
        BN_LOGD(MOD, "refused before SoupServer: %s", why);
        answer_and_close(in, status, allow ? "Allow: GET, HEAD\r\n" : "", why, (size_t)n);
        return;
    }
    int fd = in->fd;
    intake_free(in, false);
    http_adopt(s, fd);
}

static gboolean on_events(gint fd, GIOCondition cond, gpointer data)
{
    (void)cond;
    struct epoll_event ev[EVENTS_PER_WAKE];
    int n = epoll_wait(fd, ev, EVENTS_PER_WAKE, 0);
    (void)data;
    for (int i = 0; i < n; i++)
        look(ev[i].data.ptr, ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
    return G_SOURCE_CONTINUE;
}

static gboolean on_sweep(gpointer data)
{
    http_server *s = data;
    gint64 now = g_get_monotonic_time();
    for (http_intake *in = s->intakes, *next; in; in = next) {
        next = in->next;
        if (now >= in->deadline_us) {
            BN_LOGD(MOD, "a request head not complete in %d s: closed", HTTP_IDLE_TIMEOUT_S);
            intake_free(in, true);
        }
    }
    return G_SOURCE_CONTINUE; /* intake_free destroyed it when the list emptied */
}

bn_status http_intake_open(http_server *s, char *err, size_t errlen)
{
    s->intake_ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->intake_ep < 0) {
        snprintf(err, errlen, "http: epoll_create1: %s", strerror(errno));
        return BN_ERR_IO;
    }
    s->intake_src = g_unix_fd_source_new(s->intake_ep, G_IO_IN);
    g_source_set_callback(s->intake_src, G_SOURCE_FUNC(on_events), s, NULL);
    g_source_attach(s->intake_src, s->ctx);
    return BN_OK;
}

void http_intake_start(http_server *s, int fd)
{
    http_intake *in = calloc(1, sizeof *in);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = in};
    /* bytes already there are reported at once: an edge-triggered add reports the state */
    if (!in || epoll_ctl(s->intake_ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        BN_LOGW(MOD, "cannot watch a connection: %s", in ? strerror(errno) : "out of memory");
        free(in);
        close(fd);
        return;
    }
    in->s = s;
    in->fd = fd;
    in->deadline_us = g_get_monotonic_time() + (gint64)HTTP_IDLE_TIMEOUT_S * G_USEC_PER_SEC;
    in->next = s->intakes;
    s->intakes = in;
    s->tally->open++;
    if (!s->intake_sweep) {
        s->intake_sweep = g_timeout_source_new_seconds(1);
        g_source_set_callback(s->intake_sweep, on_sweep, s, NULL);
        g_source_attach(s->intake_sweep, s->ctx);
    }
}

void http_intake_close(http_server *s)
{
    while (s->intakes)
        intake_free(s->intakes, true);
    if (s->intake_src) {
        g_source_destroy(s->intake_src);
        g_source_unref(s->intake_src);
        s->intake_src = NULL;
    }
    if (s->intake_ep >= 0)
        close(s->intake_ep);
    s->intake_ep = -1;
}
