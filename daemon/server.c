/* Unix-socket publisher on the GLib main loop (see server.h). Clients are plain fds with
 * g_unix_fd sources; a client marked dead is freed only when no callback of this server is
 * on the stack (the `depth` counter), so handlers may fail a client at any point. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "bn_log.h"

#define MOD "server"
#define MAX_PEER_GROUPS 256
#define CLIENT_SNDBUF (64 * 1024)

struct server_client {
    server *srv;
    server_client *prev, *next;
    int fd;
    bool dead;
    bool read_eof;          /* peer shut down its write side: keep sending until it closes */
    GSource *in_src, *out_src;
    outqueue q;
    proto_filter filter;
    char *rbuf;
    size_t rlen, rcap;
    struct ucred cred;
    bool authorized;
    uint64_t id;
    /* command rate limit: token bucket, and when this client was last told about it */
    double tokens;
    gint64 refill_us, limit_told_us;
    uint64_t limited;
};

struct server {
    GMainContext *ctx;
    int listen_fd;
    bool activated;
    bool owns_path;
    dev_t path_dev;
    ino_t path_ino;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    GSource *accept_src;
    server_client *clients;
    int n_clients;
    int max_clients, queue, max_line;
    bool has_control_gid;
    gid_t control_gid;
    uid_t self_uid;
    int depth;
    uint64_t next_id, lost_closed, accepted, rejected, line_disconnects, rate_limited;
    server_hello_fn hello;
    server_command_fn command;
    void *user;
};

static void client_free(server_client *c);
static void authorize(server *s, server_client *c);

/* ---- dead-client reaping ---------------------------------------------------------------- */

static void enter(server *s)
{
    s->depth++;
}

static void leave(server *s)
{
    if (--s->depth > 0)
        return;
    server_client *c = s->clients;
    while (c) {
        server_client *next = c->next;
        if (c->dead)
            client_free(c);
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
static void client_flush(server_client *c)
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
    enter(s);
    if (cond & (G_IO_ERR | G_IO_HUP))
        client_kill(c, "hang-up");
    else
        client_flush(c);
    gboolean keep = !c->dead && c->out_src != NULL;
    if (!keep && c->out_src) {  /* the source is dispatching: drop our reference only */
        g_source_unref(c->out_src);
        c->out_src = NULL;
    }
    leave(s);
    return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static void client_queue(server_client *c, pub_msg *m)
{
    if (c->dead || !m)
        return;
    outqueue_push(&c->q, m);
    if (!c->out_src)
        client_flush(c);
}

void server_send(server *s, server_client *c, pub_msg *m)
{
    enter(s);
    client_queue(c, m);
    leave(s);
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
    enter(s);
    for (server_client *c = s->clients; c; c = c->next)
        if (!c->dead && passes(c, m))
            client_queue(c, m);
    leave(s);
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

/* Commands per second each client may send, and the burst it may save up. A person or a
 * script polling stats sends a few a second; a client in a loop (or a hostile one) would
 * otherwise make the event loop parse, authorize and answer without bound, and `reload`
 * or `stats` cost far more than a line. */
#define CMD_RATE 200.0
#define CMD_BURST 500.0

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
    enter(s);
    client_kill(c, "peer closed");
    if (c->in_src) {
        g_source_unref(c->in_src);
        c->in_src = NULL;
    }
    leave(s);
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

static gboolean on_client_in(gint fd, GIOCondition cond, gpointer data)
{
    server_client *c = data;
    server *s = c->srv;
    (void)cond;
    enter(s);
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
    leave(s);
    return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* ---- clients ---------------------------------------------------------------------------- */

static bool peer_in_group(int fd, const struct ucred *cred, gid_t gid)
{
    if (cred->gid == gid)
        return true;
    gid_t groups[MAX_PEER_GROUPS];
    socklen_t len = sizeof groups;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
        return false;
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (groups[i] == gid)
            return true;
    return false;
}

static void client_free(server_client *c)
{
    server *s = c->srv;
    if (c->in_src) {
        g_source_destroy(c->in_src);
        g_source_unref(c->in_src);
    }
    if (c->out_src) {
        g_source_destroy(c->out_src);
        g_source_unref(c->out_src);
    }
    if (c->fd >= 0)
        close(c->fd);
    s->lost_closed += c->q.lost_total;
    outqueue_destroy(&c->q);
    free(c->rbuf);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_clients--;
    free(c);
}

static void refuse(server *s, int fd)
{
    char line[128];
    int n = snprintf(line, sizeof line,
                     "{\"type\":\"error\",\"error\":\"too many clients (publish.max_clients=%d)\"}\n",
                     s->max_clients);
    ssize_t w = send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;    /* best effort: the client is refused either way */
    close(fd);
    s->rejected++;
}

static void client_add(server *s, int fd)
{
    if (s->n_clients >= s->max_clients) {
        refuse(s, fd);
        return;
    }
    server_client *c = calloc(1, sizeof *c);
    if (!c || !outqueue_init(&c->q, s->queue) || !(c->rbuf = malloc((size_t)s->max_line))) {
        if (c)
            outqueue_destroy(&c->q);
        free(c);
        close(fd);
        BN_LOGW(MOD, "out of memory accepting a client");
        return;
    }
    /* Bound what the kernel buffers per client: beyond it the client's own queue drops the
     * oldest messages, so a slow reader gets fresh labels instead of a backlog. */
    int sndbuf = CLIENT_SNDBUF;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    c->srv = s;
    c->fd = fd;
    c->rcap = (size_t)s->max_line;
    c->id = ++s->next_id;
    c->tokens = CMD_BURST;
    c->refill_us = g_get_monotonic_time();
    proto_filter_init(&c->filter);
    socklen_t cl = sizeof c->cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &cl) != 0) {
        c->cred.pid = 0;
        c->cred.uid = (uid_t)-1;
        c->cred.gid = (gid_t)-1;
    }
    authorize(s, c);
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    s->n_clients++;
    s->accepted++;
    c->in_src = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(c->in_src, G_SOURCE_FUNC(on_client_in), c, NULL);
    g_source_attach(c->in_src, s->ctx);
    BN_LOGD(MOD, "client %llu connected (pid %d uid %d%s)", (unsigned long long)c->id,
            (int)c->cred.pid, (int)c->cred.uid, c->authorized ? ", control" : "");
    if (s->hello) {
        pub_msg *h = s->hello(s->user);
        client_queue(c, h);
        pub_msg_unref(h);
    }
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
    server *s = data;
    (void)cond;
    enter(s);
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                BN_LOGW(MOD, "accept on %s: %s", s->path, strerror(errno));
            break;
        }
        client_add(s, cfd);
    }
    leave(s);
    return G_SOURCE_CONTINUE;
}

