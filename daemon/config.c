/* basisnetd configuration: loads a YAML file with libyaml's document API and fills a
 * bn_config from one static table of keys. Every problem is reported (not only the first),
 * one per line, as FILE:LINE:COLUMN: message; docs/config.md documents every key. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "bn_log.h"
#include "rtsp.h"
#include "suggest.h"

/* A config is a few KiB; anything this large is a mistake (a video file passed by
 * accident). The bound also caps libyaml's quadratic anchor bookkeeping: a file of
 * nothing but anchors this size is rejected in about a second. */
#define CONFIG_MAX_BYTES (256 * 1024)
/* Longest value echoed back in a message; the rest is elided. */
#define SHOW_MAX 48
/* Unknown keys after this many problems get no "did you mean". */
#define SUGGEST_ERRORS 100
/* source.retry_max_ms of an rtsp source when the config does not set it. */
#define RTSP_RETRY_MAX_MS 1000
/* Deepest [ / { nesting accepted (see flow_too_deep_at). */
#define FLOW_DEPTH_MAX 64

typedef enum {
    KEY_SECTION,  /* a mapping of further keys (source:, engine:, ...) */
    KEY_STRING,   /* char[size] */
    KEY_PATH,     /* char[size]; relative values resolve against the config's directory */
    KEY_INT,      /* int in [min, max] */
    KEY_DOUBLE,   /* double in [min, max] */
    KEY_BOOL,     /* bool */
    KEY_ENUM,     /* int-sized enum: index into names */
    KEY_MODE,     /* unsigned file mode written in octal (0660) */
    KEY_CONTROLS, /* mapping of V4L2 control name -> integer (source.controls) */
    KEY_CROP,     /* mapping {x, y, width, height} of integers (source.crop) */
    KEY_REFUSED,  /* a key we know and refuse on purpose; `why` says what to do instead */
} key_type;

enum {
    KF_REQUIRED = 1u << 0, /* must be present whenever its section is */
    KF_NONEMPTY = 1u << 1, /* an empty string makes no sense for this key */
    KF_NAME = 1u << 2,     /* letters, digits, '_', '-', '.': used in topics and unit names */
    KF_TOPIC = 1u << 3,    /* MQTT topic: no wildcards, no empty levels at the ends */
    KF_RTSP_URL = 1u << 4, /* rtsp:// URL; may carry a password, so never echoed */
};

typedef struct {
    const char *path;          /* dotted key, e.g. "source.fps" */
    key_type type;
    size_t offset, size;       /* field inside bn_config */
    double min, max;           /* KEY_INT, KEY_DOUBLE, KEY_MODE */
    const char *const *names;  /* KEY_ENUM (and KEY_BOOL: unused), NULL-terminated */
    unsigned flags;
    size_t max_len;            /* KEY_STRING: longest accepted value if below size - 1 */
    const char *why;           /* KEY_REFUSED: the message */
} key_spec;

/* Same order as bn_log_level. */
static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};

