/* basisnetctl: command-line client of basisnetd's socket (protocol v1, docs/protocol.md):
 * subscribe to labels, read stats (JSON or Prometheus text), change the budget, reload, ping. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "basisnet.h"
#include "budget.h"
#include "protocol.h"
#include "stats.h"
#include "suggest.h"

#define DEFAULT_SOCKET "/run/basisnetd/basisnetd.sock"

enum {
    EXIT_OK = 0,
    EXIT_REFUSED = 1,   /* the daemon answered with an error */
    EXIT_USAGE = 2,
    EXIT_NO_DAEMON = 3,
    EXIT_PERMISSION = 4,
    EXIT_PROTOCOL = 5,  /* connection lost, timeout, unreadable answer */
    EXIT_VERSION = 6,   /* the daemon speaks a protocol version this client does not know */
};

/* --reconnect: waits between attempts, doubling up to the cap. */
#define RECONNECT_FIRST_MS 100
#define RECONNECT_MAX_MS 2000

static const char usage[] =
    "Usage: basisnetctl [--socket PATH] [--timeout SEC] COMMAND [ARGS]\n"
    "\n"
    "Talks to basisnetd over its Unix socket (protocol v1).\n"
    "\n"
    "Commands:\n"
    "  subscribe [--count N] [--label L]... [--min-score S] [--changes]\n"
    "            [--format json|text|tsv] [--reconnect]\n"
    "        print label messages as they come (one JSON object a line; a line for people\n"
    "        with --format text: time, label, score, stage, latency; tab-separated fields\n"
    "        for scripts with --format tsv, see docs/protocol.md). --label keeps only\n"
    "        those labels (repeatable; checked against the model's labels, case-sensitive),\n"
    "        --min-score drops less confident labels, --changes prints only change events\n"
    "        (the debounced stable label), --count exits after N label (or change)\n"
    "        messages. Source events are printed too, and the source's state at connect\n"
    "        when it is not running. --reconnect: when the daemon goes away (restart),\n"
    "        wait for it and subscribe again instead of exiting.\n"
    "  stats [--prometheus]\n"
    "        print the daemon's statistics as JSON, or in the Prometheus text format\n"
    "        (for node_exporter's textfile collector).\n"
    "  set budget-ms MS | threshold T | threshold-min T | threshold-max T  [...]\n"
    "        change the latency budget (per frame, ms), fix the early-exit threshold\n"
    "        (turns the budget controller off), or bound the controller's threshold.\n"
    "        Needs root or publish.control_group. Lasts until the next reload or restart.\n"
    "  reload\n"
    "        re-read the config and the model (like systemctl reload); a bad config is\n"
    "        rejected and the running one stays. Needs root or publish.control_group.\n"
    "  ping\n"
    "        check that the daemon answers.\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH  the daemon's socket (default: $BASISNET_SOCKET, else\n"
    "                     " DEFAULT_SOCKET ")\n"
    "  -t, --timeout SEC  how long to wait for an answer (default 10; subscribe waits forever)\n"
    "  -h, --help         this help\n"
    "  -V, --version      print the version\n"
    "\n"
    "Exit status: 0 success; 1 the daemon refused the command (the reason is printed);\n"
    "2 bad command line; 3 no daemon (socket missing or nobody listening); 4 permission\n"
    "denied (socket or command); 5 connection lost, timeout or unreadable answer;\n"
    "6 the daemon speaks a protocol version this basisnetctl does not know.\n";

typedef struct {
    int fd;
    char buf[1 << 16];
    size_t len;
    int timeout_ms;     /* -1: forever */
    bool eof;           /* the daemon closed the connection (or reset it) */
    bool quiet;         /* --reconnect attempts: no message per failed connect */
    json_t *hello;      /* the daemon's hello on this connection */
} conn;

static int usage_error(const char *fmt, const char *arg)
{
    fputs("basisnetctl: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'basisnetctl --help'.\n", stderr);
    return EXIT_USAGE;
}

static int handshake(conn *c);

static void disconnect(conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
    c->eof = false;
    json_decref(c->hello);
    c->hello = NULL;
}

