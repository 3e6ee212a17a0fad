/* The socket server with real Unix sockets on one GMainContext: hello, broadcast with
 * filters, a slow reader losing only its own messages, oversized lines, bad commands, the
 * per-client command rate limit (blank lines included), the read budget, reading paused
 * while replies are unread, cached replies, permission checks, stale-socket handling, path
 * length and mode, the socket directory's owner and mode, no symlink followed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bn_log.h"
#include "server.h"

static char last_warning[512];
static void capture_log(bn_log_level level, const char *module, const char *msg, void *user)
{
    (void)module;
    (void)user;
    if (level == BN_LOG_WARN)
        snprintf(last_warning, sizeof last_warning, "%s", msg);
}

typedef struct {
    GMainContext *ctx;
    char dir[64];
    char path[128];
    server *srv;
    int commands;
    int builds;         /* cached stats replies built */
    uint64_t generation;
} fixture;

typedef struct {
    int fd;
    char buf[1 << 16];
    size_t len;
} client;

static pub_msg *make_msg(msg_kind kind, const char *label, double score, int seq)
{
    char line[256];
    int n = snprintf(line, sizeof line, "{\"type\":\"%s\",\"seq\":%d,\"label\":\"%s\"}\n",
                     kind == MSG_LABEL ? "label" : kind == MSG_CHANGE ? "change" : "source", seq,
                     label);
    pub_msg *m = pub_msg_new(kind, line, (size_t)n);
    snprintf(m->label, sizeof m->label, "%s", label);
    m->score = score;
    return m;
}

static pub_msg *hello(void *user)
{
    (void)user;
    const char *h = "{\"type\":\"hello\",\"v\":1}\n";
    return pub_msg_new(MSG_HELLO, h, strlen(h));
}

static json_t *build_stats(void *user)
{
    fixture *f = user;
    f->builds++;
    json_t *r = proto_reply_json("stats", NULL);
    json_object_set_new(r, "stats", json_pack("{s:i}", "build", f->builds));
    return r;
}

static void on_command(server *srv, server_client *c, const proto_command *cmd, void *user)
{
    fixture *f = user;
    f->commands++;
    if (cmd->kind == PROTO_CMD_STATS)
        server_send_cached(srv, c, cmd, f->generation, build_stats, f);
    else
        server_send_json(srv, c, proto_reply_json(proto_cmd_name(cmd->kind), cmd->id));
}

static server_params params(fixture *f)
{
    return (server_params){.path = f->path, .mode = 0660, .max_clients = 8, .queue = 16,
                           .max_line = 1024, .listen_fd = -1, .context = f->ctx, .hello = hello,
                           .command = on_command, .user = f};
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/bn-srv-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/s.sock", f->dir);
    f->ctx = g_main_context_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    server_close(f->srv);
    g_main_context_unref(f->ctx);
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void open_server(fixture *f, server_params p)
{
    char err[512];
    bn_status st = server_open(&p, &f->srv, err, sizeof err);
    if (st != BN_OK)
        fail_msg("server_open: %s", err);
}

static void spin(fixture *f)
{
    while (g_main_context_iteration(f->ctx, FALSE))
        ;
}

static client *connect_client(fixture *f)
{
    client *c = calloc(1, sizeof *c);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, f->path);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    spin(f);
    return c;
}

static void client_free(client *c)
{
    close(c->fd);
    free(c);
}

/* Next line from c (without '\n'), running the server's loop while waiting; NULL on EOF or
 * after timeout_ms. */
static char *read_line(fixture *f, client *c, int timeout_ms)
{
    static char line[1 << 16];
    for (int waited = 0; waited <= timeout_ms;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            memcpy(line, c->buf, n);
            line[n] = '\0';
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            return line;
        }
        spin(f);
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, 5) == 1) {
            ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
            if (r <= 0)
                return NULL;
            c->len += (size_t)r;
        } else {
            waited += 5;
        }
    }
    return NULL;
}

