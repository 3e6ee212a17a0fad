/* libFuzzer target for the socket server's line framing and command dispatch (server_io.c):
 * one real server on a Unix socket, and per input one client that writes the input in
 * arbitrary chunks (sizes drawn from the input's first 4 bytes), the server's loop run
 * between chunks. Every line the server sends must be one JSON object of a known type,
 * replies never outnumber the lines sent, and the connection stays open unless a line was
 * longer than max_line. The command handler answers stats through the reply cache and the
 * rest with a reply, as the daemon's does. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "fuzz_client.h"
#include "server.h"

#define MAX_LINE 512

static GMainContext *ctx;
static server *srv;
static char sock_path[108];
static int builds;

static json_t *build_stats(void *user)
{
    (void)user;
    builds++;
    json_t *r = proto_reply_json("stats", NULL);
    json_object_set_new(r, "stats", json_pack("{s:i}", "builds", builds));
    return r;
}

static void on_command(server *s, server_client *c, const proto_command *cmd, void *user)
{
    (void)user;
    if (cmd->kind == PROTO_CMD_STATS)
        server_send_cached(s, c, cmd, 0, build_stats, NULL);
    else
        server_send_json(s, c, proto_reply_json(proto_cmd_name(cmd->kind), cmd->id));
}

static pub_msg *hello(void *user)
{
    (void)user;
    const char *h = "{\"type\":\"hello\",\"v\":1}\n";
    return pub_msg_new(MSG_HELLO, h, strlen(h));
}

static void cleanup(void)
{
    server_close(srv);
    srv = NULL;
    char dir[sizeof sock_path];
    snprintf(dir, sizeof dir, "%s", sock_path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        rmdir(dir);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/fuzz-socket-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    snprintf(sock_path, sizeof sock_path, "%s/s.sock", dir);
    ctx = g_main_context_new();
    server_params p = {.path = sock_path, .mode = 0600, .max_clients = 4, .queue = 64,
                       .max_line = MAX_LINE, .listen_fd = -1, .context = ctx, .hello = hello,
                       .command = on_command};
    char err[512];
    if (server_open(&p, &srv, err, sizeof err) != BN_OK) {
        fprintf(stderr, "server_open: %s\n", err);
        abort();
    }
    atexit(cleanup);
    return 0;
}

static void spin(void) { fuzz_spin(ctx); }

typedef struct {
    char buf[1 << 16];
    size_t len;
    int lines, answers;
    bool eof;
} reader;

/* Reads what the server sent and checks each complete line. */
static void drain(int fd, reader *r)
{
    for (;;) {
        if (r->len == sizeof r->buf)
            abort();    /* one line of 64 KiB: no reply is that long */
        ssize_t n = recv(fd, r->buf + r->len, sizeof r->buf - r->len, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            r->eof = true;
            return;
        }
        if (n < 0)
            return;
        r->len += (size_t)n;
        char *start = r->buf, *nl;
        while ((nl = memchr(start, '\n', r->len - (size_t)(start - r->buf))) != NULL) {
            json_error_t e;
            json_t *m = json_loadb(start, (size_t)(nl - start), 0, &e);
            const char *type = json_string_value(json_object_get(m, "type"));
            if (!json_is_object(m) || !type)
                abort();    /* every line is one JSON object with a type */
            if (!strcmp(type, "reply") || !strcmp(type, "error"))
                r->answers++;
            else if (strcmp(type, "hello") != 0)
                abort();
            json_decref(m);
            r->lines++;
            start = nl + 1;
        }
        memmove(r->buf, start, r->len - (size_t)(start - r->buf));
        r->len -= (size_t)(start - r->buf);
    }
}

static void read_back(int fd, void *r) { drain(fd, r); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint32_t seed = fuzz_seed(data);
    bool half_close = seed & 1;
    data += 4;
    size -= 4;

    int fd = fuzz_connect(sock_path, ctx);
    static reader r;
    memset(&r, 0, sizeof r);

    /* what the server should make of the input: lines, and whether one is too long */
    int newlines = 0;
    bool too_long = false;
    size_t run = 0;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') {
            newlines++;
            run = 0;
        } else if (++run >= MAX_LINE) {
            too_long = true;
        }
    }

    fuzz_send_chunks(fd, data, size, &seed, 193, ctx, read_back, &r, &r.eof);
    /* the loop runs until nothing is ready: by then the server has read, answered and
     * flushed everything (inputs stay under the 64 KiB read burst) */
    if (half_close)
        shutdown(fd, SHUT_WR);
    spin();
    drain(fd, &r);
    if (r.lines < 1 && !too_long)
        abort();    /* hello first */
    /* one answer per line at most, plus the rate-limit notice and the half-close line */
    if (r.answers > newlines + 2)
        abort();
    if (r.eof && !too_long)
        abort();    /* only an oversized line closes the connection */
    close(fd);
    for (int i = 0; i < 200 && server_client_count(srv) > 0; i++) {
        spin();
        if (server_client_count(srv) > 0 && i >= 8)
            usleep(50);
    }
    if (server_client_count(srv) > 0)
        abort();    /* a closed client is reaped */
    return 0;
}
