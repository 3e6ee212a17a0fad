/* One socket client's traffic (server_internal.h): its queue written as the socket takes
 * it, its lines read and run as commands under a rate limit, and dead clients reaped when
 * no callback of the server is on the stack. */
#include "server_internal.h"

#include <errno.h>
#include <glib-unix.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bn_log.h"

/* ---- dead-client reaping ---------------------------------------------------------------- */

void server_enter(server *s)
{
    s->depth++;
}

void server_leave(server *s)
{
    if (--s->depth > 0)
        return;
    server_client *c = s->clients;
    while (c) {
        server_client *next = c->next;
        if (c->dead)
            server_client_free(c);
        c = next;
    }
}

static void client_kill(server_client *c, const char *why)
{
    if (c->dead)
        return;
    BN_LOGD(MOD, "client %llu (pid %d): disconnect: %s", (unsigned long long)c->id,
            (int)c->cred.pid, why);
    c->dead = true;
}

/* ---- writing ---------------------------------------------------------------------------- */

static gboolean on_client_out(gint fd, GIOCondition cond, gpointer data);

static void watch_out(server_client *c, bool on)
{
    if (on && !c->out_src) {
        c->out_src = g_unix_fd_source_new(c->fd, G_IO_OUT);
        g_source_set_callback(c->out_src, G_SOURCE_FUNC(on_client_out), c, NULL);
        g_source_attach(c->out_src, c->srv->ctx);
    } else if (!on && c->out_src) {
        g_source_destroy(c->out_src);
        g_source_unref(c->out_src);
        c->out_src = NULL;
    }
}

/* Writes until the queue is empty or the socket is full. */
void server_client_flush(server_client *c)
{
    while (!c->dead) {
        size_t len;
        const char *p = outqueue_peek(&c->q, &len);
        if (!p) {
            watch_out(c, false);
            return;
        }
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            outqueue_consume(&c->q, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch_out(c, true);
            return;
        }
        client_kill(c, n < 0 ? strerror(errno) : "short write");
        return;
    }
}

static gboolean on_client_out(gint fd, GIOCondition cond, gpointer data)
{
    (void)fd;
    server_client *c = data;
    server *s = c->srv;
    server_enter(s);
    if (cond & (G_IO_ERR | G_IO_HUP))
        client_kill(c, "hang-up");
    else
        server_client_flush(c);
    gboolean keep = !c->dead && c->out_src != NULL;
    if (!keep && c->out_src) {  /* the source is dispatching: drop our reference only */
        g_source_unref(c->out_src);
        c->out_src = NULL;
    }
    server_leave(s);
    return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

void server_client_queue(server_client *c, pub_msg *m)
{
    if (c->dead || !m)
        return;
    outqueue_push(&c->q, m);
    if (!c->out_src)
        server_client_flush(c);
}

void server_send(server *s, server_client *c, pub_msg *m)
{
    server_enter(s);
    server_client_queue(c, m);
    server_leave(s);
}

void server_send_json(server *s, server_client *c, json_t *msg)
{
    if (!msg)
        return;
    size_t len;
    char *line = proto_dump_line(msg, &len);
    json_decref(msg);
    if (!line)
        return;
    pub_msg *m = pub_msg_new(MSG_REPLY, line, len);
    free(line);
    server_send(s, c, m);
    pub_msg_unref(m);
}

static bool passes(const server_client *c, const pub_msg *m)
{
    switch (m->kind) {
    case MSG_LABEL:
        return proto_filter_pass_label(&c->filter, m->label, m->score);
    case MSG_CHANGE:
        return proto_filter_pass_change(&c->filter, m->label);
    default:
        return true;
    }
}

void server_publish(server *s, pub_msg *m)
{
    if (!s || !m)
        return;
    server_enter(s);
    for (server_client *c = s->clients; c; c = c->next)
        if (!c->dead && passes(c, m))
            server_client_queue(c, m);
    server_leave(s);
}

/* ---- reading and commands ----------------------------------------------------------------- */

static void reply_error(server_client *c, const proto_command *cmd, const char *msg)
{
    const char *name = !cmd ? NULL
                       : cmd->kind < PROTO_CMD_COUNT ? proto_cmd_name(cmd->kind)
                       : cmd->name[0] ? cmd->name : NULL;   /* unknown, but readable */
    server_send_json(c->srv, c, proto_error_json(name, cmd ? cmd->id : NULL, msg));
}

static json_t *filter_json(const proto_filter *f)
{
    json_t *labels;
    if (f->all_labels) {
        labels = json_null();
    } else {
        labels = json_array();
        for (int i = 0; i < f->n_labels; i++)
            json_array_append_new(labels, json_string(f->labels[i]));
    }
    return json_pack("{s:o, s:f, s:b}", "labels", labels, "min_score", f->min_score, "changes",
                     f->changes_only);
}


/* True when c may run one more command now; otherwise counts it and, at most once a
 * second, tells the client what happened. */
static bool rate_allows(server_client *c)
{
    gint64 now = g_get_monotonic_time();
    c->tokens += (double)(now - c->refill_us) * 1e-6 * CMD_RATE;
    if (c->tokens > CMD_BURST)
        c->tokens = CMD_BURST;
    c->refill_us = now;
    if (c->tokens >= 1.0) {
        c->tokens -= 1.0;
        return true;
    }
    c->limited++;
    c->srv->rate_limited++;
    if (c->limit_told_us == 0 || now - c->limit_told_us >= 1000000) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "rate limit: more than %.0f commands/s (burst %.0f) from this client; "
                 "%llu ignored so far",
                 CMD_RATE, CMD_BURST, (unsigned long long)c->limited);
        server_send_json(c->srv, c, proto_error_json(NULL, NULL, msg));
        c->limit_told_us = now;
    }
    return false;
}