/* Connects and reads the daemon's hello (its protocol version is checked there). */
static int connect_daemon(conn *c, const char *path)
{
    disconnect(c);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "basisnetctl: socket path too long (%zu bytes, max %zu): %s\n",
                strlen(path), sizeof sa.sun_path - 1, path);
        return EXIT_USAGE;
    }
    strcpy(sa.sun_path, path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf(stderr, "basisnetctl: socket: %s\n", strerror(errno));
        return EXIT_PROTOCOL;
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return handshake(c);
    int e = errno;
    if (c->quiet)
        return e == EACCES || e == EPERM ? EXIT_PERMISSION : EXIT_NO_DAEMON;
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        fprintf(stderr, "basisnetctl: no daemon: %s does not exist (is basisnetd running? "
                        "see --socket or $BASISNET_SOCKET)\n", path);
        return EXIT_NO_DAEMON;
    case ECONNREFUSED:
        fprintf(stderr, "basisnetctl: no daemon: nobody is listening on %s (stale socket)\n",
                path);
        return EXIT_NO_DAEMON;
    case EACCES:
    case EPERM:
        fprintf(stderr, "basisnetctl: permission denied on %s (the socket's group may "
                        "connect; see publish.group)\n", path);
        return EXIT_PERMISSION;
    default:
        fprintf(stderr, "basisnetctl: cannot connect to %s: %s\n", path, strerror(e));
        return EXIT_NO_DAEMON;
    }
}

/* Next line as a JSON object; NULL with *rc set on EOF, timeout or garbage. */
static json_t *read_msg(conn *c, int *rc)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf);
            json_error_t e;
            json_t *o = json_loadb(c->buf, n, 0, &e);
            memmove(c->buf, nl + 1, c->len - n - 1);
            c->len -= n + 1;
            if (!json_is_object(o)) {
                json_decref(o);
                fprintf(stderr, "basisnetctl: unreadable message from the daemon\n");
                *rc = EXIT_PROTOCOL;
                return NULL;
            }
            return o;
        }
        if (c->len == sizeof c->buf) {
            fprintf(stderr, "basisnetctl: message from the daemon too long\n");
            *rc = EXIT_PROTOCOL;
            return NULL;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&p, 1, c->timeout_ms);
        if (pr == 0) {
            fprintf(stderr, "basisnetctl: no answer within %d ms\n", c->timeout_ms);
            *rc = EXIT_PROTOCOL;
            return NULL;
        }
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            *rc = EXIT_PROTOCOL;
            return NULL;
        }
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (!c->quiet)
                fprintf(stderr, "basisnetctl: the daemon closed the connection\n");
            c->eof = true;
            *rc = EXIT_PROTOCOL;
            return NULL;
        }
        c->len += (size_t)r;
    }
}

static const char *str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* An error message from the daemon: permission denied gets its own exit code. */
static int report_error(const json_t *o)
{
    const char *e = str(o, "error");
    fprintf(stderr, "basisnetctl: %s%s%s\n", *str(o, "cmd") ? str(o, "cmd") : "",
            *str(o, "cmd") ? ": " : "", e);
    if (strcmp(e, "permission denied") == 0) {
        fprintf(stderr, "basisnetctl: run as root or as a member of the daemon's "
                        "publish.control_group\n");
        return EXIT_PERMISSION;
    }
    return EXIT_REFUSED;
}

/* The first message on a connection: a hello of a protocol version this client knows
 * (docs/protocol.md: clients refuse unknown versions), or the error a full daemon sends. */
static int handshake(conn *c)
{
    int rc;
    json_t *o = read_msg(c, &rc);
    if (!o)
        return rc;
    const char *type = str(o, "type");
    const json_t *v = json_object_get(o, "v");
    if (strcmp(type, "error") == 0) {
        rc = report_error(o);
    } else if (strcmp(type, "hello") != 0 || !json_is_integer(v)) {
        fprintf(stderr, "basisnetctl: the daemon's first message is not a hello with a "
                        "protocol version (\"v\")\n");
        rc = EXIT_PROTOCOL;
    } else if (json_integer_value(v) != PROTO_VERSION) {
        fprintf(stderr, "basisnetctl: the daemon speaks protocol v%lld; this basisnetctl (%s) "
                        "knows only v%d: use the basisnetctl that came with the daemon\n",
                (long long)json_integer_value(v), BASISNET_VERSION, PROTO_VERSION);
        rc = EXIT_VERSION;
    } else {
        c->hello = o;
        return EXIT_OK;
    }
    json_decref(o);
    return rc;
}

static int send_cmd(conn *c, json_t *cmd)
{
    size_t len;
    char *line = proto_dump_line(cmd, &len);
    json_decref(cmd);
    if (!line)
        return EXIT_PROTOCOL;
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "basisnetctl: cannot send: %s\n", strerror(errno));
            free(line);
            return EXIT_PROTOCOL;
        }
        off += (size_t)n;
    }
    free(line);
    return EXIT_OK;
}