/* The enum fields are written through an int pointer. */
_Static_assert(sizeof(source_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(source_format) == sizeof(int), "enum size");
_Static_assert(sizeof(aspect_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(rtsp_transport) == sizeof(int), "enum size");
_Static_assert(sizeof(budget_mode) == sizeof(int), "enum size");

/* A key's dotted path is the spelling of its bn_config member, so each row names the
 * member once and the path cannot drift from the field it fills. Designated initializers:
 * a row sets only what its type uses. */
#define FIELD(m) .path = #m, .offset = offsetof(bn_config, m), .size = sizeof(((bn_config *)0)->m)
#define K_SECTION(name, fl) {.path = name, .type = KEY_SECTION, .flags = (fl)}
#define K_STRING(m, fl) {FIELD(m), .type = KEY_STRING, .flags = (fl)}
#define K_PATH(m, fl) {FIELD(m), .type = KEY_PATH, .flags = (fl)}
#define K_INT(m, lo, hi) {FIELD(m), .type = KEY_INT, .min = (lo), .max = (hi)}
#define K_DOUBLE(m, lo, hi) {FIELD(m), .type = KEY_DOUBLE, .min = (lo), .max = (hi)}
#define K_BOOL(m) {FIELD(m), .type = KEY_BOOL}
#define K_ENUM(m, nm, fl) {FIELD(m), .type = KEY_ENUM, .names = (nm), .flags = (fl)}
#define K_MODE(m, lo, hi) {FIELD(m), .type = KEY_MODE, .min = (lo), .max = (hi)}

/* sun_path is 108 bytes including the terminating NUL. */
#define SUN_PATH_MAX 107

/* Every key the daemon reads. Sections precede their keys; nothing else depends on order
 * except that the first of two equally close keys is the one suggested. */
static const key_spec keys[] = {
    K_STRING(camera, KF_NONEMPTY | KF_NAME),
    K_PATH(model, KF_REQUIRED | KF_NONEMPTY),
    K_ENUM(log_level, log_level_names, 0),
    K_INT(stats_interval_s, 1, 86400),

    K_SECTION("source", KF_REQUIRED),
    K_ENUM(source.kind, source_kind_names, KF_REQUIRED),
    K_STRING(source.device, KF_NONEMPTY),
    K_PATH(source.path, KF_NONEMPTY),
    K_BOOL(source.loop),
    K_STRING(source.pattern, KF_NONEMPTY),
    K_STRING(source.pipeline, KF_NONEMPTY),
    K_INT(source.width, 16, 7680),
    K_INT(source.height, 16, 7680),
    K_INT(source.fps, 1, 240),
    K_ENUM(source.format, source_format_names, 0),
    K_ENUM(source.aspect, aspect_mode_names, 0),
    {FIELD(source.controls), .type = KEY_CONTROLS},
    {FIELD(source.crop), .type = KEY_CROP},
    K_INT(source.retry_initial_ms, 10, 60000),
    K_INT(source.retry_max_ms, 100, 600000),
    K_STRING(source.url, KF_NONEMPTY | KF_RTSP_URL),
    K_ENUM(source.transport, rtsp_transport_names, 0),
    K_INT(source.latency_ms, 0, 10000),
    K_PATH(source.credentials_file, KF_NONEMPTY),
    K_INT(source.timeout_ms, 500, 600000),

    K_SECTION("engine", 0),
    K_INT(engine.threads, 1, 64),
    K_DOUBLE(engine.threshold, 0, 1),
    K_DOUBLE(engine.synth_reuse, 0, 0.5),

    K_SECTION("budget", 0),
    K_ENUM(budget.mode, budget_mode_names, 0),
    K_DOUBLE(budget.latency_ms, BUDGET_LATENCY_MS_MIN, BUDGET_LATENCY_MS_MAX),
    K_DOUBLE(budget.min, 0, 1),
    K_DOUBLE(budget.max, 0, 1),
    K_INT(budget.window, 1, 100000),
    K_INT(budget.horizon, 0, 100000),

    K_SECTION("publish", 0),
    {FIELD(publish.socket), .type = KEY_STRING, .flags = KF_NONEMPTY, .max_len = SUN_PATH_MAX},
    K_MODE(publish.mode, 0, 0777),
    K_STRING(publish.group, 0),
    K_STRING(publish.control_group, 0),
    K_INT(publish.max_clients, 1, 1024),
    K_INT(publish.queue, 1, 65536),
    K_INT(publish.max_line, 64, 1048576),
    K_INT(publish.change_frames, 1, 1000),

    K_SECTION("mqtt", 0),
    K_STRING(mqtt.host, KF_REQUIRED | KF_NONEMPTY),
    K_INT(mqtt.port, 1, 65535),
    K_STRING(mqtt.client_id, KF_NONEMPTY),
    K_STRING(mqtt.topic_prefix, KF_NONEMPTY | KF_TOPIC),
    K_INT(mqtt.qos, 0, 1),
    K_BOOL(mqtt.retain),
    K_INT(mqtt.keepalive, 5, 3600),
    K_PATH(mqtt.ca_file, KF_NONEMPTY),
    K_PATH(mqtt.cert_file, KF_NONEMPTY),
    K_PATH(mqtt.key_file, KF_NONEMPTY),
    K_STRING(mqtt.username, KF_NONEMPTY),
    {.path = "mqtt.password", .type = KEY_REFUSED,
     .why = "a password is not accepted in the config file; put it in a file readable only "
            "by the daemon and give that file's path as mqtt.password_file"},
    K_PATH(mqtt.password_file, KF_NONEMPTY),
    K_INT(mqtt.queue, 0, 1000000),
    K_BOOL(mqtt.publish_labels),
};
enum { N_KEYS = sizeof keys / sizeof keys[0] };
_Static_assert(N_KEYS <= CONFIG_KEYS_MAX, "config_origin has a slot for every key");

/* "when key `when` is set (to `value`, or to anything when value is -1), `needs` must be". */
typedef struct {
    const char *when;
    int value;
    const char *needs;
} key_rule;

static const key_rule rules[] = {
    {"source.kind", SOURCE_V4L2, "source.device"},
    {"source.kind", SOURCE_FILE, "source.path"},
    {"source.kind", SOURCE_PIPELINE, "source.pipeline"},
    {"source.kind", SOURCE_RTSP, "source.url"},
    {"mqtt.cert_file", -1, "mqtt.key_file"},
    {"mqtt.cert_file", -1, "mqtt.ca_file"}, /* a client certificate only makes sense with TLS */
    {"mqtt.key_file", -1, "mqtt.cert_file"},
    {"mqtt.password_file", -1, "mqtt.username"},
};

/* Pairs of numeric keys where lo <= hi must hold. */
static const struct {
    const char *lo, *hi;
} orderings[] = {
    {"budget.min", "budget.max"},
    {"source.retry_initial_ms", "source.retry_max_ms"},
};

typedef struct {
    char *buf;     /* caller's buffer, may be NULL */
    size_t cap;
    size_t len;
    int count;     /* problems found, including any that did not fit */
} err_sink;

typedef struct {
    const char *name;             /* FILE in messages */
    char base_dir[BN_PATH_MAX];   /* absolute directory of the config; "" if unknown */
    bn_config *cfg;
    yaml_document_t *doc;
    err_sink err;
    bool seen[N_KEYS];            /* key present (even with a bad value) */
    bool valid[N_KEYS];           /* key present and its value accepted */
    yaml_mark_t mark[N_KEYS];     /* where the key was written */
    yaml_mark_t control_mark[BN_MAX_CONTROLS];
} parse_ctx;

/* ---- messages ------------------------------------------------------------------------ */

static void err_vadd(err_sink *e, const char *name, const yaml_mark_t *m, const char *fmt,
                     va_list ap)
{
    e->count++;
    if (!e->buf || e->cap == 0 || e->len + 1 >= e->cap)
        return;
    char *p = e->buf + e->len;
    size_t room = e->cap - e->len;
    int n;
    if (e->count > 1) {
        *p++ = '\n';
        room--;
        e->len++;
    }
    if (m)
        n = snprintf(p, room, "%s:%zu:%zu: ", name, m->line + 1, m->column + 1);
    else
        n = snprintf(p, room, "%s: ", name);
    if (n < 0 || (size_t)n >= room) {
        e->len = e->cap - 1;
        return;
    }
    p += n;
    room -= (size_t)n;
    e->len += (size_t)n;
    n = vsnprintf(p, room, fmt, ap);
    e->len = (n < 0 || (size_t)n >= room) ? e->cap - 1 : e->len + (size_t)n;
}

__attribute__((format(printf, 3, 4))) static void
err_at(parse_ctx *c, const yaml_mark_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vadd(&c->err, c->name, m, fmt, ap);
    va_end(ap);
}

/* Line and column (1-based, columns in characters as libyaml counts them) of a byte. */
static yaml_mark_t mark_of_offset(const char *data, size_t len, size_t off)
{
    yaml_mark_t m = {0};
    for (size_t i = 0; i < off && i < len; i++) {
        unsigned char b = (unsigned char)data[i];
        if (b == '\n') {
            m.line++;
            m.column = 0;
        } else if ((b & 0xC0) != 0x80) {
            m.column++;
        }
    }
    m.index = off;
    return m;
}

/* Byte offset of a mark (the inverse of mark_of_offset); len when it is past the end. */
static size_t byte_of_mark(const char *data, size_t len, const yaml_mark_t *m)
{
    size_t i = 0, line = 0, col = 0;
    for (; i < len && line < m->line; i++)
        if (data[i] == '\n')
            line++;
    for (; i < len && data[i] != '\n'; i++) {
        if (((unsigned char)data[i] & 0xC0) == 0x80)
            continue;
        if (col++ == m->column)
            return i;
    }
    return i < len && col == m->column ? i : len;
}

/* Offset of the first byte that is not well-formed UTF-8 (no overlong forms, surrogates
 * or code points above U+10FFFF), or len when the whole buffer is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char b = s[i];
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xC2 && b <= 0xDF) {
            n = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            n = 3;
            if (b == 0xE0)
                lo = 0xA0;
            else if (b == 0xED)
                hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 4;
            if (b == 0xF0)
                lo = 0x90;
            else if (b == 0xF4)
                hi = 0x8F;
        } else {
            return i;
        }
        if (i + n > len || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k < n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += n;
    }
    return len;
}

/* libyaml's scanner spends time proportional to the flow nesting depth on every token, so
 * a file of nothing but '[' takes hours to reject. A config nests three levels; refuse
 * more than FLOW_DEPTH_MAX brackets deep before libyaml sees the file. Brackets inside
 * quoted strings count too: a real config never has dozens unbalanced. Returns the offset
 * of the first bracket too deep, or len. */
static size_t flow_too_deep_at(const char *s, size_t len)
{
    size_t depth = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '[' || s[i] == '{') {
            if (++depth > FLOW_DEPTH_MAX)
                return i;
        } else if ((s[i] == ']' || s[i] == '}') && depth > 0) {
            depth--;
        }
    }
    return len;
}