static void handle_line(server_client *c, const char *line, size_t len)
{
    server *s = c->srv;
    proto_command cmd;
    char err[256];
    if (!rate_allows(c))
        return;
    if (proto_parse_command(line, len, &cmd, err, sizeof err) != BN_OK) {
        reply_error(c, &cmd, err);
        return;
    }
    if (proto_cmd_needs_control(cmd.kind) && !c->authorized) {
        reply_error(c, &cmd, "permission denied");
        return;
    }
    switch (cmd.kind) {
    case PROTO_CMD_PING:
        server_send_json(s, c, proto_reply_json("ping", cmd.id));
        break;
    case PROTO_CMD_SUBSCRIBE: {
        c->filter = cmd.filter;
        json_t *r = proto_reply_json("subscribe", cmd.id);
        if (r)
            json_object_set_new(r, "filter", filter_json(&c->filter));
        server_send_json(s, c, r);
        break;
    }
    default:
        if (s->command)
            s->command(s, c, &cmd, s->user);
        else
            reply_error(c, &cmd, "command not available");
        break;
    }
}

static void process_lines(server_client *c)
{
    size_t start = 0;
    for (size_t i = 0; i < c->rlen && !c->dead; i++) {
        if (c->rbuf[i] != '\n')
            continue;
        size_t end = i;
        if (end > start && c->rbuf[end - 1] == '\r')
            end--;
        /* blank lines are keep-alives, not commands */
        bool blank = true;
        for (size_t k = start; k < end; k++)
            if (c->rbuf[k] != ' ' && c->rbuf[k] != '\t')
                blank = false;
        if (!blank)
            handle_line(c, c->rbuf + start, end - start);
        start = i + 1;
    }
    if (start > 0) {
        memmove(c->rbuf, c->rbuf + start, c->rlen - start);
        c->rlen -= start;
    }
}

static gboolean on_client_hup(gint fd, GIOCondition cond, gpointer data)
{
    server_client *c = data;
    server *s = c->srv;
    (void)fd;
    (void)cond;
    server_enter(s);
    client_kill(c, "peer closed");
    if (c->in_src) {
        g_source_unref(c->in_src);
        c->in_src = NULL;
    }
    server_leave(s);
    return G_SOURCE_REMOVE;
}

/* After a half-close the peer may still read: watch only for the full close (POLLHUP), so a
 * client that vanished does not hold a slot until the next message fails to send. */
static void watch_hup(server_client *c)
{
    c->in_src = g_unix_fd_source_new(c->fd, G_IO_HUP | G_IO_ERR);
    g_source_set_callback(c->in_src, G_SOURCE_FUNC(on_client_hup), c, NULL);
    g_source_attach(c->in_src, c->srv->ctx);
}

gboolean server_on_client_in(gint fd, GIOCondition cond, gpointer data)
{
    server_client *c = data;
    server *s = c->srv;
    (void)cond;
    server_enter(s);
    /* A few reads per wake-up so one chatty client cannot starve the loop. */
    for (int round = 0; round < 4 && !c->dead; round++) {
        if (c->rlen >= c->rcap) {
            /* the buffer holds max_line bytes without a newline */
            s->line_disconnects++;
            client_kill(c, "line longer than publish.max_line");
            break;
        }
        ssize_t n = recv(fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
        if (n > 0) {
            c->rlen += (size_t)n;
            process_lines(c);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n == 0) {
            /* Half-close: answer what was asked, then keep publishing until the peer goes. */
            if (c->rlen > 0 && c->rlen < c->rcap) {
                c->rbuf[c->rlen++] = '\n';
                process_lines(c);
            }
            c->read_eof = true;
        } else {
            client_kill(c, strerror(errno));
        }
        break;
    }
    gboolean keep = !c->dead && !c->read_eof;
    if (!keep && c->in_src) {
        g_source_unref(c->in_src);
        c->in_src = NULL;
    }
    if (!c->dead && c->read_eof)
        watch_hup(c);
    server_leave(s);
    return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