/* ---- listening socket ------------------------------------------------------------------- */

static bn_status lookup_group(const char *what, const char *name, gid_t *gid, char *err,
                              size_t errlen)
{
    struct group gr, *res = NULL;
    char buf[4096];
    int rc = getgrnam_r(name, &gr, buf, sizeof buf, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "%s '%s': no such group", what, name);
        return BN_ERR_CONFIG;
    }
    *gid = gr.gr_gid;
    return BN_OK;
}

/* Removes PATH only if it is a socket nobody answers on. */
static bn_status remove_stale(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return BN_OK;
        snprintf(err, errlen, "socket %s: %s", path, strerror(errno));
        return BN_ERR_IO;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "socket %s: exists and is not a socket; not removing it", path);
        return BN_ERR_IO;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(): %s", strerror(errno));
        return BN_ERR_IO;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "socket %s: another daemon is listening on it", path);
        return BN_ERR_BUSY;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "socket %s: exists and cannot be checked: %s", path, strerror(e));
        return BN_ERR_IO;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "socket %s: cannot remove stale socket: %s", path, strerror(errno));
        return BN_ERR_IO;
    }
    BN_LOGI(MOD, "removed stale socket %s", path);
    return BN_OK;
}

static bn_status bind_path(server *s, const server_params *p, char *err, size_t errlen)
{
    size_t plen = p->path ? strlen(p->path) : 0;
    if (plen == 0) {
        snprintf(err, errlen, "publish.socket is empty");
        return BN_ERR_CONFIG;
    }
    if (plen >= sizeof s->path) {
        snprintf(err, errlen,
                 "publish.socket '%s' is %zu bytes long; a Unix socket path must be shorter "
                 "than %zu bytes",
                 p->path, plen, sizeof s->path);
        return BN_ERR_CONFIG;
    }
    memcpy(s->path, p->path, plen + 1);
    bn_status st = remove_stale(s->path, err, errlen);
    if (st != BN_OK)
        return st;

    /* A missing parent (no RuntimeDirectory=, running by hand) is created, one level only. */
    char dir[sizeof s->path];
    memcpy(dir, s->path, plen + 1);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) == 0)
            BN_LOGI(MOD, "created directory %s", dir);
    }

    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0) {
        snprintf(err, errlen, "socket(): %s", strerror(errno));
        return BN_ERR_IO;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, s->path, plen + 1);
    /* Create the node owner-only, then widen to the configured mode: no window in which it
     * is more open than asked. */
    mode_t old = umask(0177);
    int rc = bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    umask(old);
    if (rc != 0) {
        snprintf(err, errlen, "cannot bind socket %s: %s", s->path, strerror(e));
        return e == EACCES || e == EPERM ? BN_ERR_PERMISSION : BN_ERR_IO;
    }
    s->owns_path = true;
    struct stat st2;
    bool have_st2 = lstat(s->path, &st2) == 0;
    if (have_st2) {
        s->path_dev = st2.st_dev;
        s->path_ino = st2.st_ino;
    }
    if (p->group && *p->group) {
        gid_t gid;
        st = lookup_group("publish.group", p->group, &gid, err, errlen);
        if (st != BN_OK)
            return st;
        /* The shipped units deny chown (SystemCallFilter=~@privileged): a socket that
         * already has the group (the daemon's own) needs none. */
        if (!(have_st2 && st2.st_gid == gid) && chown(s->path, (uid_t)-1, gid) != 0) {
            snprintf(err, errlen, "socket %s: cannot set group '%s': %s", s->path, p->group,
                     strerror(errno));
            return BN_ERR_PERMISSION;
        }
    }
    if (chmod(s->path, (mode_t)(p->mode & 07777)) != 0) {
        snprintf(err, errlen, "socket %s: cannot set mode %04o: %s", s->path, p->mode,
                 strerror(errno));
        return BN_ERR_PERMISSION;
    }
    if (listen(s->listen_fd, 128) != 0) {
        snprintf(err, errlen, "listen on %s: %s", s->path, strerror(errno));
        return BN_ERR_IO;
    }
    return BN_OK;
}

