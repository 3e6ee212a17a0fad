/* One socket client's traffic (server_internal.h): its queue written as the socket takes
 * it, its lines read within a byte budget and run as commands under a rate limit, its
 * reading paused while its replies pile up unread, and dead clients reaped when no callback
 * of the server is on the stack. */
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
static void check_replies_drained(server_client *c);

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
            check_replies_drained(c);
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

/* ---- cached replies ------------------------------------------------------------------- */

static void cache_build(server *s, int k, const char *name, uint64_t generation,
                        server_build_fn build, void *user)
{
    pub_msg_unref(s->cache[k].msg);
    s->cache[k].msg = NULL;
    json_t *r = build(user);
    if (!r)
        return;
    size_t len;
    char *line = proto_dump_line(r, &len);
    json_decref(r);
    /* the id goes where proto_reply_json puts it: after "ok":true */
    json_t *head = proto_reply_json(name, NULL);
    size_t hlen = 0;
    char *h = head ? proto_dump_line(head, &hlen) : NULL;
    json_decref(head);
    if (line && h && hlen >= 2 && len > hlen - 2 && memcmp(line, h, hlen - 2) == 0) {
        s->cache[k].msg = pub_msg_new(MSG_REPLY, line, len);
        s->cache[k].prefix = hlen - 2;  /* without the closing brace and newline */
        s->cache[k].generation = generation;
        s->cache_builds++;
    }
    free(h);
    free(line);
}

void server_send_cached(server *s, server_client *c, const proto_command *cmd,
                        uint64_t generation, server_build_fn build, void *user)
{
    int k = (int)cmd->kind;
    if (k < 0 || k >= PROTO_CMD_COUNT)
        return;
    gint64 now = g_get_monotonic_time();
    if (now - s->cache[k].window_us >= (gint64)SERVER_CACHE_MS * 1000) {
        s->cache[k].window_us = now;
        s->cache[k].builds = 0;
    }
    if (!s->cache[k].msg || s->cache[k].builds < SERVER_CACHE_BUILDS ||
        s->cache[k].generation != generation) {
        cache_build(s, k, proto_cmd_name(cmd->kind), generation, build, user);
        s->cache[k].builds++;
    } else {
        s->cache_hits++;
    }
    pub_msg *m = s->cache[k].msg;
    if (!m) {
        server_send_json(s, c, proto_error_json(proto_cmd_name(cmd->kind), cmd->id,
                                                "out of memory"));
        return;
    }
    if (!cmd->id[0]) {
        server_send(s, c, m);   /* shared by every client it is queued for */
        return;
    }
    /* cmd->id is compact JSON already (protocol.c serialized it) */
    size_t idl = strlen(cmd->id), pre = s->cache[k].prefix;
    size_t len = m->len + idl + 6;
    char *line = malloc(len + 1);
    if (!line)
        return;
    memcpy(line, m->data, pre);
    memcpy(line + pre, ",\"id\":", 6);
    memcpy(line + pre + 6, cmd->id, idl);
    memcpy(line + pre + 6 + idl, m->data + pre, m->len - pre);
    pub_msg *r = pub_msg_new(MSG_REPLY, line, len);
    free(line);
    server_send(s, c, r);
    pub_msg_unref(r);
}