/* Sends cmd and waits for its reply, skipping published messages; *reply on success. */
static int request(conn *c, json_t *cmd, json_t **reply)
{
    json_object_set_new(cmd, "id", json_string("ctl"));
    int rc = send_cmd(c, cmd);
    if (rc != EXIT_OK)
        return rc;
    for (;;) {
        json_t *o = read_msg(c, &rc);
        if (!o)
            return rc;
        const char *type = str(o, "type");
        if (strcmp(type, "reply") == 0) {
            *reply = o;
            return EXIT_OK;
        }
        if (strcmp(type, "error") == 0) {
            rc = report_error(o);
            json_decref(o);
            return rc;
        }
        json_decref(o);
    }
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

typedef enum { FMT_JSON, FMT_TEXT, FMT_TSV } out_format;

static long long lost_of(const json_t *o)
{
    const json_t *lost = json_object_get(o, "lost");
    return json_is_integer(lost) ? (long long)json_integer_value(lost) : 0;
}

static void print_text(const json_t *o)
{
    const char *type = str(o, "type");
    if (strcmp(type, "label") == 0) {
        const json_t *lat = json_object_get(o, "latency_ms");
        printf("%s  %-12s %.3f  %-10s %7.2f ms%s%s\n", str(o, "time"), str(o, "label"),
               json_number_value(json_object_get(o, "score")), str(o, "stage"),
               json_number_value(json_object_get(lat, "total")),
               *str(o, "reason") ? "  reason=" : "", str(o, "reason"));
    } else if (strcmp(type, "change") == 0) {
        const json_t *prev = json_object_get(o, "previous");
        printf("%s  change: %s -> %s (%.3f)\n", str(o, "time"),
               json_is_string(prev) ? json_string_value(prev) : "(none)", str(o, "label"),
               json_number_value(json_object_get(o, "score")));
    } else if (strcmp(type, "source") == 0) {
        printf("%s  source %s: %s\n", str(o, "time"), str(o, "state"), str(o, "message"));
    } else {
        return;
    }
    if (lost_of(o))
        printf("  (%lld messages lost: this client read too slowly)\n", lost_of(o));
}

/* One TSV field: tab, newline, carriage return and backslash escaped as \t \n \r \\, so a
 * line is always one message and a field never splits. */
static void tsv_field(const char *s, bool last)
{
    for (; *s; s++) {
        switch (*s) {
        case '\t': fputs("\\t", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        default: putchar(*s);
        }
    }
    putchar(last ? '\n' : '\t');
}

/* label  TIME SEQ LABEL CLASS SCORE STAGE TOTAL_MS LOST
 * change TIME SEQ LABEL CLASS SCORE PREVIOUS FRAMES LOST
 * source TIME STATE MESSAGE LOST                           (docs/protocol.md) */
static void print_tsv(const json_t *o)
{
    const char *type = str(o, "type");
    char num[6][40];
    snprintf(num[0], sizeof num[0], "%lld", (long long)json_integer_value(json_object_get(o, "seq")));
    snprintf(num[1], sizeof num[1], "%lld", (long long)json_integer_value(json_object_get(o, "class")));
    snprintf(num[2], sizeof num[2], "%.4f", json_number_value(json_object_get(o, "score")));
    snprintf(num[3], sizeof num[3], "%.3f",
             json_number_value(json_object_get(json_object_get(o, "latency_ms"), "total")));
    snprintf(num[4], sizeof num[4], "%lld", (long long)json_integer_value(json_object_get(o, "frames")));
    snprintf(num[5], sizeof num[5], "%lld", lost_of(o));
    if (strcmp(type, "source") == 0) {
        const char *f[] = {type, str(o, "time"), str(o, "state"), str(o, "message"), num[5]};
        for (size_t i = 0; i < 5; i++)
            tsv_field(f[i], i == 4);
        return;
    }
    bool change = strcmp(type, "change") == 0;
    if (!change && strcmp(type, "label") != 0)
        return;
    const json_t *prev = json_object_get(o, "previous");
    const char *f[] = {type, str(o, "time"), num[0], str(o, "label"), num[1], num[2],
                       change ? (json_is_string(prev) ? json_string_value(prev) : "") : str(o, "stage"),
                       change ? num[4] : num[3], num[5]};
    for (size_t i = 0; i < 9; i++)
        tsv_field(f[i], i == 8);
}

static void print_msg(const json_t *m, out_format fmt)
{
    if (fmt == FMT_TEXT) {
        print_text(m);
    } else if (fmt == FMT_TSV) {
        print_tsv(m);
    } else {
        char *s = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
        if (s)
            puts(s);
        free(s);
    }
}

/* --label values must be labels of the model (hello.labels), spelled exactly: a filter
 * that can never match would print nothing forever. */
static int check_labels(const json_t *hello, const json_t *want)
{
    const json_t *known = json_object_get(hello, "labels");
    size_t n = json_array_size(known), i;
    const char **names = calloc(n + 1, sizeof *names);
    if (!names)
        return EXIT_PROTOCOL;
    for (i = 0; i < n; i++)
        names[i] = json_is_string(json_array_get(known, i))
                       ? json_string_value(json_array_get(known, i)) : "";
    int rc = EXIT_OK;
    const json_t *w;
    json_array_foreach(want, i, w) {
        const char *l = json_string_value(w), *nocase = NULL;
        bool found = false;
        for (size_t k = 0; k < n && !found; k++) {
            found = strcmp(l, names[k]) == 0;
            if (!nocase && strcasecmp(l, names[k]) == 0)
                nocase = names[k];
        }
        if (found)
            continue;
        const char *hint = nocase ? nocase : suggest_closest(l, names, (int)n);
        fprintf(stderr, "basisnetctl: --label '%s' is not a label of model '%s' (labels are "
                        "case-sensitive)%s%s%s\nbasisnetctl: its labels:",
                l, str(hello, "model"), hint ? "; did you mean '" : "", hint ? hint : "",
                hint ? "'?" : "");
        for (size_t k = 0; k < n; k++)
            fprintf(stderr, "%s '%s'", k ? "," : "", names[k]);
        fputc('\n', stderr);
        rc = EXIT_USAGE;
        break;
    }
    free(names);
    return rc;
}

typedef struct {
    json_t *labels;     /* --label values, or NULL */
    double min_score;
    bool changes, filtered, reconnect;
    out_format fmt;
    long count;         /* -1: forever */
    int answer_timeout_ms; /* --timeout, for the hello and the filter's reply */
} sub_opts;

/* Connects, checks the labels, sends the filter and prints the source state when the
 * source is not running (so that a subscriber of a camera that is down sees why nothing
 * comes). */
static int sub_open(conn *c, const char *path, const sub_opts *so)
{
    c->timeout_ms = so->answer_timeout_ms;
    int rc = connect_daemon(c, path);
    if (rc == EXIT_OK && so->labels)
        rc = check_labels(c->hello, so->labels);
    if (rc == EXIT_OK && so->filtered) {
        json_t *cmd = json_pack("{s:s, s:f, s:b}", "cmd", "subscribe", "min_score",
                                so->min_score, "changes", so->changes);
        if (so->labels)
            json_object_set(cmd, "labels", so->labels);
        json_t *reply = NULL;
        rc = request(c, cmd, &reply);
        json_decref(reply);
    }
    if (rc != EXIT_OK)
        return rc;
    const json_t *src = json_object_get(c->hello, "source");
    if (*str(src, "state") && strcmp(str(src, "state"), "running") != 0) {
        if (so->fmt == FMT_JSON) {
            print_msg(c->hello, FMT_JSON);
        } else {
            char t[40];
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            proto_format_time((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, t, sizeof t);
            json_t *m = json_pack("{s:s, s:s, s:s, s:s}", "type", "source", "time", t, "state",
                                  str(src, "state"), "message", str(src, "message"));
            print_msg(m, so->fmt);
            json_decref(m);
        }
        fflush(stdout);
    }
    c->timeout_ms = -1;
    return EXIT_OK;
}

/* Prints messages until count is reached, the reader of stdout goes away, or an error. */
static int sub_stream(conn *c, const sub_opts *so, long *seen)
{
    const char *want = so->changes ? "change" : "label";
    int rc = EXIT_OK;
    while (so->count < 0 || *seen < so->count) {
        json_t *m = read_msg(c, &rc);
        if (!m)
            return rc;
        const char *type = str(m, "type");
        if (strcmp(type, "error") == 0) {
            rc = report_error(m);
            json_decref(m);
            return rc;
        }
        if (strcmp(type, "label") == 0 || strcmp(type, "change") == 0 ||
            strcmp(type, "source") == 0) {
            print_msg(m, so->fmt);
            if (fflush(stdout) != 0) {   /* reader went away (| head) */
                json_decref(m);
                return EXIT_OK;
            }
        }
        if (strcmp(type, want) == 0)
            (*seen)++;
        json_decref(m);
    }
    return EXIT_OK;
}

static int parse_subscribe(int argc, char **argv, sub_opts *so)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},   {"label", required_argument, NULL, 'l'},
        {"min-score", required_argument, NULL, 'm'}, {"changes", no_argument, NULL, 'C'},
        {"format", required_argument, NULL, 'f'},  {"reconnect", no_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    static const char *const formats[] = {"json", "text", "tsv"};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "+n:l:m:Cf:R", opts, NULL)) != -1) {
        switch (o) {
        case 'n': {
            char *end;
            errno = 0;
            so->count = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || so->count < 1)
                return usage_error("--count needs a positive integer, got '%s'", optarg);
            break;
        }
        case 'l':
            if (!so->labels)
                so->labels = json_array();
            json_array_append_new(so->labels, json_string(optarg));
            so->filtered = true;
            break;
        case 'm':
            if (!parse_double(optarg, 0, 1, &so->min_score))
                return usage_error("--min-score needs a number from 0 to 1, got '%s'", optarg);
            so->filtered = true;
            break;
        case 'C': so->changes = true; so->filtered = true; break;
        case 'R': so->reconnect = true; break;
        case 'f': {
            size_t k = 0;
            while (k < 3 && strcmp(optarg, formats[k]) != 0)
                k++;
            if (k == 3)
                return usage_error("--format is json, text or tsv, got '%s'", optarg);
            so->fmt = (out_format)k;
            break;
        }
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return usage_error("subscribe: unexpected argument '%s'", argv[optind]);
    return EXIT_OK;
}