bn_status server_open(const server_params *p, server **out, char *err, size_t errlen)
{
    *out = NULL;
    if (p->max_clients < 1 || p->queue < 1 || p->max_line < 16) {
        snprintf(err, errlen, "publish limits out of range (max_clients %d, queue %d, max_line %d)",
                 p->max_clients, p->queue, p->max_line);
        return BN_ERR_INVALID_ARG;
    }
    server *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    s->listen_fd = -1;
    s->ctx = p->context ? g_main_context_ref(p->context) : g_main_context_ref_thread_default();
    s->max_clients = p->max_clients;
    s->queue = p->queue;
    s->max_line = p->max_line;
    s->hello = p->hello;
    s->command = p->command;
    s->user = p->user;
    s->self_uid = geteuid();
    bn_status st = BN_OK;
    if (p->control_group && *p->control_group) {
        st = lookup_group("publish.control_group", p->control_group, &s->control_gid, err,
                          errlen);
        s->has_control_gid = st == BN_OK;
    }
    if (st == BN_OK) {
        if (p->listen_fd >= 0) {
            s->listen_fd = p->listen_fd;
            s->activated = true;
            int fl = fcntl(s->listen_fd, F_GETFL);
            if (fl < 0 || fcntl(s->listen_fd, F_SETFL, fl | O_NONBLOCK) != 0) {
                snprintf(err, errlen, "socket passed by systemd: %s", strerror(errno));
                st = BN_ERR_IO;
            }
            snprintf(s->path, sizeof s->path, "%s", "(systemd socket)");
        } else {
            st = bind_path(s, p, err, errlen);
        }
    }
    if (st != BN_OK) {
        server_close(s);
        return st;
    }
    s->accept_src = g_unix_fd_source_new(s->listen_fd, G_IO_IN);
    g_source_set_callback(s->accept_src, G_SOURCE_FUNC(on_accept), s, NULL);
    g_source_attach(s->accept_src, s->ctx);
    *out = s;
    return BN_OK;
}