static bool node_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return len == 0 || (len == 1 && v[0] == '~') ||
           (len == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

/* What the user wrote, for "got ..." in messages: a quoted, escaped, shortened scalar or
 * the kind of node. */
static const char *describe(const yaml_node_t *n, char *out, size_t outlen)
{
    if (!n)
        return "nothing";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (node_is_null(n))
        return "an empty value";
    const unsigned char *v = n->data.scalar.value;
    size_t len = n->data.scalar.length, o = 0, i = 0;
    out[o++] = '"';
    for (; i < len && o + 8 < outlen && i < SHOW_MAX; i++) {
        unsigned char b = v[i];
        if (b == '"' || b == '\\') {
            out[o++] = '\\';
            out[o++] = (char)b;
        } else if (b < 0x20 || b == 0x7F) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", b);
        } else {
            out[o++] = (char)b;
        }
    }
    bool cut = i < len;
    if (cut) /* never end inside a UTF-8 sequence */
        while (o > 1 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
            o--;
    if (cut && o > 1 && ((unsigned char)out[o - 1] & 0xC0) == 0xC0)
        o--;
    out[o++] = '"';
    if (cut && o + 4 <= outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

/* ---- the key table -------------------------------------------------------------------- */

static int key_index(const char *path)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].path, path) == 0)
            return i;
    return -1;
}

/* Index of the section a key belongs to, or -1 for top-level keys. */
static int parent_index(int i)
{
    const char *dot = strrchr(keys[i].path, '.');
    if (!dot)
        return -1;
    char parent[64];
    size_t n = (size_t)(dot - keys[i].path);
    if (n >= sizeof parent)
        return -1;
    memcpy(parent, keys[i].path, n);
    parent[n] = '\0';
    return key_index(parent);
}