static int cmd_subscribe(conn *c, const char *path, int argc, char **argv)
{
    sub_opts so = {.count = -1, .fmt = FMT_JSON, .answer_timeout_ms = c->timeout_ms};
    int rc = parse_subscribe(argc, argv, &so);
    long seen = 0;
    int delay_ms = RECONNECT_FIRST_MS;
    if (rc == EXIT_OK)
        rc = sub_open(c, path, &so);
    while (rc == EXIT_OK || so.reconnect) {
        if (rc == EXIT_OK) {
            if (c->quiet) {
                fprintf(stderr, "basisnetctl: reconnected\n");
                c->quiet = false;
                delay_ms = RECONNECT_FIRST_MS;
            }
            rc = sub_stream(c, &so, &seen);
            if (rc == EXIT_OK)
                break;   /* --count reached or stdout closed */
        }
        /* Only a daemon that went away is waited for; a refusal is final. */
        bool gone = rc == EXIT_NO_DAEMON || (rc == EXIT_PROTOCOL && c->eof);
        if (!so.reconnect || !gone)
            break;
        if (!c->quiet)
            fprintf(stderr, "basisnetctl: the daemon went away; reconnecting (--reconnect)\n");
        c->quiet = true;
        fflush(stdout);
        /* Nothing else to do while the daemon is away: a plain wait between attempts. */
        poll(NULL, 0, delay_ms);
        delay_ms = delay_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : delay_ms * 2;
        rc = sub_open(c, path, &so);
    }
    json_decref(so.labels);
    return rc;
}

