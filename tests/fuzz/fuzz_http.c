/* libFuzzer target for the HTTP server's request handling (daemon/http*.c): one real server
 * on a Unix socket with basic authentication and event snapshots on, and per input one client
 * that writes the input as a raw request in arbitrary chunks (sizes drawn from the input's
 * first 4 bytes), the main loop run between chunks. Checked on every input: each response
 * starts with a well-formed status line of a code the server or libsoup can send; a 200
 * answers one of the routes, for a request that carried the right password (or /healthz);
 * no byte of a secret file, one inside events.dir that is not an event and one beside it,
 * ever appears; the connection is released once the client closes; and after every
 * GOOD_EVERY-th input (the first included) an authenticated request for the saved event
 * still gets its exact bytes (a server the inputs broke stays broken, so a failure shows
 * within GOOD_EVERY inputs; the last of them is the one reported). The password file
 * holds a SHA-512 crypt hash of the fewest rounds libcrypt accepts, so that a wrong password
 * costs one cheap hash, and the right one hits the server's cache of verified headers. */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "event_store.h"
#include "fuzz_client.h"
#include "http.h"
#include "http_internal.h"

#define EVENT "20261207T021500.123Z-42"
/* The content of two files the server must never serve. Each starts with a letter that no
 * JSON escape ends in (not a hex digit, not b f n r t " \ /): an error message that echoes
 * the input escaped can then hold a secret only if the input held it ("\017ZSECRET..."
 * echoed as "\u000FZSECRET..." once rebuilt an "FZSECRET..."). */
#define SECRET_IN "QZSECRET-inside-the-events-dir-7c1f"
#define SECRET_OUT "QZSECRET-beside-the-events-dir-93ab"
#define SIDECAR "{\"type\":\"change\",\"label\":\"Bag\",\"seq\":42}\n"
#define USER_PASS "fz:open sesame"
/* The good request costs about as much as an input: asked after every 4th, the fuzzer runs
 * 1.7x as many inputs a second (3.4k against 2.0k on one core). */
#define GOOD_EVERY 4

static GMainContext *ctx;
static http_server *srv;
static event_store *events;
static frame_slot *frames;
static char dir[64], sock_path[108], good_header[128];

/* What the server made of the request, from SoupServer's "request-read" signal: the path its
 * handlers get, and whether the Authorization header holds USER_PASS. */
static struct {
    int requests;
    char path[4096];
    bool authorized;
} seen;

static char *fake_metrics(void *user)
{
    (void)user;
    return strdup("# TYPE basisnetd_up gauge\nbasisnetd_up 1\n");
}

static json_t *fake_state(void *user)
{
    (void)user;
    return json_pack("{s:s, s:i}", "type", "state", "v", 1);
}

static bool fake_health(void *user, char *why, size_t len)
{
    (void)user;
    snprintf(why, len, "ok");
    return true;
}

static const frame_copy *fake_frame(void *user)
{
    (void)user;
    return frame_slot_get(frames);
}

static const char *fake_label(void *user, int class_id)
{
    (void)user;
    return class_id == 0 ? "Bag" : "?";
}

static pub_msg *fake_hello(void *user)
{
    (void)user;
    const char *h = "{\"type\":\"hello\",\"v\":1}\n";
    return pub_msg_new(MSG_HELLO, h, strlen(h));
}

static json_t *fake_event_list(void *user)
{
    (void)user;
    return event_store_list(events);
}

static bn_status fake_event_file(void *user, const char *name, uint8_t **out, size_t *len)
{
    (void)user;
    return event_store_read(events, name, out, len);
}