static const char *leaf_name(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* The known key closest to an unknown one: a typo in the name (source.fsp), or the right
 * name in the wrong section (fps at the top level). NULL when nothing is close. */
static const char *suggest_key(const char *path, const char *name)
{
    size_t best = SIZE_MAX;
    const char *best_path = NULL;
    for (int i = 0; i < N_KEYS; i++) {
        if (keys[i].type == KEY_REFUSED)
            continue;
        /* The distance is at least the difference in length: skip the hopeless ones, which
         * keeps a file full of junk keys cheap to reject. */
        size_t lp = strlen(path), lk = strlen(keys[i].path);
        size_t ln = strlen(name), ll = strlen(leaf_name(keys[i].path));
        size_t d = (lp > lk ? lp - lk : lk - lp) <= 2 ? suggest_distance(path, keys[i].path)
                                                       : SIZE_MAX;
        size_t d_leaf = (ln > ll ? ln - ll : ll - ln) <= 1
                            ? suggest_distance(name, leaf_name(keys[i].path))
                            : SIZE_MAX;
        if (d_leaf != SIZE_MAX && d_leaf + 1 < d)
            d = d_leaf + 1;
        if (d < best) {
            best = d;
            best_path = keys[i].path;
        }
    }
    size_t len = strlen(name);
    return best <= 2 && best * 2 <= len ? best_path : NULL;
}

/* ---- values --------------------------------------------------------------------------- */

static void *field(parse_ctx *c, const key_spec *k) { return (char *)c->cfg + k->offset; }

/* "expected ..." for a key, used in every wrong-type and out-of-range message. */
static const char *expectation(const key_spec *k, char *out, size_t outlen)
{
    switch (k->type) {
    case KEY_SECTION:
        return "expected a mapping of keys";
    case KEY_STRING:
        if (k->flags & KF_NAME)
            return "expected a name of letters, digits, '_', '-' and '.'";
        if (k->flags & KF_TOPIC)
            return "expected an MQTT topic without '+', '#' or empty levels at the ends";
        return k->flags & KF_NONEMPTY ? "expected a non-empty string" : "expected a string";
    case KEY_PATH:
        return "expected a file path";
    case KEY_INT:
        snprintf(out, outlen, "expected an integer from %.0f to %.0f", k->min, k->max);
        return out;
    case KEY_DOUBLE:
        snprintf(out, outlen, "expected a number from %g to %g", k->min, k->max);
        return out;
    case KEY_BOOL:
        return "expected true or false";
    case KEY_ENUM: {
        size_t o = (size_t)snprintf(out, outlen, "expected one of");
        for (size_t i = 0; k->names[i] && o < outlen; i++)
            o += (size_t)snprintf(out + o, outlen - o, "%s %s", i ? "," : "", k->names[i]);
        return out;
    }
    case KEY_MODE:
        snprintf(out, outlen, "expected an octal file mode from %04o to %04o such as 0660",
                 (unsigned)k->min, (unsigned)k->max);
        return out;
    case KEY_CONTROLS:
        return "expected a mapping of control names to integers";
    case KEY_CROP:
        return "expected a mapping {x: X, y: Y, width: W, height: H} of integers in source "
               "pixels";
    case KEY_REFUSED:
        break;
    }
    return "expected something else";
}

static void err_expected(parse_ctx *c, const key_spec *k, const char *path,
                         const yaml_node_t *v)
{
    char exp[160], got[SHOW_MAX * 4 + 16];
    err_at(c, &v->start_mark, "key '%s': %s, got %s", path, expectation(k, exp, sizeof exp),
           describe(v, got, sizeof got));
}

/* Full-consumption integer parse: optional sign, decimal digits, nothing else. */
static bool parse_ll(const char *s, long long *out)
{
    if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == '+'))
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (!((*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.'))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    /* YAML 1.1 spellings, which is what people write in configs. */
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "YES",  "on",   "On",   "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No",
                                     "NO",    "off",   "Off",   "OFF"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(s, yes[i]) == 0)
            return *out = true, true;
        if (strcmp(s, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

/* 0660 (YAML 1.1 octal) or 0o660 (YAML 1.2). A bare 660 is refused: it reads as decimal
 * in YAML and people who wrote it meant octal. */
static bool parse_mode(const char *s, unsigned long *out)
{
    if (s[0] != '0')
        return false;
    if (s[1] == '\0') {
        *out = 0;
        return true;
    }
    const char *d = s + 1;
    if (*d == 'o')
        d++;
    if (*d < '0' || *d > '7')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(d, &end, 8);
    if (errno || *end != '\0')
        return false;
    *out = v;
    return true;
}

static bool is_name(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return false;
    }
    return true;
}

static bool is_topic(const char *s, size_t len)
{
    return len > 0 && s[0] != '/' && s[len - 1] != '/' && !memchr(s, '+', len) &&
           !memchr(s, '#', len);
}

static bool is_control_name(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return len > 0;
}

/* Writes base_dir/value into dst (value relative, base known), else value itself.
 * Returns the length needed; the caller checks it against the buffer. */
static size_t resolve_path(const parse_ctx *c, const char *value, char *dst, size_t dstlen)
{
    if (value[0] == '/' || c->base_dir[0] == '\0')
        return (size_t)snprintf(dst, dstlen, "%s", value);
    while (value[0] == '.' && value[1] == '/') /* "./x" is just "x" */
        for (value += 2; *value == '/'; value++)
            ;
    if (value[0] == '\0' || strcmp(value, ".") == 0)
        return (size_t)snprintf(dst, dstlen, "%s", c->base_dir);
    size_t bl = strlen(c->base_dir);
    const char *sep = (bl > 0 && c->base_dir[bl - 1] == '/') ? "" : "/";
    return (size_t)snprintf(dst, dstlen, "%s%s%s", c->base_dir, sep, value);
}

static bool set_string(parse_ctx *c, const key_spec *k, const char *path, const yaml_node_t *v)
{
    if (v->type != YAML_SCALAR_NODE) {
        err_expected(c, k, path, v);
        return false;
    }
    const char *s = node_is_null(v) ? "" : (const char *)v->data.scalar.value;
    size_t len = node_is_null(v) ? 0 : v->data.scalar.length;
    if (len == 0 && (k->flags & KF_NONEMPTY)) {
        err_at(c, &v->start_mark, "key '%s': expected a non-empty %s, got %s", path,
               k->type == KEY_PATH ? "file path" : "string",
               len == 0 && !node_is_null(v) ? "\"\"" : "an empty value");
        return false;
    }
    if (memchr(s, '\0', len)) {
        err_at(c, &v->start_mark, "key '%s': the value contains a NUL character", path);
        return false;
    }
    size_t max_len = k->max_len ? k->max_len : k->size - 1;
    if (len > max_len) {
        err_at(c, &v->start_mark, "key '%s': expected a string of at most %zu bytes, got %zu bytes",
               path, max_len, len);
        return false;
    }
    if (((k->flags & KF_NAME) && !is_name(s, len)) ||
        ((k->flags & KF_TOPIC) && !is_topic(s, len))) {
        err_expected(c, k, path, v);
        return false;
    }
    if (k->flags & KF_RTSP_URL) {
        char why[BN_PATH_MAX + 200];
        char url[BN_PATH_MAX];
        memcpy(url, s, len);
        url[len] = '\0';
        if (rtsp_url_check(url, why, sizeof why) != BN_OK) {
            err_at(c, &v->start_mark, "key '%s': %s", path, why);
            return false;
        }
    }
    char *dst = field(c, k);
    if (k->type == KEY_PATH) {
        char tmp[BN_PATH_MAX];
        size_t need = resolve_path(c, s, tmp, sizeof tmp);
        if (need > max_len) {
            err_at(c, &v->start_mark,
                   "key '%s': expected a path of at most %zu bytes, got %zu bytes after "
                   "resolving it against the config's directory %s",
                   path, max_len, need, c->base_dir);
            return false;
        }
        memcpy(dst, tmp, need + 1);
    } else {
        memcpy(dst, s, len);
        dst[len] = '\0';
    }
    return true;
}

static bool set_scalar(parse_ctx *c, const key_spec *k, const char *path, const yaml_node_t *v)
{
    if (k->type == KEY_STRING || k->type == KEY_PATH)
        return set_string(c, k, path, v);
    if (v->type != YAML_SCALAR_NODE || node_is_null(v) ||
        memchr(v->data.scalar.value, '\0', v->data.scalar.length)) {
        err_expected(c, k, path, v);
        return false;
    }
    const char *s = (const char *)v->data.scalar.value;
    switch (k->type) {
    case KEY_INT: {
        long long x;
        if (!parse_ll(s, &x) || x < (long long)k->min || x > (long long)k->max)
            break;
        *(int *)field(c, k) = (int)x;
        return true;
    }
    case KEY_DOUBLE: {
        double x;
        if (!parse_double(s, &x) || x < k->min || x > k->max)
            break;
        *(double *)field(c, k) = x;
        return true;
    }
    case KEY_BOOL: {
        bool x;
        if (!parse_bool(s, &x))
            break;
        *(bool *)field(c, k) = x;
        return true;
    }
    case KEY_ENUM:
        for (int i = 0; k->names[i]; i++) {
            if (strcmp(s, k->names[i]) == 0) {
                *(int *)field(c, k) = i;
                return true;
            }
        }
        break;
    case KEY_MODE: {
        unsigned long x;
        if (!parse_mode(s, &x) || x < (unsigned long)k->min || x > (unsigned long)k->max)
            break;
        *(unsigned *)field(c, k) = (unsigned)x;
        return true;
    }
    default:
        break;
    }
    err_expected(c, k, path, v);
    return false;
}

static bool set_controls(parse_ctx *c, const key_spec *k, const char *path, const yaml_node_t *v)
{
    source_config *src = &c->cfg->source;
    src->n_controls = 0;
    if (node_is_null(v))
        return true;
    if (v->type != YAML_MAPPING_NODE) {
        err_expected(c, k, path, v);
        return false;
    }
    bool ok = true;
    char got[SHOW_MAX * 4 + 16];
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
        if (!kn || !vn)
            continue;
        if (kn->type != YAML_SCALAR_NODE || !is_control_name((const char *)kn->data.scalar.value,
                                                             kn->data.scalar.length)) {
            err_at(c, &kn->start_mark,
                   "key '%s': expected a control name of lower-case letters, digits and '_' "
                   "(as `basisnet probe` lists them), got %s",
                   path, describe(kn, got, sizeof got));
            ok = false;
            continue;
        }
        const char *name = (const char *)kn->data.scalar.value;
        if (kn->data.scalar.length >= BN_NAME_MAX) {
            err_at(c, &kn->start_mark,
                   "key '%s': expected a control name of at most %d bytes, got %zu bytes", path,
                   BN_NAME_MAX - 1, kn->data.scalar.length);
            ok = false;
            continue;
        }
        int dup = -1;
        for (int i = 0; i < src->n_controls; i++)
            if (strcmp(src->controls[i].name, name) == 0)
                dup = i;
        if (dup >= 0) {
            err_at(c, &kn->start_mark,
                   "duplicate key '%s.%s' (first given at line %zu, column %zu)", path, name,
                   c->control_mark[dup].line + 1, c->control_mark[dup].column + 1);
            ok = false;
            continue;
        }
        long long x;
        if (vn->type != YAML_SCALAR_NODE || node_is_null(vn) ||
            memchr(vn->data.scalar.value, '\0', vn->data.scalar.length) ||
            !parse_ll((const char *)vn->data.scalar.value, &x)) {
            err_at(c, &vn->start_mark, "key '%s.%s': expected an integer, got %s", path, name,
                   describe(vn, got, sizeof got));
            ok = false;
            continue;
        }
        if (src->n_controls == BN_MAX_CONTROLS) {
            err_at(c, &kn->start_mark, "key '%s': expected at most %d controls, got more", path,
                   BN_MAX_CONTROLS);
            return false;
        }
        source_control *ctl = &src->controls[src->n_controls];
        c->control_mark[src->n_controls] = kn->start_mark;
        src->n_controls++;
        memcpy(ctl->name, name, kn->data.scalar.length + 1);
        ctl->value = x;
    }
    return ok;
}

/* source.crop: {x: X, y: Y, width: W, height: H}, all four required. Every problem is
 * reported where it was written (the sub-key or its value). */
static bool set_crop(parse_ctx *c, const key_spec *k, const char *path, const yaml_node_t *v)
{
    static const char *const parts[] = {"x", "y", "width", "height"};
    source_crop *crop = &c->cfg->source.crop;
    *crop = (source_crop){0};
    if (v->type != YAML_MAPPING_NODE) {
        err_expected(c, k, path, v);
        return false;
    }
    long long val[4];
    bool have[4] = {false}, ok = true;
    yaml_mark_t at[4];
    char got[SHOW_MAX * 4 + 16];
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
        if (!kn || !vn)
            continue;
        int i = -1;
        if (kn->type == YAML_SCALAR_NODE)
            for (int j = 0; j < 4; j++)
                if (strlen(parts[j]) == kn->data.scalar.length &&
                    !memcmp(parts[j], kn->data.scalar.value, kn->data.scalar.length))
                    i = j;
        if (i < 0) {
            err_at(c, &kn->start_mark,
                   "unknown key %s in '%s' (expected x, y, width and height)",
                   describe(kn, got, sizeof got), path);
            ok = false;
            continue;
        }
        if (have[i]) {
            err_at(c, &kn->start_mark,
                   "duplicate key '%s.%s' (first given at line %zu, column %zu)", path, parts[i],
                   at[i].line + 1, at[i].column + 1);
            ok = false;
            continue;
        }
        have[i] = true;
        at[i] = kn->start_mark;
        long long lo = i < 2 ? 0 : 1;
        if (vn->type != YAML_SCALAR_NODE || node_is_null(vn) ||
            memchr(vn->data.scalar.value, '\0', vn->data.scalar.length) ||
            !parse_ll((const char *)vn->data.scalar.value, &val[i]) || val[i] < lo ||
            val[i] > SOURCE_CROP_MAX) {
            err_at(c, &vn->start_mark, "key '%s.%s': expected an integer from %lld to %d%s, got %s",
                   path, parts[i], lo, SOURCE_CROP_MAX,
                   i < 2 ? " (pixels from the frame's left or top edge)"
                         : " (a crop needs a positive size)",
                   describe(vn, got, sizeof got));
            ok = false;
        }
    }
    for (int i = 0; i < 4 && ok; i++)
        if (!have[i]) {
            err_at(c, &v->start_mark,
                   "key '%s': missing '%s' (a crop is {x: X, y: Y, width: W, height: H})", path,
                   parts[i]);
            ok = false;
        }
    if (!ok)
        return false;
    *crop = (source_crop){(int)val[0], (int)val[1], (int)val[2], (int)val[3]};
    return true;
}

/* ---- walking the document ------------------------------------------------------------- */

static void walk_mapping(parse_ctx *c, const yaml_node_t *map, const char *prefix)
{
    char got[SHOW_MAX * 4 + 16];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
        if (!kn || !vn)
            continue;
        if (kn->type != YAML_SCALAR_NODE) {
            err_at(c, &kn->start_mark, "keys must be plain names, got %s",
                   describe(kn, got, sizeof got));
            continue;
        }
        const char *name = (const char *)kn->data.scalar.value;
        size_t name_len = kn->data.scalar.length;
        char path[128];
        int idx = -1;
        if (name_len < 64 && !memchr(name, '\0', name_len)) {
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name);
            if (!strchr(name, '.'))
                idx = key_index(path);
        } else {
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "",
                     describe(kn, got, sizeof got));
        }
        if (idx < 0) {
            /* Past a screenful of problems nobody reads suggestions. */
            const char *hint =
                name_len < 64 && c->err.count < SUGGEST_ERRORS ? suggest_key(path, name) : NULL;
            if (strchr(name, '.') && key_index(path) >= 0)
                err_at(c, &kn->start_mark,
                       "unknown key '%s' (keys do not contain dots: write '%s' nested under "
                       "'%.*s:')",
                       path, leaf_name(path), (int)(leaf_name(path) - path - 1), path);
            else if (hint)
                err_at(c, &kn->start_mark, "unknown key '%s' (did you mean '%s'?)", path, hint);
            else
                err_at(c, &kn->start_mark, "unknown key '%s'", path);
            continue;
        }
        const key_spec *k = &keys[idx];
        if (c->seen[idx]) {
            err_at(c, &kn->start_mark, "duplicate key '%s' (first given at line %zu, column %zu)",
                   path, c->mark[idx].line + 1, c->mark[idx].column + 1);
            continue;
        }
        c->seen[idx] = true;
        c->mark[idx] = kn->start_mark;
        switch (k->type) {
        case KEY_SECTION:
            if (vn->type == YAML_MAPPING_NODE) {
                c->valid[idx] = true;
                walk_mapping(c, vn, path);
            } else if (node_is_null(vn)) {
                c->valid[idx] = true; /* "mqtt:" alone: the section with every default */
            } else {
                err_expected(c, k, path, vn);
            }
            break;
        case KEY_CONTROLS:
            c->valid[idx] = set_controls(c, k, path, vn);
            break;
        case KEY_CROP:
            c->valid[idx] = set_crop(c, k, path, vn);
            break;
        case KEY_REFUSED:
            err_at(c, &kn->start_mark, "key '%s': %s", path, k->why);
            break;
        default:
            c->valid[idx] = set_scalar(c, k, path, vn);
            break;
        }
    }
}

