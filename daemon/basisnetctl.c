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

#include "budget.h"
#include "protocol.h"
#include "stats.h"

#define DEFAULT_SOCKET "/run/basisnetd/basisnetd.sock"

enum {
    EXIT_OK = 0,
    EXIT_REFUSED = 1,   /* the daemon answered with an error */
    EXIT_USAGE = 2,
    EXIT_NO_DAEMON = 3,
    EXIT_PERMISSION = 4,
    EXIT_PROTOCOL = 5,  /* connection lost, timeout, unreadable answer */
};

static const char usage[] =
    "Usage: basisnetctl [--socket PATH] [--timeout SEC] COMMAND [ARGS]\n"
    "\n"
    "Talks to basisnetd over its Unix socket (protocol v1).\n"
    "\n"
    "Commands:\n"
    "  subscribe [--count N] [--label L]... [--min-score S] [--changes] [--format json|text]\n"
    "        print label messages as they come (one JSON object a line, or a line for\n"
    "        people with --format text: time, label, score, stage, latency). --label keeps\n"
    "        only those labels (repeatable), --min-score drops less confident labels,\n"
    "        --changes prints only change events (the debounced stable label), --count\n"
    "        exits after N label (or change) messages.\n"
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
    "denied (socket or command); 5 connection lost, timeout or unreadable answer.\n";

typedef struct {
    int fd;
    char buf[1 << 16];
    size_t len;
    int timeout_ms;     /* -1: forever */
} conn;

static int usage_error(const char *fmt, const char *arg)
{
    fputs("basisnetctl: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'basisnetctl --help'.\n", stderr);
    return EXIT_USAGE;
}

static int connect_daemon(conn *c, const char *path)
{
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
        return EXIT_OK;
    int e = errno;
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
            fprintf(stderr, "basisnetctl: the daemon closed the connection\n");
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
    const json_t *lost = json_object_get(o, "lost");
    if (json_is_integer(lost))
        printf("  (%lld messages lost: this client read too slowly)\n",
               (long long)json_integer_value(lost));
}

static int cmd_subscribe(conn *c, const char *path, int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},   {"label", required_argument, NULL, 'l'},
        {"min-score", required_argument, NULL, 'm'}, {"changes", no_argument, NULL, 'C'},
        {"format", required_argument, NULL, 'f'},  {NULL, 0, NULL, 0},
    };
    long count = -1;
    bool text = false, changes = false, filtered = false;
    double min_score = 0;
    json_t *labels = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "+n:l:m:Cf:", opts, NULL)) != -1) {
        switch (o) {
        case 'n': {
            char *end;
            errno = 0;
            count = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || count < 1) {
                json_decref(labels);
                return usage_error("--count needs a positive integer, got '%s'", optarg);
            }
            break;
        }
        case 'l':
            if (!labels)
                labels = json_array();
            json_array_append_new(labels, json_string(optarg));
            filtered = true;
            break;
        case 'm':
            if (!parse_double(optarg, 0, 1, &min_score)) {
                json_decref(labels);
                return usage_error("--min-score needs a number from 0 to 1, got '%s'", optarg);
            }
            filtered = true;
            break;
        case 'C': changes = true; filtered = true; break;
        case 'f':
            if (strcmp(optarg, "text") == 0) {
                text = true;
            } else if (strcmp(optarg, "json") != 0) {
                json_decref(labels);
                return usage_error("--format is json or text, got '%s'", optarg);
            }
            break;
        default: json_decref(labels); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        json_decref(labels);
        return usage_error("subscribe: unexpected argument '%s'", argv[optind]);
    }
    int rc = connect_daemon(c, path);
    if (rc != EXIT_OK) {
        json_decref(labels);
        return rc;
    }
    if (filtered) {
        json_t *cmd = json_pack("{s:s, s:f, s:b}", "cmd", "subscribe", "min_score", min_score,
                                "changes", changes);
        if (labels)
            json_object_set_new(cmd, "labels", labels);
        json_t *reply = NULL;
        rc = request(c, cmd, &reply);
        json_decref(reply);
        if (rc != EXIT_OK)
            return rc;
    }
    c->timeout_ms = -1;
    long seen = 0;
    const char *want = changes ? "change" : "label";
    while (count < 0 || seen < count) {
        json_t *m = read_msg(c, &rc);
        if (!m)
            return rc;
        const char *type = str(m, "type");
        bool show = strcmp(type, "label") == 0 || strcmp(type, "change") == 0 ||
                    strcmp(type, "source") == 0;
        if (strcmp(type, "error") == 0) {
            rc = report_error(m);
            json_decref(m);
            return rc;
        }
        if (show) {
            if (text) {
                print_text(m);
            } else {
                char *s = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
                if (s)
                    puts(s);
                free(s);
            }
            if (fflush(stdout) != 0) {   /* reader went away (| head) */
                json_decref(m);
                return EXIT_OK;
            }
        }
        if (strcmp(type, want) == 0)
            seen++;
        json_decref(m);
    }
    return EXIT_OK;
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
        case 'V': printf("basisnetctl (protocol v%d)\n", PROTO_VERSION); return EXIT_OK;
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
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    return rc;
}