void server_close(server *s)
{
    if (!s)
        return;
    s->depth++;     /* nothing may free clients under us */
    while (s->clients)
        client_free(s->clients);
    if (s->accept_src) {
        g_source_destroy(s->accept_src);
        g_source_unref(s->accept_src);
        s->accept_src = NULL;
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
    if (s->owns_path) {
        struct stat st;
        if (lstat(s->path, &st) == 0 && st.st_dev == s->path_dev && st.st_ino == s->path_ino)
            unlink(s->path);
    }
    g_main_context_unref(s->ctx);
    free(s);
}

void server_flush(server *s, int timeout_ms)
{
    if (!s)
        return;
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    enter(s);
    for (;;) {
        bool pending = false;
        for (server_client *c = s->clients; c; c = c->next) {
            if (c->dead)
                continue;
            client_flush(c);
            if (!c->dead && !outqueue_empty(&c->q))
                pending = true;
        }
        gint64 left = end - g_get_monotonic_time();
        if (!pending || left <= 0)
            break;
        /* Wait for any socket to drain instead of spinning. */
        GPollFD fds[256];
        int n = 0;
        for (server_client *c = s->clients; c && n < 256; c = c->next)
            if (!c->dead && !outqueue_empty(&c->q))
                fds[n++] = (GPollFD){.fd = c->fd, .events = G_IO_OUT};
        g_poll(fds, (guint)n, (gint)((left + 999) / 1000));
    }
    leave(s);
}

static void authorize(server *s, server_client *c)
{
    /* The daemon's own uid may signal or ptrace it anyway, so refusing it adds nothing. */
    c->authorized = c->cred.uid == 0 || c->cred.uid == s->self_uid ||
                    (s->has_control_gid && peer_in_group(c->fd, &c->cred, s->control_gid));
}

bn_status server_check_access(const char *group, const char *control_group, char *err,
                              size_t errlen)
{
    gid_t gid;
    if (group && *group && lookup_group("publish.group", group, &gid, err, errlen) != BN_OK)
        return BN_ERR_CONFIG;
    if (control_group && *control_group &&
        lookup_group("publish.control_group", control_group, &gid, err, errlen) != BN_OK)
        return BN_ERR_CONFIG;
    return BN_OK;
}

bn_status server_set_access(server *s, unsigned mode, const char *group,
                            const char *control_group, char *err, size_t errlen)
{
    gid_t sock_gid = (gid_t)-1, ctl_gid = 0;
    bool has_ctl = control_group && *control_group;
    if (group && *group && lookup_group("publish.group", group, &sock_gid, err, errlen) != BN_OK)
        return BN_ERR_CONFIG;
    if (has_ctl &&
        lookup_group("publish.control_group", control_group, &ctl_gid, err, errlen) != BN_OK)
        return BN_ERR_CONFIG;
    if (s->owns_path) {
        struct stat cur;
        bool regroup = sock_gid != (gid_t)-1 &&
                       !(lstat(s->path, &cur) == 0 && cur.st_gid == sock_gid);
        if (regroup && chown(s->path, (uid_t)-1, sock_gid) != 0) {
            snprintf(err, errlen, "socket %s: cannot set group '%s': %s", s->path, group,
                     strerror(errno));
            return BN_ERR_PERMISSION;
        }
        if (chmod(s->path, (mode_t)(mode & 07777)) != 0) {
            snprintf(err, errlen, "socket %s: cannot set mode %04o: %s", s->path, mode,
                     strerror(errno));
            return BN_ERR_PERMISSION;
        }
    }
    s->has_control_gid = has_ctl;
    s->control_gid = ctl_gid;
    for (server_client *c = s->clients; c; c = c->next)
        authorize(s, c);
    return BN_OK;
}

void server_set_limits(server *s, int max_clients, int queue, int max_line)
{
    if (max_clients >= 1)
        s->max_clients = max_clients;
    if (queue >= 1)
        s->queue = queue;
    if (max_line >= 16 && max_line != s->max_line) {
        /* Clients keep their buffers; a larger limit applies to new clients. */
        s->max_line = max_line;
    }
}

int server_client_count(const server *s)
{
    return s ? s->n_clients : 0;
}

uint64_t server_lost_total(const server *s)
{
    if (!s)
        return 0;
    uint64_t n = s->lost_closed;
    for (server_client *c = s->clients; c; c = c->next)
        n += c->q.lost_total;
    return n;
}

uint64_t server_accepted_total(const server *s)
{
    return s ? s->accepted : 0;
}

uint64_t server_rejected_total(const server *s)
{
    return s ? s->rejected : 0;
}

uint64_t server_rate_limited_total(const server *s)
{
    return s ? s->rate_limited : 0;
}

uint64_t server_line_disconnects(const server *s)
{
    return s ? s->line_disconnects : 0;
}

bool server_client_authorized(const server_client *c)
{
    return c->authorized;
}

pid_t server_client_pid(const server_client *c)
{
    return c->cred.pid;
}

bool server_activated(const server *s)
{
    return s && s->activated;
}