static double number_of(parse_ctx *c, int idx)
{
    const key_spec *k = &keys[idx];
    return k->type == KEY_DOUBLE ? *(double *)field(c, k) : *(int *)field(c, k);
}

/* Checks that need the whole document: required keys, keys that need other keys, and
 * ordered pairs. Runs after the walk so that each is reported once, where it applies. */
static void check_document(parse_ctx *c, const yaml_node_t *root)
{
    for (int i = 0; i < N_KEYS; i++) {
        if (!(keys[i].flags & KF_REQUIRED) || c->seen[i])
            continue;
        int parent = parent_index(i);
        if (parent >= 0 && !c->valid[parent]) /* absent, or already reported */
            continue;
        const yaml_mark_t *m = parent >= 0 ? &c->mark[parent] : &root->start_mark;
        err_at(c, m, "missing required key '%s'", keys[i].path);
    }
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        int w = key_index(rules[r].when), n = key_index(rules[r].needs);
        if (w < 0 || n < 0 || !c->valid[w] || c->seen[n])
            continue;
        if (rules[r].value >= 0 && *(int *)field(c, &keys[w]) != rules[r].value)
            continue;
        if (rules[r].value >= 0)
            err_at(c, &c->mark[w], "missing required key '%s' (needed when %s is %s)",
                   rules[r].needs, rules[r].when, keys[w].names[rules[r].value]);
        else
            err_at(c, &c->mark[w], "missing required key '%s' (needed when %s is set)",
                   rules[r].needs, rules[r].when);
    }
    for (size_t o = 0; o < sizeof orderings / sizeof orderings[0]; o++) {
        int lo = key_index(orderings[o].lo), hi = key_index(orderings[o].hi);
        if (lo < 0 || hi < 0 || (c->seen[lo] && !c->valid[lo]) || (c->seen[hi] && !c->valid[hi]))
            continue;
        double a = number_of(c, lo), b = number_of(c, hi);
        if (a <= b)
            continue;
        int at = c->seen[lo] ? lo : hi;
        err_at(c, &c->mark[at], "key '%s': %g is greater than %s %g%s", keys[lo].path, a,
               keys[hi].path, b, c->seen[hi] ? "" : " (its default)");
    }
    /* A test source's frame is exactly source.width x source.height: a crop outside it is
     * known now. Other sources' frames are known once capture negotiated (pipeline/capture.c
     * reports it then). */
    int ci = key_index("source.crop"), ki = key_index("source.kind");
    int wi = key_index("source.width"), hi = key_index("source.height");
    const source_config *s = &c->cfg->source;
    char why[256];
    if (c->valid[ci] && c->valid[ki] && s->kind == SOURCE_TEST &&
        !(c->seen[wi] && !c->valid[wi]) && !(c->seen[hi] && !c->valid[hi]) &&
        !source_crop_fits(&s->crop, s->width, s->height, why, sizeof why))
        err_at(c, &c->mark[ci], "key 'source.crop': %s (source.width x source.height%s)",
               why + strlen("source.crop "),
               c->seen[wi] && c->seen[hi] ? "" : ", defaults included");
}

