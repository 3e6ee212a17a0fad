/* The config's keys: the table every key is read by, the walk over the document that
 * finds each key's row, the checks that need the whole document (required keys, keys that
 * need other keys, ordered pairs) and the defaults, plain (config_init) and derived. */
#include "config_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bn_log.h"
#include "gate.h"
#include "suggest.h"

/* Unknown keys after this many problems get no "did you mean". */
#define SUGGEST_ERRORS 100
/* source.retry_max_ms of an rtsp source when the config does not set it. */
#define RTSP_RETRY_MAX_MS 1000

/* Same order as bn_log_level. */
static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};

static const char *const gate_mode_names[] = {"off", "auto", NULL};

/* The enum fields are written through an int pointer. */
_Static_assert(sizeof(source_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(source_format) == sizeof(int), "enum size");
_Static_assert(sizeof(aspect_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(rtsp_transport) == sizeof(int), "enum size");
_Static_assert(sizeof(budget_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(gate_mode) == sizeof(int), "enum size");

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
#define K_BYTES(m, lo, hi) {FIELD(m), .type = KEY_BYTES, .min = (lo), .max = (hi)}

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

    K_SECTION("gate", 0),
    K_ENUM(gate.mode, gate_mode_names, 0),
    K_INT(gate.refresh_ms, 1, 600000),
    K_DOUBLE(gate.cell_sigmas, 1, 50),
    K_DOUBLE(gate.min_area, 0.001, 1),
    K_DOUBLE(gate.min_score, 0, 1),
    K_INT(gate.hold_frames, 0, 300),

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

    K_SECTION("http", 0),
    {FIELD(http.listen), .type = KEY_LISTEN},
    K_BOOL(http.allow_remote),
    K_INT(http.max_clients, 1, 1024),
    K_INT(http.stream_fps, 1, 30),
    K_PATH(http.auth_file, KF_NONEMPTY),

    K_SECTION("events", 0),
    K_PATH(events.dir, KF_NONEMPTY),
    K_INT(events.keep, 1, 1000000),
    K_BYTES(events.max_bytes, 4096, 1099511627776.0),
};
enum { N_KEYS = sizeof keys / sizeof keys[0] };
_Static_assert(N_KEYS <= CONFIG_KEYS_MAX, "config_origin has a slot for every key");
const int config_n_keys = N_KEYS;

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

/* ---- the key table -------------------------------------------------------------------- */

int config_key_index(const char *path)
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
    return config_key_index(parent);
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

/* ---- walking the document ------------------------------------------------------------- */

/* One key of the mapping at prefix ("" at the top level): found in the table, then its
 * value set, or a section walked. Problems are reported here; the verdict is unused. */
static pair_verdict walk_pair(parse_ctx *c, const char *prefix, const yaml_node_t *kn,
                              const yaml_node_t *vn, void *state)
{
    (void)state;
    char got[GOT_MAX];
    if (kn->type != YAML_SCALAR_NODE) {
        config_err_at(c, &kn->start_mark, "keys must be plain names, got %s",
                      config_describe(kn, got, sizeof got));
        return PAIR_OK;
    }
    const char *name = (const char *)kn->data.scalar.value;
    size_t name_len = kn->data.scalar.length;
    char path[128];
    int idx = -1;
    if (name_len < 64 && !memchr(name, '\0', name_len)) {
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name);
        if (!strchr(name, '.'))
            idx = config_key_index(path);
    } else {
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "",
                 config_describe(kn, got, sizeof got));
    }
    if (idx < 0) {
        /* Past a screenful of problems nobody reads suggestions. */
        const char *hint =
            name_len < 64 && c->err.count < SUGGEST_ERRORS ? suggest_key(path, name) : NULL;
        if (strchr(name, '.') && config_key_index(path) >= 0)
            config_err_at(c, &kn->start_mark,
                          "unknown key '%s' (keys do not contain dots: write '%s' nested under "
                          "'%.*s:')",
                          path, leaf_name(path), (int)(leaf_name(path) - path - 1), path);
        else if (hint)
            config_err_at(c, &kn->start_mark, "unknown key '%s' (did you mean '%s'?)", path, hint);
        else
            config_err_at(c, &kn->start_mark, "unknown key '%s'", path);
        return PAIR_OK;
    }
    const key_spec *k = &keys[idx];
    if (c->seen[idx]) {
        config_err_at(c, &kn->start_mark,
                      "duplicate key '%s' (first given at line %zu, column %zu)", path,
                      c->mark[idx].line + 1, c->mark[idx].column + 1);
        return PAIR_OK;
    }
    c->seen[idx] = true;
    c->mark[idx] = kn->start_mark;
    switch (k->type) {
    case KEY_SECTION:
        if (vn->type == YAML_MAPPING_NODE) {
            c->valid[idx] = true;
            config_walk_mapping(c, vn, path);
        } else if (config_node_is_null(vn)) {
            c->valid[idx] = true; /* "mqtt:" alone: the section with every default */
        } else {
            config_err_expected(c, k, path, vn);
        }
        break;
    case KEY_CONTROLS:
        c->valid[idx] = config_set_controls(c, k, path, vn);
        break;
    case KEY_CROP:
        c->valid[idx] = config_set_crop(c, k, path, vn);
        break;
    case KEY_LISTEN:
        c->valid[idx] = config_set_http_listen(c, k, path, vn);
        break;
    case KEY_REFUSED:
        config_err_at(c, &kn->start_mark, "key '%s': %s", path, k->why);
        break;
    default:
        c->valid[idx] = config_set_scalar(c, k, path, vn);
        break;
    }
    return PAIR_OK;
}