void server_cache_invalidate(server *s)
{
    for (int k = 0; k < PROTO_CMD_COUNT; k++) {
        pub_msg_unref(s->cache[k].msg);
        s->cache[k].msg = NULL;
    }
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

/* Runs one line; true when it was a command that got an answer (the costly kind). A blank
 * line is a keep-alive: it needs no answer but counts against the rate limit like a
 * command, or a client could keep the loop scanning newlines without bound. */
static bool handle_line(server_client *c, const char *line, size_t len)
{
    server *s = c->srv;
    proto_command cmd;
    char err[256];
    bool blank = true;
    for (size_t k = 0; k < len && blank; k++)
        blank = line[k] == ' ' || line[k] == '\t';
    if (!rate_allows(c) || blank)
        return false;
    if (proto_parse_command(line, len, &cmd, err, sizeof err) != BN_OK) {
        reply_error(c, &cmd, err);
        return true;
    }
    if (proto_cmd_needs_control(cmd.kind) && !c->authorized) {
        reply_error(c, &cmd, "permission denied");
        return true;
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
    return true;
}

/* ---- pausing a client ------------------------------------------------------------------ */

static int reply_slots(const server_client *c)
{
    return c->q.cap / 2 > 1 ? c->q.cap / 2 : 1;
}

static bool over_reply_budget(const server_client *c)
{
    return c->q.reply_bytes >= REPLY_BUDGET || c->q.replies >= reply_slots(c);
}

static bool replies_drained(const server_client *c)
{
    return c->q.reply_bytes <= REPLY_BUDGET / 4 && c->q.replies <= reply_slots(c) / 4;
}

/* Counts a pause; logs the first of each kind per client, and at most one line a second. */
static void note_pause(server_client *c, bool replies)
{
    server *s = c->srv;
    bool *told = replies ? &c->told_replies : &c->told_read;
    if (replies)
        s->reply_pauses++;
    else
        s->read_pauses++;
    if (*told)
        return;
    *told = true;
    gint64 now = g_get_monotonic_time();
    if (s->pause_log_us && now - s->pause_log_us < 1000000) {
        s->pause_log_skipped++;
        return;
    }
    char more[96] = "";
    if (s->pause_log_skipped)
        snprintf(more, sizeof more, " (%llu other clients paused since the last such line)",
                 (unsigned long long)s->pause_log_skipped);
    if (replies)
        BN_LOGI(MOD, "client %llu (pid %d): reading paused: %d KiB of replies unread; it "
                "resumes when they are read%s", (unsigned long long)c->id, (int)c->cred.pid,
                REPLY_BUDGET / 1024, more);
    else
        BN_LOGI(MOD, "client %llu (pid %d): reading paused: more than %.0f KiB/s sent; it "
                "resumes as the budget refills%s", (unsigned long long)c->id, (int)c->cred.pid,
                READ_RATE / 1024, more);
    s->pause_log_us = now;
    s->pause_log_skipped = 0;
}

static void drop_source(GSource **src)
{
    if (*src) {
        g_source_destroy(*src);
        g_source_unref(*src);
        *src = NULL;
    }
}

static gboolean on_client_in(gint fd, GIOCondition cond, gpointer data);
static gboolean on_client_hup(gint fd, GIOCondition cond, gpointer data);
static gboolean on_client_resume(gpointer data);

/* Attaches exactly the sources c's state needs: the input watch while it may be read, an
 * idle source while lines wait, a timer while the read budget refills, the hang-up watch
 * after a half-close. Called after every change of that state. */
static void update_sources(server_client *c)
{
    if (c->dead)
        return;     /* freed, with its sources, by the outermost server_leave */
    bool runnable = !c->hold_replies;
    bool want_in = runnable && !c->pending && !c->hold_read && !c->read_eof;
    bool want_idle = runnable && c->pending;
    bool want_timer = runnable && !c->pending && c->hold_read && !c->read_eof;
    if (want_in && !c->in_src) {
        c->in_src = g_unix_fd_source_new(c->fd, G_IO_IN);
        g_source_set_priority(c->in_src, CLIENT_PRIORITY);
        g_source_set_callback(c->in_src, G_SOURCE_FUNC(on_client_in), c, NULL);
        g_source_attach(c->in_src, c->srv->ctx);
    } else if (!want_in) {
        drop_source(&c->in_src);
    }
    if (c->resume_src && (!(want_idle || want_timer) || c->resume_is_timer != want_timer))
        drop_source(&c->resume_src);
    if ((want_idle || want_timer) && !c->resume_src) {
        guint ms = 0;
        if (want_timer) {
            /* until half a wake-up's worth has refilled */
            double need = READ_PER_WAKE / 2.0 - c->rtokens;
            ms = need > 0 ? (guint)(need / READ_RATE * 1000.0) + 1 : 1;
        }
        c->resume_src = want_timer ? g_timeout_source_new(ms) : g_idle_source_new();
        c->resume_is_timer = want_timer;
        g_source_set_priority(c->resume_src, CLIENT_PRIORITY);
        g_source_set_callback(c->resume_src, on_client_resume, c, NULL);
        g_source_attach(c->resume_src, c->srv->ctx);
    }
    /* After a half-close the peer may still read: watch only for the full close (POLLHUP),
     * so a client that vanished does not hold a slot until the next message fails. */
    if (c->read_eof && !c->hup_src) {
        c->hup_src = g_unix_fd_source_new(c->fd, G_IO_HUP | G_IO_ERR);
        g_source_set_callback(c->hup_src, G_SOURCE_FUNC(on_client_hup), c, NULL);
        g_source_attach(c->hup_src, c->srv->ctx);
    }
}

void server_client_stop(server_client *c)
{
    drop_source(&c->in_src);
    drop_source(&c->out_src);
    drop_source(&c->hup_src);
    drop_source(&c->resume_src);
}

void server_client_start(server_client *c)
{
    update_sources(c);
}

/* Called as replies are written: a client paused for unread replies resumes. */
static void check_replies_drained(server_client *c)
{
    if (c->hold_replies && replies_drained(c)) {
        c->hold_replies = false;
        update_sources(c);
    }
}

/* ---- reading -------------------------------------------------------------------------- */

/* Runs the complete lines in c's buffer: at most CMDS_PER_WAKE commands, and none once the
 * client's unread replies are over budget. c->pending says whether complete lines are left. */
static void process_lines(server_client *c)
{
    size_t start = 0;
    int ran = 0;
    c->pending = false;
    for (size_t i = 0; i < c->rlen && !c->dead; i++) {
        if (c->rbuf[i] != '\n')
            continue;
        if (ran >= CMDS_PER_WAKE || c->hold_replies) {
            c->pending = true;
            break;
        }
        size_t end = i;
        if (end > start && c->rbuf[end - 1] == '\r')
            end--;
        if (handle_line(c, c->rbuf + start, end - start))
            ran++;
        start = i + 1;
        if (!c->hold_replies && !c->dead && over_reply_budget(c)) {
            c->hold_replies = true;
            note_pause(c, true);
        }
    }
    if (start > 0 && !c->dead) {
        memmove(c->rbuf, c->rbuf + start, c->rlen - start);
        c->rlen -= start;
    }
}

/* One recv within the read budget, then the lines it completed. */
static void read_some(server_client *c)
{
    server *s = c->srv;
    if (c->rlen >= c->rcap) {
        /* the buffer holds max_line bytes without a newline */
        s->line_disconnects++;
        client_kill(c, "line longer than publish.max_line");
        return;
    }
    gint64 now = g_get_monotonic_time();
    c->rtokens += (double)(now - c->rrefill_us) * 1e-6 * READ_RATE;
    if (c->rtokens > READ_BURST)
        c->rtokens = READ_BURST;
    c->rrefill_us = now;
    if (c->rtokens < 1.0) {
        if (!c->hold_read)
            note_pause(c, false);
        c->hold_read = true;
        return;
    }
    c->hold_read = false;
    size_t want = c->rcap - c->rlen;
    if (want > READ_PER_WAKE)
        want = READ_PER_WAKE;
    if ((double)want > c->rtokens)
        want = (size_t)c->rtokens;
    ssize_t n;
    do
        n = recv(c->fd, c->rbuf + c->rlen, want, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        c->rtokens -= (double)n;
        c->rlen += (size_t)n;
        process_lines(c);
    } else if (n == 0) {
        /* Half-close: answer what was asked, then keep publishing until the peer goes. */
        if (c->rlen > 0 && c->rlen < c->rcap) {
            c->rbuf[c->rlen++] = '\n';
            process_lines(c);
        }
        c->read_eof = true;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        client_kill(c, strerror(errno));
    }
}

/* Whatever c may do now: left-over lines first, then new input. */
static void client_work(server_client *c)
{
    if (!c->dead && c->pending && !c->hold_replies)
        process_lines(c);
    if (!c->dead && !c->pending && !c->hold_replies && !c->read_eof)
        read_some(c);
    update_sources(c);
}

static gboolean on_client_in(gint fd, GIOCondition cond, gpointer data)
{
    server_client *c = data;
    server *s = c->srv;
    (void)fd;
    (void)cond;
    server_enter(s);
    client_work(c);     /* drops this source itself when c is no longer to be read */
    server_leave(s);
    return G_SOURCE_CONTINUE;
}

static gboolean on_client_resume(gpointer data)
{
    server_client *c = data;
    server *s = c->srv;
    server_enter(s);
    g_source_unref(c->resume_src);  /* returning REMOVE destroys it */
    c->resume_src = NULL;
    client_work(c);
    server_leave(s);
    return G_SOURCE_REMOVE;
}

static gboolean on_client_hup(gint fd, GIOCondition cond, gpointer data)
{
    server_client *c = data;
    server *s = c->srv;
    (void)fd;
    (void)cond;
    server_enter(s);
    client_kill(c, "peer closed");
    update_sources(c);
    server_leave(s);
    return G_SOURCE_CONTINUE;
}