/* Defaults that depend on other keys. */
static void fill_derived(parse_ctx *c)
{
    bn_config *cfg = c->cfg;
    cfg->mqtt.enabled = c->seen[key_index("mqtt")];
    if (!c->seen[key_index("mqtt.topic_prefix")])
        snprintf(cfg->mqtt.topic_prefix, sizeof cfg->mqtt.topic_prefix, "basisnet/%s",
                 cfg->camera);
    if (!c->seen[key_index("mqtt.client_id")]) {
        /* "basisnetd-" plus a camera name may not fit: keep the end, which tells cameras
         * apart better than a common start. */
        char id[sizeof "basisnetd-" + BN_NAME_MAX];
        int n = snprintf(id, sizeof id, "basisnetd-%s", cfg->camera);
        size_t len = n < 0 ? 0 : (size_t)n, max = sizeof cfg->mqtt.client_id - 1;
        const char *from = len > max ? id + (len - max) : id;
        memcpy(cfg->mqtt.client_id, from, strlen(from) + 1);
    }
    /* An IP camera that comes back is picked up within a second: a retry against a closed
     * port costs one refused connection, unlike reopening a V4L2 device. */
    source_config *s = &cfg->source;
    /* The whole region of interest reaches the model: padded to its aspect, not centre-
     * cropped, unless source.aspect says otherwise. */
    if (c->valid[key_index("source.crop")] && !c->seen[key_index("source.aspect")])
        s->aspect = ASPECT_LETTERBOX;
    if (s->kind == SOURCE_RTSP && !c->seen[key_index("source.retry_max_ms")])
        s->retry_max_ms = s->retry_initial_ms > RTSP_RETRY_MAX_MS ? s->retry_initial_ms
                                                                   : RTSP_RETRY_MAX_MS;
}