void config_walk_mapping(parse_ctx *c, const yaml_node_t *map, const char *prefix)
{
    config_each_pair(c, map, prefix, walk_pair, NULL);
}

static double number_of(parse_ctx *c, int idx)
{
    const key_spec *k = &keys[idx];
    return k->type == KEY_DOUBLE ? *(double *)config_field(c, k) : *(int *)config_field(c, k);
}

/* Checks that need the whole document: required keys, keys that need other keys, and
 * ordered pairs. Runs after the walk so that each is reported once, where it applies. */
void config_check_document(parse_ctx *c, const yaml_node_t *root)
{
    for (int i = 0; i < N_KEYS; i++) {
        if (!(keys[i].flags & KF_REQUIRED) || c->seen[i])
            continue;
        int parent = parent_index(i);
        if (parent >= 0 && !c->valid[parent]) /* absent, or already reported */
            continue;
        const yaml_mark_t *m = parent >= 0 ? &c->mark[parent] : &root->start_mark;
        config_err_at(c, m, "missing required key '%s'", keys[i].path);
    }
    for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
        int w = config_key_index(rules[r].when), n = config_key_index(rules[r].needs);
        if (w < 0 || n < 0 || !c->valid[w] || c->seen[n])
            continue;
        if (rules[r].value >= 0 && *(int *)config_field(c, &keys[w]) != rules[r].value)
            continue;
        if (rules[r].value >= 0)
            config_err_at(c, &c->mark[w], "missing required key '%s' (needed when %s is %s)",
                          rules[r].needs, rules[r].when, keys[w].names[rules[r].value]);
        else
            config_err_at(c, &c->mark[w], "missing required key '%s' (needed when %s is set)",
                          rules[r].needs, rules[r].when);
    }
    for (size_t o = 0; o < sizeof orderings / sizeof orderings[0]; o++) {
        int lo = config_key_index(orderings[o].lo), hi = config_key_index(orderings[o].hi);
        if (lo < 0 || hi < 0 || (c->seen[lo] && !c->valid[lo]) || (c->seen[hi] && !c->valid[hi]))
            continue;
        double a = number_of(c, lo), b = number_of(c, hi);
        if (a <= b)
            continue;
        int at = c->seen[lo] ? lo : hi;
        config_err_at(c, &c->mark[at], "key '%s': %g is greater than %s %g%s", keys[lo].path, a,
                      keys[hi].path, b, c->seen[hi] ? "" : " (its default)");
    }
    /* A test source's frame is exactly source.width x source.height: a crop outside it is
     * known now. Other sources' frames are known once capture negotiated
     * (pipeline/capture_graph.c reports it then). */
    int ci = config_key_index("source.crop"), ki = config_key_index("source.kind");
    int wi = config_key_index("source.width"), hi = config_key_index("source.height");
    const source_config *s = &c->cfg->source;
    char why[256];
    if (c->valid[ci] && c->valid[ki] && s->kind == SOURCE_TEST &&
        !(c->seen[wi] && !c->valid[wi]) && !(c->seen[hi] && !c->valid[hi]) &&
        !source_crop_fits(&s->crop, s->width, s->height, why, sizeof why))
        config_err_at(c, &c->mark[ci], "key 'source.crop': %s (source.width x source.height%s)",
                      why + strlen("source.crop "),
                      c->seen[wi] && c->seen[hi] ? "" : ", defaults included");
    config_check_http(c);
}

/* Defaults that depend on other keys. */
void config_fill_derived(parse_ctx *c)
{
    bn_config *cfg = c->cfg;
    cfg->mqtt.enabled = c->seen[config_key_index("mqtt")];
    cfg->http.enabled = c->seen[config_key_index("http")];
    cfg->events.enabled = c->seen[config_key_index("events")];
    if (!c->seen[config_key_index("mqtt.topic_prefix")])
        snprintf(cfg->mqtt.topic_prefix, sizeof cfg->mqtt.topic_prefix, "basisnet/%s",
                 cfg->camera);
    if (!c->seen[config_key_index("mqtt.client_id")]) {
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
    if (c->valid[config_key_index("source.crop")] && !c->seen[config_key_index("source.aspect")])
        s->aspect = ASPECT_LETTERBOX;
    if (s->kind == SOURCE_RTSP && !c->seen[config_key_index("source.retry_max_ms")])
        s->retry_max_ms = s->retry_initial_ms > RTSP_RETRY_MAX_MS ? s->retry_initial_ms
                                                                   : RTSP_RETRY_MAX_MS;
}

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

    cfg->gate.mode = GATE_MODE_OFF;
    cfg->gate.refresh_ms = GATE_REFRESH_MS_DEFAULT;
    cfg->gate.cell_sigmas = GATE_CELL_SIGMAS_DEFAULT;
    cfg->gate.min_area = GATE_MIN_AREA_DEFAULT;
    cfg->gate.min_score = GATE_MIN_SCORE_DEFAULT;
    cfg->gate.hold_frames = GATE_HOLD_FRAMES_DEFAULT;

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

    config_http_init(&cfg->http);

    events_config *e = &cfg->events;
    snprintf(e->dir, sizeof e->dir, "/var/lib/basisnetd/events");
    e->keep = 200;
    e->max_bytes = 50ll << 20;
}