static void send_str(fixture *f, client *c, const char *s)
{
    assert_int_equal(send(c->fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
    spin(f);
}

static void test_hello_and_broadcast(void **state)
{
    fixture *f = *state;
    open_server(f, params(f));
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);

    client *a = connect_client(f), *b = connect_client(f);
    assert_int_equal(server_client_count(f->srv), 2);
    assert_string_equal(read_line(f, a, 1000), "{\"type\":\"hello\",\"v\":1}");
    assert_string_equal(read_line(f, b, 1000), "{\"type\":\"hello\",\"v\":1}");
    pub_msg *m = make_msg(MSG_LABEL, "Bag", 0.9, 1);
    server_publish(f->srv, m);
    pub_msg_unref(m);
    assert_string_equal(read_line(f, a, 1000), "{\"type\":\"label\",\"seq\":1,\"label\":\"Bag\"}");
    assert_string_equal(read_line(f, b, 1000), "{\"type\":\"label\",\"seq\":1,\"label\":\"Bag\"}");

    /* b filters: only Coat, only changes */
    send_str(f, b, "{\"cmd\":\"subscribe\",\"labels\":[\"Coat\"],\"changes\":true,\"id\":3}\n");
    char *r = read_line(f, b, 1000);
    assert_non_null(r);
    assert_non_null(strstr(r, "\"type\":\"reply\",\"cmd\":\"subscribe\",\"ok\":true,\"id\":3"));
    pub_msg *msgs[] = {make_msg(MSG_LABEL, "Coat", 0.9, 2), make_msg(MSG_CHANGE, "Bag", 0.9, 3),
                       make_msg(MSG_CHANGE, "Coat", 0.9, 4), make_msg(MSG_SOURCE, "", 0, 5)};
    for (int i = 0; i < 4; i++) {
        server_publish(f->srv, msgs[i]);
        pub_msg_unref(msgs[i]);
    }
    assert_non_null(strstr(read_line(f, b, 1000), "\"seq\":4"));
    assert_non_null(strstr(read_line(f, b, 1000), "\"seq\":5"));
    for (int seq = 2; seq <= 5; seq++) {
        char want[32];
        snprintf(want, sizeof want, "\"seq\":%d", seq);
        assert_non_null(strstr(read_line(f, a, 1000), want));
    }
    client_free(a);
    client_free(b);
    /* closed clients are noticed and removed */
    for (int i = 0; i < 50 && server_client_count(f->srv) > 0; i++) {
        m = make_msg(MSG_LABEL, "Bag", 0.9, 9);
        server_publish(f->srv, m);
        pub_msg_unref(m);
        spin(f);
    }
    assert_int_equal(server_client_count(f->srv), 0);
    server_close(f->srv);
    f->srv = NULL;
    assert_int_equal(lstat(f->path, &st), -1);    /* socket removed on close */
}

static void test_slow_client_loses_only_its_own(void **state)
{
    fixture *f = *state;
    open_server(f, params(f));
    client *fast = connect_client(f), *slow = connect_client(f);
    int small = 4096;
    setsockopt(slow->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    assert_non_null(read_line(f, fast, 1000));
    assert_non_null(read_line(f, slow, 1000));
    /* 2000 messages of ~600 bytes: far more than the slow client's socket + 16-message queue */
    char pad[600];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    const int total = 2000;
    for (int i = 1; i <= total; i++) {
        char line[800];
        int n = snprintf(line, sizeof line, "{\"type\":\"label\",\"seq\":%d,\"p\":\"%s\"}\n", i,
                         pad);
        pub_msg *m = pub_msg_new(MSG_LABEL, line, (size_t)n);
        server_publish(f->srv, m);
        pub_msg_unref(m);
        char want[32];
        snprintf(want, sizeof want, "\"seq\":%d,", i);
        char *r = read_line(f, fast, 1000);
        assert_non_null(r);
        assert_non_null(strstr(r, want));
        assert_null(strstr(r, "lost"));
    }
    assert_true(server_lost_total(f->srv) > 0);
    /* the slow client now reads: every seq it gets is increasing, and seqs + lost = total */
    int last = 0;
    long lost = 0, got = 0;
    char *r;
    while ((r = read_line(f, slow, 200)) != NULL) {
        int seq = atoi(strstr(r, "\"seq\":") + 6);
        assert_true(seq > last);
        char *l = strstr(r, "\"lost\":");
        long this_lost = l ? atol(l + 7) : 0;
        assert_int_equal(seq - last - 1, this_lost);
        lost += this_lost;
        got++;
        last = seq;
    }
    assert_int_equal(last, total);
    assert_int_equal(got + lost, total);
    assert_true(lost > 0);
    assert_int_equal((uint64_t)lost, server_lost_total(f->srv));
    client_free(fast);
    client_free(slow);
}

static void test_bad_input(void **state)
{
    fixture *f = *state;
    open_server(f, params(f));
    client *c = connect_client(f);
    assert_non_null(read_line(f, c, 1000));
    send_str(f, c, "this is not json\n");
    char *r = read_line(f, c, 1000);
    assert_non_null(r);
    assert_non_null(strstr(r, "\"type\":\"error\""));
    assert_non_null(strstr(r, "malformed JSON"));
    send_str(f, c, "{\"cmd\":\"launch\"}\r\n\n   \n");
    r = read_line(f, c, 1000);
    assert_non_null(strstr(r, "unknown command 'launch'"));
    assert_non_null(strstr(r, "\"cmd\":\"launch\""));   /* readable, so echoed */
    send_str(f, c, "{\"cmd\":\"stats\"}\n{\"cmd\":\"ping\",\"id\":\"p\"}\n");
    assert_non_null(strstr(read_line(f, c, 1000), "\"cmd\":\"stats\""));
    assert_non_null(strstr(read_line(f, c, 1000), "\"cmd\":\"ping\",\"ok\":true,\"id\":\"p\""));
    assert_int_equal(f->commands, 1);   /* ping is answered by the server itself */
    /* a command split over several writes */
    send_str(f, c, "{\"cmd\":");
    send_str(f, c, "\"ping\"}\n");
    assert_non_null(strstr(read_line(f, c, 1000), "\"cmd\":\"ping\""));

    /* a line longer than max_line: disconnected, others unaffected */
    client *other = connect_client(f);
    assert_non_null(read_line(f, other, 1000));
    char big[1500];
    memset(big, 'a', sizeof big);
    ssize_t w = send(c->fd, big, sizeof big, MSG_NOSIGNAL);
    assert_true(w > 0);
    spin(f);
    assert_null(read_line(f, c, 1000));     /* EOF */
    assert_int_equal(server_line_disconnects(f->srv), 1);
    send_str(f, other, "{\"cmd\":\"ping\"}\n");
    assert_non_null(strstr(read_line(f, other, 1000), "\"ok\":true"));
    client_free(c);

    /* half-close: the command is answered and messages keep coming */
    client *h = connect_client(f);
    assert_non_null(read_line(f, h, 1000));
    send_str(f, h, "{\"cmd\":\"ping\"}");  /* no newline: EOF ends the line */
    shutdown(h->fd, SHUT_WR);
    assert_non_null(strstr(read_line(f, h, 1000), "\"cmd\":\"ping\""));
    pub_msg *m = make_msg(MSG_LABEL, "Bag", 1, 7);
    server_publish(f->srv, m);
    pub_msg_unref(m);
    assert_non_null(strstr(read_line(f, h, 1000), "\"seq\":7"));
    int before = server_client_count(f->srv);
    client_free(h);     /* full close is noticed without any publish */
    for (int i = 0; i < 100 && server_client_count(f->srv) == before; i++) {
        spin(f);
        g_usleep(2000);
    }
    assert_int_equal(server_client_count(f->srv), before - 1);
    client_free(other);
}

/* A client in a loop: the first 500 commands (the burst) are answered, the rest ignored with
 * one error saying why; other clients are not affected; after a second the client may send
 * again (200 a second). */
static void test_command_rate_limit(void **state)
{
    fixture *f = *state;
    server_params p = params(f);
    p.queue = 1024; /* keep every reply: this test counts them */
    p.max_line = 1 << 16;
    open_server(f, p);
    client *c = connect_client(f);
    client *other = connect_client(f);
    assert_non_null(read_line(f, c, 1000));
    assert_non_null(read_line(f, other, 1000));
    static char flood[800 * 16];
    size_t n = 0;
    for (int i = 0; i < 800; i++)
        n += (size_t)snprintf(flood + n, sizeof flood - n, "{\"cmd\":\"ping\"}\n");
    for (size_t off = 0; off < n;) { /* the lines may need more than one write */
        ssize_t w = send(c->fd, flood + off, n - off, MSG_NOSIGNAL);
        assert_true(w > 0);
        off += (size_t)w;
        spin(f);
    }
    int ok = 0, limited = 0;
    char *r;
    while ((r = read_line(f, c, 300)) != NULL) {
        if (strstr(r, "\"ok\":true"))
            ok++;
        else if (strstr(r, "rate limit: more than 200 commands/s (burst 500)"))
            limited++;
        else
            fail_msg("unexpected line: %s", r);
    }
    /* tokens refill at 200/s while the 800 lines are processed: a few more may pass */
    assert_true(ok >= 500 && ok < 560);
    assert_int_equal(limited, 1);
    assert_int_equal((int)server_rate_limited_total(f->srv), 800 - ok);
    send_str(f, other, "{\"cmd\":\"ping\"}\n");
    assert_non_null(strstr(read_line(f, other, 1000), "\"ok\":true"));
    g_usleep(1100 * 1000);
    send_str(f, c, "{\"cmd\":\"ping\",\"id\":\"again\"}\n");
    assert_non_null(strstr(read_line(f, c, 1000), "\"id\":\"again\""));
    client_free(c);
    client_free(other);
}

/* Blank lines need no answer but count against the rate limit like commands. */
static void test_blank_lines_rate_limited(void **state)
{
    fixture *f = *state;
    open_server(f, params(f));
    client *c = connect_client(f);
    assert_non_null(read_line(f, c, 1000));
    static char blanks[700];
    memset(blanks, '\n', sizeof blanks);
    for (size_t off = 0; off < sizeof blanks;) {
        ssize_t w = send(c->fd, blanks + off, sizeof blanks - off, MSG_NOSIGNAL);
        assert_true(w > 0);
        off += (size_t)w;
        spin(f);
    }
    send_str(f, c, "{\"cmd\":\"ping\",\"id\":\"late\"}\n");
    char *r = read_line(f, c, 1000);
    assert_non_null(r);
    assert_non_null(strstr(r, "rate limit: more than 200 commands/s (burst 500)"));
    assert_true(server_rate_limited_total(f->srv) >= 150);
    client_free(c);
}

/* A client that sends commands and does not read: once its unread replies fill its budget
 * (here half of a 16-message queue) the server stops reading it, so no reply is dropped and
 * nothing piles up; when it reads, every command gets its answer, in order. */
static void test_unread_replies_pause_reading(void **state)
{
    fixture *f = *state;
    open_server(f, params(f));
    client *c = connect_client(f);
    assert_non_null(read_line(f, c, 1000));
    const int total = 480;
    static char cmds[480 * 40];
    size_t n = 0;
    for (int i = 0; i < total; i++)
        n += (size_t)snprintf(cmds + n, sizeof cmds - n, "{\"cmd\":\"ping\",\"id\":%d}\n", i);
    for (size_t off = 0; off < n;) {
        ssize_t w = send(c->fd, cmds + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            off += (size_t)w;
        spin(f);
    }
    for (int i = 0; i < 20; i++) {
        spin(f);
        g_usleep(1000);
    }
    assert_true(server_reply_paused_total(f->srv) >= 1);
    assert_int_equal(server_lost_total(f->srv), 0);
    for (int i = 0; i < total; i++) {
        char *r = read_line(f, c, 2000);
        assert_non_null(r);
        char want[48];
        snprintf(want, sizeof want, "\"ok\":true,\"id\":%d}", i);
        if (!strstr(r, want))
            fail_msg("reply %d: %s", i, r);
    }
    assert_int_equal(server_lost_total(f->srv), 0);
    assert_int_equal(server_rate_limited_total(f->srv), 0);
    client_free(c);
}

/* A client writing faster than the read budget is paused; others are still answered. */
static void test_read_budget(void **state)
{
    fixture *f = *state;
    open_server(f, params(f));
    client *c = connect_client(f), *other = connect_client(f);
    assert_non_null(read_line(f, c, 1000));
    assert_non_null(read_line(f, other, 1000));
    static char blanks[256 * 1024];
    memset(blanks, '\n', sizeof blanks);
    size_t sent = 0;
    for (int i = 0; i < 200 && sent < sizeof blanks; i++) {
        ssize_t w = send(c->fd, blanks + sent, sizeof blanks - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            sent += (size_t)w;
        spin(f);
        g_usleep(500);
    }
    assert_true(sent > 70 * 1024);
    assert_true(server_read_paused_total(f->srv) >= 1);
    send_str(f, other, "{\"cmd\":\"ping\"}\n");
    assert_non_null(strstr(read_line(f, other, 1000), "\"ok\":true"));
    client_free(c);
    client_free(other);
}

/* Stats-like replies: at most SERVER_CACHE_BUILDS builds per SERVER_CACHE_MS however many
 * clients ask; the id of each request is spliced in; a new generation rebuilds at once. */
static void test_cached_reply(void **state)
{
    fixture *f = *state;
    open_server(f, params(f));
    client *a = connect_client(f), *b = connect_client(f);
    assert_non_null(read_line(f, a, 1000));
    assert_non_null(read_line(f, b, 1000));
    for (int i = 0; i < 6; i++) {
        send_str(f, a, "{\"cmd\":\"stats\"}\n{\"cmd\":\"stats\",\"id\":\"x\"}\n");
        send_str(f, b, "{\"cmd\":\"stats\",\"id\":7}\n");
    }
    int got = 0;
    for (int i = 0; i < 12; i++) {
        char *r = read_line(f, a, 1000);
        assert_non_null(r);
        if (i % 2 == 0)
            assert_non_null(strstr(r, "{\"type\":\"reply\",\"cmd\":\"stats\",\"ok\":true,\"stats\":{\"build\":"));
        else
            assert_non_null(strstr(r, "{\"type\":\"reply\",\"cmd\":\"stats\",\"ok\":true,\"id\":\"x\",\"stats\":{\"build\":"));
        got++;
    }
    for (int i = 0; i < 6; i++)
        assert_non_null(strstr(read_line(f, b, 1000), "\"ok\":true,\"id\":7,\"stats\":{\"build\":"));
    assert_int_equal(got, 12);
    /* 18 requests well within one window (a slow machine may cross into a second one) */
    assert_true(f->builds >= SERVER_CACHE_BUILDS && f->builds <= 2 * SERVER_CACHE_BUILDS);
    int before = f->builds;
    f->generation++;
    send_str(f, a, "{\"cmd\":\"stats\"}\n");
    assert_non_null(read_line(f, a, 1000));
    assert_int_equal(f->builds, before + 1);
    server_cache_invalidate(f->srv);
    send_str(f, a, "{\"cmd\":\"stats\"}\n");
    assert_non_null(read_line(f, a, 1000));
    assert_int_equal(f->builds, before + 2);
    client_free(a);
    client_free(b);
}

static void test_max_clients(void **state)
{
    fixture *f = *state;
    server_params p = params(f);
    p.max_clients = 2;
    open_server(f, p);
    client *a = connect_client(f), *b = connect_client(f), *c = connect_client(f);
    assert_int_equal(server_client_count(f->srv), 2);
    char *r = read_line(f, c, 1000);
    assert_non_null(r);
    assert_non_null(strstr(r, "too many clients"));
    assert_null(read_line(f, c, 200));
    assert_int_equal(server_rejected_total(f->srv), 1);
    client_free(a);
    client_free(b);
    client_free(c);
}

static void test_permission(void **state)
{
    fixture *f = *state;
    if (geteuid() != 0)
        skip();     /* needs a second uid */
    server_params p = params(f);
    p.mode = 0666;
    chmod(f->dir, 0755);    /* mkdtemp made it owner-only */
    open_server(f, p);
    /* root may change state */
    client *root = connect_client(f);
    assert_non_null(read_line(f, root, 1000));
    send_str(f, root, "{\"cmd\":\"reload\"}\n");
    assert_non_null(strstr(read_line(f, root, 1000), "\"type\":\"reply\",\"cmd\":\"reload\""));
    client_free(root);
    /* nobody may read but not change state */
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(10);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        strcpy(sa.sun_path, f->path);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
            _exit(11);
        const char *cmds = "{\"cmd\":\"set\",\"budget_ms\":5}\n{\"cmd\":\"stats\"}\n";
        if (write(fd, cmds, strlen(cmds)) != (ssize_t)strlen(cmds))
            _exit(12);
        char buf[4096];
        size_t len = 0;
        while (len < sizeof buf - 1) {
            ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = '\0';
            if (strstr(buf, "\"cmd\":\"stats\""))
                break;
        }
        buf[len] = '\0';
        if (!strstr(buf, "{\"type\":\"error\",\"error\":\"permission denied\",\"cmd\":\"set\"}"))
            _exit(13);
        _exit(0);
    }
    int status = -1;
    for (int i = 0; i < 2000; i++) {
        spin(f);
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        g_usleep(1000);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(f->commands, 2);   /* reload (root) and stats (nobody); not set */
}

static void test_socket_path_handling(void **state)
{
    fixture *f = *state;
    char err[512];
    server *s = NULL;
    server_params p = params(f);

    /* too long for sun_path */
    char longp[200];
    memset(longp, 'a', sizeof longp);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    p.path = longp;
    assert_int_equal(server_open(&p, &s, err, sizeof err), BN_ERR_CONFIG);
    assert_non_null(strstr(err, "must be shorter than 108 bytes"));

    /* a regular file is never removed */
    p.path = f->path;
    FILE *fp = fopen(f->path, "w");
    fclose(fp);
    assert_int_not_equal(server_open(&p, &s, err, sizeof err), BN_OK);
    assert_non_null(strstr(err, "is not a socket"));
    unlink(f->path);

    /* a stale socket (nobody listening) is replaced */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, f->path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    assert_int_equal(server_open(&p, &s, err, sizeof err), BN_OK);

    /* a live one is not */
    server *s2 = NULL;
    assert_int_equal(server_open(&p, &s2, err, sizeof err), BN_ERR_BUSY);
    assert_non_null(strstr(err, "another daemon is listening"));
    assert_null(s2);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);   /* still there for the first server */

    /* unknown groups are named */
    server_close(s);
    p.control_group = "no-such-group-bn";
    assert_int_equal(server_open(&p, &s, err, sizeof err), BN_ERR_CONFIG);
    assert_non_null(strstr(err, "publish.control_group 'no-such-group-bn': no such group"));

    /* socket activation: an inherited listening socket is used as is and not unlinked */
    p.control_group = NULL;
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(lfd, 4), 0);
    p.listen_fd = lfd;
    p.path = "/nonexistent/ignored.sock";
    assert_int_equal(server_open(&p, &f->srv, err, sizeof err), BN_OK);
    assert_true(server_activated(f->srv));
    client *c = connect_client(f);
    assert_non_null(strstr(read_line(f, c, 1000), "hello"));
    client_free(c);
    server_close(f->srv);
    f->srv = NULL;
    assert_int_equal(lstat(f->path, &st), 0);
}

/* The socket's directory: another non-root user's, or writable by everyone without the
 * sticky bit, is refused; a sticky one (/tmp-like) is fine; a group-writable one warns. */
static void test_socket_dir_checks(void **state)
{
    fixture *f = *state;
    if (geteuid() != 0)
        skip();     /* needs a directory owned by another uid */
    char err[512];
    server *s = NULL;
    server_params p = params(f);
    assert_int_equal(chown(f->dir, 65534, 65534), 0);
    assert_int_equal(server_open(&p, &s, err, sizeof err), BN_ERR_PERMISSION);
    assert_non_null(strstr(err, "belongs to uid 65534, neither root nor this daemon's user"));
    struct stat st;
    assert_int_equal(lstat(f->path, &st), -1);  /* nothing created there */
    assert_int_equal(chown(f->dir, 0, 0), 0);

    assert_int_equal(chmod(f->dir, 0777), 0);
    assert_int_equal(server_open(&p, &s, err, sizeof err), BN_ERR_PERMISSION);
    assert_non_null(strstr(err, "is writable by everyone without the sticky bit (mode 0777)"));

    assert_int_equal(chmod(f->dir, 01777), 0);
    assert_int_equal(server_open(&p, &s, err, sizeof err), BN_OK);
    server_close(s);

    assert_int_equal(chmod(f->dir, 0770), 0);
    last_warning[0] = '\0';
    bn_log_set_callback(capture_log, NULL);
    assert_int_equal(server_open(&p, &s, err, sizeof err), BN_OK);
    bn_log_set_callback(NULL, NULL);
    assert_non_null(strstr(last_warning, "is writable by its group"));
    server_close(s);
    chmod(f->dir, 0700);
}

/* The socket is created with exactly publish.mode whatever the process umask, and a reload's
 * new mode or group never follows a symlink (or touches another file) swapped in for it. */
static void test_socket_mode_no_follow(void **state)
{
    fixture *f = *state;
    char err[512];
    server_params p = params(f);
    p.mode = 0666;
    mode_t old = umask(0077);
    open_server(f, p);
    umask(old);
    struct stat st;
    assert_int_equal(lstat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0666);
    assert_int_equal(server_set_access(f->srv, 0660, NULL, NULL, err, sizeof err), BN_OK);
    assert_int_equal(lstat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0660);

    /* replaced by a symlink to a file: the file keeps its mode and group */
    char target[128];
    snprintf(target, sizeof target, "%s/target", f->dir);
    FILE *fp = fopen(target, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(chmod(target, 0600), 0);
    struct stat t0;
    assert_int_equal(stat(target, &t0), 0);
    assert_int_equal(unlink(f->path), 0);
    assert_int_equal(symlink(target, f->path), 0);
    assert_int_equal(server_set_access(f->srv, 0666, geteuid() == 0 ? "nogroup" : NULL, NULL,
                                       err, sizeof err),
                     BN_ERR_PERMISSION);
    assert_non_null(strstr(err, "is no longer the socket this daemon bound (replaced by a symlink)"));
    assert_int_equal(stat(target, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_gid, t0.st_gid);
    assert_int_equal(unlink(f->path), 0);

    /* replaced by another socket: that one is not changed, and not removed at close */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, f->path);
    old = umask(0077);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    umask(old);
    assert_int_equal(server_set_access(f->srv, 0666, NULL, NULL, err, sizeof err),
                     BN_ERR_PERMISSION);
    assert_non_null(strstr(err, "replaced by another file"));
    assert_int_equal(lstat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    server_close(f->srv);
    f->srv = NULL;
    assert_int_equal(lstat(f->path, &st), 0);
    close(fd);
    unlink(f->path);
    unlink(target);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hello_and_broadcast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_client_loses_only_its_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_command_rate_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blank_lines_rate_limited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unread_replies_pause_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cached_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_clients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permission, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_path_handling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_dir_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_socket_mode_no_follow, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