static void set_base_dir(parse_ctx *c, const char *name)
{
    c->base_dir[0] = '\0';
    const char *slash = strrchr(name, '/');
    size_t dirlen = slash ? (size_t)(slash - name) : 0;
    if (slash && dirlen == 0)
        dirlen = 1; /* "/x.yaml" lives in "/" */
    if (name[0] == '/') {
        if (dirlen < sizeof c->base_dir) {
            memcpy(c->base_dir, name, dirlen);
            c->base_dir[dirlen] = '\0';
        }
        return;
    }
    /* Relative config path: anchor it to the current directory now, so that paths stay
     * right if the daemon changes directory before a reload. */
    char cwd[BN_PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return;
    int n;
    if (slash)
        n = snprintf(c->base_dir, sizeof c->base_dir, "%s/%.*s", strcmp(cwd, "/") ? cwd : "",
                     (int)dirlen, name);
    else
        n = snprintf(c->base_dir, sizeof c->base_dir, "%s", cwd);
    if (n < 0 || (size_t)n >= sizeof c->base_dir)
        c->base_dir[0] = '\0';
}

static void report_parser_error(parse_ctx *c, const yaml_parser_t *p, const char *data,
                                size_t len)
{
    if (p->error == YAML_MEMORY_ERROR) {
        err_at(c, NULL, "out of memory while parsing");
        return;
    }
    yaml_mark_t m = p->problem_mark;
    if (p->error == YAML_READER_ERROR)
        m = mark_of_offset(data, len, p->problem_offset);
    const char *problem = p->problem ? p->problem : "unknown error";
    /* libyaml's "found character that cannot start any token" is what a tab in the
     * indentation produces; say so, it is the usual cause. */
    size_t at = byte_of_mark(data, len, &m);
    const char *hint = at < len && data[at] == '\t'
                           ? "; indent with spaces, YAML does not allow tabs there"
                           : "";
    if (p->context)
        err_at(c, &m, "not valid YAML: %s (%s at line %zu, column %zu)%s", problem, p->context,
               p->context_mark.line + 1, p->context_mark.column + 1, hint);
    else
        err_at(c, &m, "not valid YAML: %s%s", problem, hint);
}

static void parse_document(parse_ctx *c, const char *data, size_t len)
{
    size_t bad = utf8_invalid_at((const unsigned char *)data, len);
    if (bad < len) {
        yaml_mark_t m = mark_of_offset(data, len, bad);
        err_at(c, &m, "not valid UTF-8 (byte 0x%02x); the config must be UTF-8 text",
               (unsigned char)data[bad]);
        return;
    }
    size_t deep = flow_too_deep_at(data, len);
    if (deep < len) {
        yaml_mark_t m = mark_of_offset(data, len, deep);
        err_at(c, &m, "brackets nested more than %d deep; a config needs three levels at most",
               FLOW_DEPTH_MAX);
        return;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        err_at(c, NULL, "out of memory while parsing");
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    if (!yaml_parser_load(&parser, &doc)) {
        report_parser_error(c, &parser, data, len);
        yaml_parser_delete(&parser);
        return;
    }
    c->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    static const yaml_mark_t start = {0};
    char got[SHOW_MAX * 4 + 16];
    if (!root || node_is_null(root))
        err_at(c, root ? &root->start_mark : &start,
               "the file is empty; a config needs at least the keys 'model' and 'source'");
    else if (root->type != YAML_MAPPING_NODE)
        err_at(c, &root->start_mark, "expected a mapping of keys at the top level, got %s",
               describe(root, got, sizeof got));
    else {
        walk_mapping(c, root, "");
        check_document(c, root);
        fill_derived(c);
    }
    c->doc = NULL;
    /* A second document ("---" again) is almost always two configs pasted together. */
    if (root) {
        yaml_document_t next;
        if (!yaml_parser_load(&parser, &next)) {
            report_parser_error(c, &parser, data, len);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&next);
            if (r2)
                err_at(c, &r2->start_mark,
                       "a second YAML document; a config file holds exactly one");
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

/* ---- public API ------------------------------------------------------------------------ */

void config_init(bn_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->camera, sizeof cfg->camera, "camera");
    cfg->log_level = BN_LOG_INFO;
    cfg->stats_interval_s = 10;

    source_config *s = &cfg->source;
    s->kind = SOURCE_V4L2;
    snprintf(s->pattern, sizeof s->pattern, "smpte");
    s->width = 640;
    s->height = 480;
    s->fps = 30;
    s->format = PIXFMT_AUTO;
    s->aspect = ASPECT_CROP;
    s->retry_initial_ms = 500;
    s->retry_max_ms = 10000;
    s->transport = RTSP_TRANSPORT_AUTO;
    s->latency_ms = 200;
    s->timeout_ms = 5000;

    cfg->engine.threads = 1;
    cfg->engine.threshold = 0.9;

    cfg->budget.mode = BUDGET_OFF;
    cfg->budget.latency_ms = 50.0;
    cfg->budget.min = 0.5;
    cfg->budget.max = 0.99;
    cfg->budget.window = 256;
    cfg->budget.horizon = 100;

    publish_config *p = &cfg->publish;
    snprintf(p->socket, sizeof p->socket, "/run/basisnetd/basisnetd.sock");
    p->mode = 0660;
    p->max_clients = 64;
    p->queue = 256;
    p->max_line = 4096;
    p->change_frames = 3;

    mqtt_config *m = &cfg->mqtt;
    m->enabled = false;
    m->port = 1883;
    snprintf(m->client_id, sizeof m->client_id, "basisnetd-camera");
    snprintf(m->topic_prefix, sizeof m->topic_prefix, "basisnet/camera");
    m->qos = 0;
    m->retain = true;
    m->keepalive = 60;
    m->queue = 1000;
    m->publish_labels = false;
}

bn_status config_load_buffer(const char *name, const char *data, size_t len, bn_config *cfg,
                             char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!cfg || (!data && len))
        return BN_ERR_INVALID_ARG;
    parse_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return BN_ERR_NOMEM;
    c->name = name ? name : "<config>";
    c->cfg = cfg;
    c->err = (err_sink){.buf = errlen ? err : NULL, .cap = errlen};
    set_base_dir(c, c->name);
    config_init(cfg);
    parse_document(c, data ? data : "", len);
    snprintf(cfg->origin.file, sizeof cfg->origin.file, "%s", c->name);
    for (int i = 0; i < N_KEYS; i++)
        if (c->seen[i]) {
            cfg->origin.line[i] = (unsigned)c->mark[i].line + 1;
            cfg->origin.column[i] = (unsigned)c->mark[i].column + 1;
        }
    bn_status st = c->err.count ? BN_ERR_CONFIG : BN_OK;
    if (st != BN_OK)
        BN_LOGD("config", "%s: %d problem(s)", c->name, c->err.count);
    free(c);
    return st;
}

void config_where(const bn_config *cfg, const char *key, char *buf, size_t len)
{
    int i = key_index(key);
    const config_origin *o = &cfg->origin;
    if (i >= 0 && o->line[i])
        snprintf(buf, len, "%s:%u:%u: key '%s'", o->file, o->line[i], o->column[i], key);
    else
        snprintf(buf, len, "%s: key '%s' (default)", o->file, key);
}

bn_status config_load(const char *path, bn_config *cfg, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!path || !cfg)
        return BN_ERR_INVALID_ARG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    const char *problem = NULL;
    int saved = 0;
    if (fd < 0) {
        problem = "cannot open";
        saved = errno;
    } else if (fstat(fd, &st) != 0) {
        problem = "cannot stat";
        saved = errno;
    } else if (S_ISDIR(st.st_mode)) {
        problem = "cannot read";
        saved = EISDIR;
    }
    if (problem) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s: %s", path, problem, strerror(saved));
        if (fd >= 0)
            close(fd);
        return BN_ERR_IO;
    }
    /* Read up to one byte past the limit to tell "exactly at" from "over". */
    char *buf = malloc(CONFIG_MAX_BYTES + 1);
    if (!buf) {
        close(fd);
        return BN_ERR_NOMEM;
    }
    size_t len = 0;
    while (len < CONFIG_MAX_BYTES + 1) {
        ssize_t n = read(fd, buf + len, CONFIG_MAX_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            saved = errno;
            if (err && errlen)
                snprintf(err, errlen, "%s: cannot read: %s", path, strerror(saved));
            free(buf);
            close(fd);
            return BN_ERR_IO;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len > CONFIG_MAX_BYTES) {
        if (err && errlen)
            snprintf(err, errlen, "%s: larger than %d bytes; not a config file", path,
                     CONFIG_MAX_BYTES);
        free(buf);
        return BN_ERR_CONFIG;
    }
    bn_status s = config_load_buffer(path, buf, len, cfg, err, errlen);
    free(buf);
    return s;
}
