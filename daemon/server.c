/* Unix-socket publisher on the GLib main loop (see server.h). Clients are plain fds with
 * g_unix_fd sources; a client marked dead is freed only when no callback of this server is
 * on the stack (the `depth` counter), so handlers may fail a client at any point. This file
 * is the socket and the clients' lifecycle; their traffic is server_io.c's. */
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
#include "server_internal.h"

#define MAX_PEER_GROUPS 256
#define CLIENT_SNDBUF (64 * 1024)

static void authorize(server *s, server_client *c);

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

void server_client_free(server_client *c)
{
    server *s = c->srv;
    server_client_stop(c);
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
    c->rtokens = READ_BURST;
    c->rrefill_us = c->refill_us;
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
    server_client_start(c);
    BN_LOGD(MOD, "client %llu connected (pid %d uid %d%s)", (unsigned long long)c->id,
            (int)c->cred.pid, (int)c->cred.uid, c->authorized ? ", control" : "");
    if (s->hello) {
        pub_msg *h = s->hello(s->user);
        server_client_queue(c, h);
        pub_msg_unref(h);
    }
}

static gboolean on_accept(gint fd, GIOCondition cond, gpointer data)
{
    server *s = data;
    (void)cond;
    server_enter(s);
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
    server_leave(s);
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

/* The socket's directory decides who can replace the socket (and, with root's `chown` or
 * `chmod` on a swapped-in symlink, change another file): it must belong to root or to this
 * daemon's user, and must not be writable by everyone unless sticky. A group-writable
 * directory is allowed with a warning (the group is trusted by whoever configured it). */
static bn_status check_dir(server *s, const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(s->dir_fd, &st) != 0) {
        snprintf(err, errlen, "socket directory %s: %s", dir, strerror(errno));
        return BN_ERR_IO;
    }
    if (st.st_uid != 0 && st.st_uid != s->self_uid) {
        snprintf(err, errlen,
                 "socket directory %s belongs to uid %u, neither root nor this daemon's user "
                 "(uid %u): that user could replace the socket; use a directory owned by root "
                 "or uid %u (systemd: RuntimeDirectory=)",
                 dir, (unsigned)st.st_uid, (unsigned)s->self_uid, (unsigned)s->self_uid);
        return BN_ERR_PERMISSION;
    }
    if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX)) {
        snprintf(err, errlen,
                 "socket directory %s is writable by everyone without the sticky bit (mode "
                 "%04o): anyone could replace the socket; chmod o-w or +t it",
                 dir, (unsigned)(st.st_mode & 07777));
        return BN_ERR_PERMISSION;
    }
    if ((st.st_mode & S_IWGRP) && !(st.st_mode & S_ISVTX))
        BN_LOGW(MOD, "socket directory %s is writable by its group (gid %u, mode %04o) without "
                "the sticky bit: members of that group can replace the socket",
                dir, (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
    return BN_OK;
}

/* Opens the socket file in its directory without following a symlink and checks that it is
 * still the socket this server bound; returns an O_PATH fd or -1 with err set. */
static int open_own_socket(server *s, char *err, size_t errlen)
{
    int fd = openat(s->dir_fd, s->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        snprintf(err, errlen, "socket %s: %s", s->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISSOCK(st.st_mode) || st.st_dev != s->path_dev || st.st_ino != s->path_ino) {
        snprintf(err, errlen,
                 "socket %s is no longer the socket this daemon bound (replaced by %s): not "
                 "changing its mode or group",
                 s->path, S_ISLNK(st.st_mode) ? "a symlink" : "another file");
        close(fd);
        return -1;
    }
    return fd;
}

/* Sets the group and mode of the socket file through a descriptor of the checked file, so a
 * symlink or another file swapped in is never changed. */
static bn_status set_socket_access(server *s, bool regroup, gid_t gid, const char *group,
                                   unsigned mode, char *err, size_t errlen)
{
    int fd = open_own_socket(s, err, errlen);
    if (fd < 0)
        return BN_ERR_PERMISSION;
    struct stat st;
    bn_status rc = BN_OK;
    /* The shipped units deny chown (SystemCallFilter=~@privileged): a socket that already has
     * the group (the daemon's own) needs none. */
    if (regroup && fstat(fd, &st) == 0 && st.st_gid != gid &&
        fchownat(fd, "", (uid_t)-1, gid, AT_EMPTY_PATH) != 0) {
        snprintf(err, errlen, "socket %s: cannot set group '%s': %s", s->path, group,
                 strerror(errno));
        rc = BN_ERR_PERMISSION;
    }
    if (rc == BN_OK && fstat(fd, &st) == 0 && (st.st_mode & 07777) != (mode & 07777)) {
        /* chmod has no "this descriptor" form for an O_PATH fd; /proc/self/fd/N names the
         * very file the descriptor holds */
        char proc[40];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        int r = chmod(proc, (mode_t)(mode & 07777));
        if (r != 0 && errno == ENOENT)  /* no /proc: refuses symlinks, never follows them */
            r = fchmodat(s->dir_fd, s->name, (mode_t)(mode & 07777), AT_SYMLINK_NOFOLLOW);
        if (r != 0) {
            snprintf(err, errlen, "socket %s: cannot set mode %04o: %s", s->path, mode,
                     strerror(errno));
            rc = BN_ERR_PERMISSION;
        }
    }
    close(fd);
    return rc;
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

    /* The directory: a missing one (no RuntimeDirectory=, running by hand) is created, one
     * level only; then it is opened once and checked, and everything after works in it. */
    char dir[sizeof s->path];
    memcpy(dir, s->path, plen + 1);
    char *slash = strrchr(dir, '/');
    s->name = s->path + (slash ? (size_t)(slash - dir) + 1 : 0);
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (!*s->name) {
        snprintf(err, errlen, "publish.socket '%s' names a directory, not a socket", s->path);
        return BN_ERR_CONFIG;
    }
    if (slash && slash != dir && mkdir(dir, 0755) == 0)
        BN_LOGI(MOD, "created directory %s", dir);
    s->dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd < 0) {
        snprintf(err, errlen, "socket directory %s: %s", dir, strerror(errno));
        return errno == EACCES ? BN_ERR_PERMISSION : BN_ERR_IO;
    }
    bn_status st = check_dir(s, dir, err, errlen);
    if (st != BN_OK)
        return st;
    st = remove_stale(s->path, err, errlen);
    if (st != BN_OK)
        return st;
    gid_t gid = (gid_t)-1;
    if (p->group && *p->group) {
        st = lookup_group("publish.group", p->group, &gid, err, errlen);
        if (st != BN_OK)
            return st;
    }

    s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0) {
        snprintf(err, errlen, "socket(): %s", strerror(errno));
        return BN_ERR_IO;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, s->path, plen + 1);
    /* The file is born with the configured mode: Linux gives it the socket inode's mode
     * (fchmod) less the umask, so nothing is changed through the path afterwards and there is
     * no moment it is more open than asked. */
    mode_t want = (mode_t)(p->mode & 0777);
    if (fchmod(s->listen_fd, want) != 0)
        BN_LOGD(MOD, "fchmod on the socket before bind: %s (the umask alone sets the mode)",
                strerror(errno));
    mode_t old = umask((mode_t)(~want & 0777));
    int rc = bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    umask(old);
    if (rc != 0) {
        snprintf(err, errlen, "cannot bind socket %s: %s", s->path, strerror(e));
        return e == EACCES || e == EPERM ? BN_ERR_PERMISSION : BN_ERR_IO;
    }
    s->owns_path = true;
    struct stat st2;
    if (fstatat(s->dir_fd, s->name, &st2, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st2.st_mode)) {
        snprintf(err, errlen, "socket %s disappeared or was replaced right after bind", s->path);
        s->owns_path = false;
        return BN_ERR_IO;
    }
    s->path_dev = st2.st_dev;
    s->path_ino = st2.st_ino;
    st = set_socket_access(s, gid != (gid_t)-1, gid, p->group, p->mode & 07777, err, errlen);
    if (st != BN_OK)
        return st;
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
    s->dir_fd = -1;
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
    g_source_set_priority(s->accept_src, CLIENT_PRIORITY);
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
        server_client_free(s->clients);
    if (s->accept_src) {
        g_source_destroy(s->accept_src);
        g_source_unref(s->accept_src);
        s->accept_src = NULL;
    }
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
    for (int i = 0; i < PROTO_CMD_COUNT; i++)
        pub_msg_unref(s->cache[i].msg);
    if (s->owns_path) {
        struct stat st;
        if (fstatat(s->dir_fd, s->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            st.st_dev == s->path_dev && st.st_ino == s->path_ino)
            unlinkat(s->dir_fd, s->name, 0);
    }
    if (s->dir_fd >= 0)
        close(s->dir_fd);
    g_main_context_unref(s->ctx);
    free(s);
}

void server_flush(server *s, int timeout_ms)
{
    if (!s)
        return;
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    server_enter(s);
    for (;;) {
        bool pending = false;
        for (server_client *c = s->clients; c; c = c->next) {
            if (c->dead)
                continue;
            server_client_flush(c);
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
    server_leave(s);
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
        bn_status st = set_socket_access(s, sock_gid != (gid_t)-1, sock_gid, group, mode, err,
                                         errlen);
        if (st != BN_OK)
            return st;
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

uint64_t server_read_paused_total(const server *s)
{
    return s ? s->read_pauses : 0;
}

uint64_t server_reply_paused_total(const server *s)
{
    return s ? s->reply_pauses : 0;
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