static int cmd_stats(conn *c, const char *path, int argc, char **argv)
{
    bool prom = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--prometheus") == 0)
            prom = true;
        else
            return usage_error("stats: unknown argument '%s'", argv[i]);
    }
    int rc = connect_daemon(c, path);
    if (rc != EXIT_OK)
        return rc;
    json_t *reply = NULL;
    rc = request(c, json_pack("{s:s}", "cmd", "stats"), &reply);
    if (rc != EXIT_OK)
        return rc;
    json_t *st = json_object_get(reply, "stats");
    if (prom) {
        char *txt = stats_to_prometheus(st);
        if (!txt) {
            fprintf(stderr, "basisnetctl: the stats reply lacks latency histograms\n");
            json_decref(reply);
            return EXIT_PROTOCOL;
        }
        fputs(txt, stdout);
        free(txt);
    } else {
        char *s = json_dumps(st, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
        if (s)
            puts(s);
        free(s);
    }
    json_decref(reply);
    return EXIT_OK;
}

static int cmd_set(conn *c, const char *path, int argc, char **argv)
{
    static const struct {
        const char *arg, *key;
        double lo, hi;
    } keys[] = {
        {"budget-ms", "budget_ms", BUDGET_LATENCY_MS_MIN, BUDGET_LATENCY_MS_MAX},
        {"threshold", "threshold", 0, 1},
        {"threshold-min", "threshold_min", 0, 1},
        {"threshold-max", "threshold_max", 0, 1},
    };
    if (argc < 3 || (argc - 1) % 2 != 0)
        return usage_error("%s", "set needs NAME VALUE pairs: budget-ms MS | threshold T | "
                                 "threshold-min T | threshold-max T");
    json_t *cmd = json_pack("{s:s}", "cmd", "set");
    for (int i = 1; i + 1 < argc; i += 2) {
        size_t k = 0;
        while (k < sizeof keys / sizeof keys[0] && strcmp(keys[k].arg, argv[i]) != 0)
            k++;
        if (k == sizeof keys / sizeof keys[0]) {
            json_decref(cmd);
            return usage_error("set: unknown setting '%s' (budget-ms, threshold, "
                               "threshold-min, threshold-max)", argv[i]);
        }
        double v;
        if (!parse_double(argv[i + 1], keys[k].lo, keys[k].hi, &v)) {
            fprintf(stderr, "basisnetctl: set %s: expected a number from %g to %g, got '%s'\n",
                    argv[i], keys[k].lo, keys[k].hi, argv[i + 1]);
            json_decref(cmd);
            return EXIT_USAGE;
        }
        json_object_set_new(cmd, keys[k].key, json_real(v));
    }
    int rc = connect_daemon(c, path);
    if (rc != EXIT_OK) {
        json_decref(cmd);
        return rc;
    }
    json_t *reply = NULL;
    rc = request(c, cmd, &reply);
    if (rc != EXIT_OK)
        return rc;
    char *s = json_dumps(json_object_get(reply, "budget"),
                        JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    printf("ok: budget %s\n", s ? s : "?");
    free(s);
    json_decref(reply);
    return EXIT_OK;
}

static int cmd_simple(conn *c, const char *path, const char *name, int argc, char **argv)
{
    if (argc > 1)
        return usage_error("unexpected argument '%s'", argv[1]);
    int rc = connect_daemon(c, path);
    if (rc != EXIT_OK)
        return rc;
    json_t *reply = NULL;
    rc = request(c, json_pack("{s:s}", "cmd", name), &reply);
    if (rc != EXIT_OK)
        return rc;
    printf("ok\n");
    json_decref(reply);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *path = getenv("BASISNET_SOCKET");
    if (!path || !*path)
        path = DEFAULT_SOCKET;
    double timeout_s = 10;
    int o;
    /* '+': stop at the command so its own options are parsed by it */
    while ((o = getopt_long(argc, argv, "+s:t:hV", opts, NULL)) != -1) {
        switch (o) {
        case 's': path = optarg; break;
        case 't':
            if (!parse_double(optarg, 0.001, 86400, &timeout_s))
                return usage_error("--timeout needs seconds (> 0), got '%s'", optarg);
            break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        case 'V': printf("basisnetctl %s (protocol v%d)\n", BASISNET_VERSION, PROTO_VERSION); return EXIT_OK;
        default: fputs("Try 'basisnetctl --help'.\n", stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return usage_error("%s", "a command is needed: subscribe, stats, set, reload, ping");
    const char *cmd = argv[optind];
    int cargc = argc - optind;
    char **cargv = argv + optind;
    static const char *const known[] = {"subscribe", "stats", "set", "reload", "ping"};
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ok |= strcmp(cmd, known[i]) == 0;
    if (!ok)
        return usage_error("unknown command '%s' (subscribe, stats, set, reload, ping)", cmd);
    signal(SIGPIPE, SIG_IGN);

    conn *c = calloc(1, sizeof *c);
    if (!c)
        return EXIT_PROTOCOL;
    c->fd = -1;
    c->timeout_ms = (int)(timeout_s * 1000);
    int rc;
    if (strcmp(cmd, "subscribe") == 0)
        rc = cmd_subscribe(c, path, cargc, cargv);
    else if (strcmp(cmd, "stats") == 0)
        rc = cmd_stats(c, path, cargc, cargv);
    else if (strcmp(cmd, "set") == 0)
        rc = cmd_set(c, path, cargc, cargv);
    else
        rc = cmd_simple(c, path, cmd, cargc, cargv);
    disconnect(c);
    free(c);
    return rc;
}