static void on_request_read(SoupServer *soup, SoupServerMessage *msg, gpointer data)
{
    (void)soup, (void)data;
    seen.requests++;
    snprintf(seen.path, sizeof seen.path, "%s", g_uri_get_path(soup_server_message_get_uri(msg)));
    const char *a = soup_message_headers_get_one(soup_server_message_get_request_headers(msg),
                                                 "Authorization");
    seen.authorized = false;
    if (a && g_ascii_strncasecmp(a, "Basic ", 6) == 0) {
        gsize n = 0;
        guchar *plain = g_base64_decode(a + 6 + strspn(a + 6, " "), &n);
        seen.authorized = plain && n == strlen(USER_PASS) && !memcmp(plain, USER_PASS, n);
        g_free(plain);
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

static void server_start(void)
{
    http_config cfg;
    config_http_init(&cfg);
    snprintf(cfg.listen, sizeof cfg.listen, "%s", sock_path);
    cfg.max_clients = 4;
    http_handlers h = {.metrics = fake_metrics, .state = fake_state, .health = fake_health,
                       .frame = fake_frame, .label_name = fake_label, .hello = fake_hello,
                       .event_list = fake_event_list, .event_file = fake_event_file};
    char err[1024], path[128];
    if (http_open(&cfg, &h, ctx, &srv, err, sizeof err) != BN_OK) {
        fprintf(stderr, "http_open: %s\n", err);
        abort();
    }
    http_auth *auth = NULL;
    snprintf(path, sizeof path, "%s/users", dir);
    if (http_auth_load(path, &auth, err, sizeof err) != BN_OK) {
        fprintf(stderr, "http_auth_load: %s\n", err);
        abort();
    }
    http_set_auth(srv, auth);
    g_signal_connect(srv->soup, "request-read", G_CALLBACK(on_request_read), NULL);
}

static void cleanup(void)
{
    http_close(srv);
    event_store_close(events);
    frame_slot_free(frames);
    const char *names[] = {"events/" EVENT ".json", "events/" EVENT ".jpg", "events/secret.txt",
                           "secret.txt", "users", "events"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        remove(path);
    }
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(dir, sizeof dir, "/tmp/fuzz-http-XXXXXX");
    if (!mkdtemp(dir))
        abort();
    char path[128];
    snprintf(sock_path, sizeof sock_path, "%s/http.sock", dir);
    snprintf(path, sizeof path, "%s/events", dir);
    if (mkdir(path, 0700) != 0)
        abort();
    snprintf(path, sizeof path, "%s/events/%s.json", dir, EVENT);
    write_file(path, SIDECAR);
    snprintf(path, sizeof path, "%s/events/%s.jpg", dir, EVENT);
    write_file(path, "\xff\xd8 not really a JPEG \xff\xd9");
    snprintf(path, sizeof path, "%s/events/secret.txt", dir);
    write_file(path, SECRET_IN "\n");
    snprintf(path, sizeof path, "%s/secret.txt", dir);
    write_file(path, SECRET_OUT "\n");

    /* the cheapest hash libcrypt takes: SHA-512 crypt at its minimum of 1000 rounds (~0.25 ms;
     * SHA-256 crypt counts as legacy, bcrypt costs 1 ms and yescrypt 4 ms at their lowest) */
    struct crypt_data cd;
    memset(&cd, 0, sizeof cd);
    const char *hash = crypt_rn("open sesame", "$6$rounds=1000$fuzzhttpsalt", &cd, sizeof cd);
    if (!hash || hash[0] == '*')
        abort();
    char users[256];
    snprintf(users, sizeof users, "# fuzz_http\nfz:%s\n", hash);
    snprintf(path, sizeof path, "%s/users", dir);
    write_file(path, users);
    gchar *b64 = g_base64_encode((const guchar *)USER_PASS, strlen(USER_PASS));
    snprintf(good_header, sizeof good_header, "Authorization: Basic %s\r\n", b64);
    g_free(b64);

    events_config ec = {.enabled = true, .keep = 10, .max_bytes = 1 << 20};
    snprintf(ec.dir, sizeof ec.dir, "%s/events", dir);
    char err[512];
    if (event_store_open(&ec, &events, err, sizeof err) != BN_OK) {
        fprintf(stderr, "event_store_open: %s\n", err);
        abort();
    }
    /* one 8x8 frame, so that /snapshot.jpg and /stream.mjpg have a picture to encode */
    static uint8_t pixels[8 * 8 * 3];
    for (size_t i = 0; i < sizeof pixels; i++)
        pixels[i] = (uint8_t)(i * 7);
    frames = frame_slot_new();
    frame_slot_hold(frames);
    capture_frame fr = {.data = pixels, .width = 8, .height = 8, .channels = 3, .stride = 24,
                        .seq = 1};
    infer_result r = {.class_id = 0, .score = 0.9f, .threshold = 0.5f};
    frame_slot_put(frames, &fr, &r);

    /* the default context, as the daemon runs it: SoupServer attaches each connection's
     * sources to the thread-default context at accept time, which is the default one here */
    ctx = g_main_context_default();
    server_start();
    atexit(cleanup);
    return 0;
}

static void spin(void) { fuzz_spin(ctx); }

typedef struct {
    char buf[1 << 18];
    size_t len;
    bool eof;
} reader;

static void drain(int fd, reader *r)
{
    for (;;) {
        char scratch[4096];
        bool full = r->len == sizeof r->buf - 1;
        ssize_t n = full ? recv(fd, scratch, sizeof scratch, MSG_DONTWAIT)
                         : recv(fd, r->buf + r->len, sizeof r->buf - 1 - r->len, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            r->eof = true;
            break;
        }
        if (n < 0)
            break;
        if (!full)
            r->len += (size_t)n;    /* beyond 256 KiB (a stream): the start is enough */
    }
    r->buf[r->len] = '\0';
}

static void read_back(int fd, void *r) { drain(fd, r); }

static int connect_server(void) { return fuzz_connect(sock_path, ctx); }

/* A code the server (http.c, http_media.c) or libsoup's request parser can answer. */
static bool known_status(int code)
{
    static const int codes[] = {100, 200, 400, 401, 404, 405, 413, 417, 431, 500, 501, 503, 505};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (codes[i] == code)
            return true;
    return false;
}

static bool route(const char *path)
{
    static const char *routes[] = {"/", "/metrics", "/api/state", "/healthz", "/snapshot.jpg",
                                   "/stream.mjpg", "/events", "/events/",
                                   "/events/" EVENT ".json", "/events/" EVENT ".jpg"};
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (!strcmp(path, routes[i]))
            return true;
    return false;
}

/* The final status of the response in buf (after any 100 Continue), -1 when incomplete;
 * aborts on a malformed status line. *body: where the final response's body starts. */
static int final_status(const char *buf, size_t len, const char **body)
{
    const char *p = buf, *end = buf + len;
    for (;;) {
        if ((size_t)(end - p) < 13)
            return -1;
        if ((memcmp(p, "HTTP/1.1 ", 9) && memcmp(p, "HTTP/1.0 ", 9)) || p[9] < '1' ||
            p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9' ||
            p[12] != ' ')
            abort();    /* not a status line */
        int code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
        if (!known_status(code))
            abort();
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol && (eol == p || eol[-1] != '\r'))
            abort();    /* status lines end in CRLF */
        const char *hend = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        if (!hend)
            return -1;
        p = hend + 4;
        if (code != 100) {
            *body = p;
            return code;
        }
    }
}

/* The saved event, asked for with the right password: its exact bytes. */
static void check_good_request(void)
{
    int fd = connect_server();
    char req[512];
    int n = snprintf(req, sizeof req, "GET /events/" EVENT ".json HTTP/1.1\r\nHost: fuzz\r\n%s\r\n",
                     good_header);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        abort();
    static reader r;
    r.len = 0;
    r.eof = false;
    for (int i = 0; i < 2000 && !r.eof; i++) {
        spin();
        drain(fd, &r);
        if (!r.eof && i > 8)
            usleep(20);
    }
    const char *body = NULL;
    if (!r.eof || final_status(r.buf, r.len, &body) != 200 || strcmp(body, SIDECAR) != 0) {
        fprintf(stderr, "the good request after the input got:\n%s\n", r.buf);
        abort();
    }
    close(fd);
}

/* Until the server let go of every connection; a long-lived response (/stream.mjpg, /events)
 * notices a gone client only when it next writes, so then the server is opened anew. */
static void settle(void)
{
    http_stats st;
    for (int i = 0; i < 50; i++) {
        spin();
        http_get_stats(srv, &st);
        if (st.connected == 0)
            return;
        if (i >= 8)
            usleep(20);
    }
    http_close(srv);
    srv = NULL;
    server_start();
}

static bool leaks(const void *buf, size_t len, const char *secret)
{
    return memmem(buf, len, secret, strlen(secret)) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint32_t seed = fuzz_seed(data);
    bool half_close = seed & 1;
    data += 4;
    size -= 4;
    memset(&seen, 0, sizeof seen);
    static int trace = -1;  /* FUZZ_HTTP_TRACE=1: one line per input on stderr */
    if (trace < 0)
        trace = getenv("FUZZ_HTTP_TRACE") != NULL;

    int fd = connect_server();
    static reader r;
    r.len = 0;
    r.eof = false;
    fuzz_send_chunks(fd, data, size, &seed, 257, ctx, read_back, &r, &r.eof);
    if (half_close)
        shutdown(fd, SHUT_WR);
    spin();
    drain(fd, &r);
    close(fd);

    /* a file that is no saved event was served (an error message may echo the input) */
    if ((leaks(r.buf, r.len, SECRET_IN) && !leaks(data, size, SECRET_IN)) ||
        (leaks(r.buf, r.len, SECRET_OUT) && !leaks(data, size, SECRET_OUT)))
        abort();
    const char *body = NULL;
    int code = final_status(r.buf, r.len, &body);
    if (trace)
        fprintf(stderr, "fuzz_http: status %d, path %s, %zu bytes back\n", code,
                seen.requests ? seen.path : "(not read)", r.len);
    if (code == 200) {
        if (seen.requests != 1 || !route(seen.path))
            abort();    /* 200 for a path outside the routes */
        if (!seen.authorized && strcmp(seen.path, "/healthz") != 0)
            abort();    /* 200 without the password */
    }
    settle();
    static unsigned inputs;
    if (inputs++ % GOOD_EVERY == 0) {
        check_good_request();
        settle();
    }
    return 0;
}
