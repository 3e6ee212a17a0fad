/* Protocol v1: JSON-lines encoding of daemon messages and strict parsing of client
 * commands (table of commands, table of keys per command; unknown keys are errors so that
 * a typo in a control command never passes silently). */
#include "protocol.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>

#include "basisnet.h"
#include "budget.h"

typedef struct {
    const char *name;
    bool needs_control;
} cmd_desc;

static const cmd_desc cmd_table[PROTO_CMD_COUNT] = {
    [PROTO_CMD_PING] = {"ping", false},
    [PROTO_CMD_STATS] = {"stats", false},
    [PROTO_CMD_SUBSCRIBE] = {"subscribe", false},
    [PROTO_CMD_SET] = {"set", true},
    [PROTO_CMD_RELOAD] = {"reload", true},
};

const char *proto_cmd_name(proto_cmd_kind kind)
{
    return (unsigned)kind < PROTO_CMD_COUNT ? cmd_table[kind].name : "unknown";
}

bool proto_cmd_needs_control(proto_cmd_kind kind)
{
    return (unsigned)kind < PROTO_CMD_COUNT && cmd_table[kind].needs_control;
}

double proto_round(double v, int decimals)
{
    if (!isfinite(v))
        return 0.0;
    double p = 1.0;
    for (int i = 0; i < decimals; i++)
        p *= 10.0;
    return round(v * p) / p;
}

void proto_format_time(int64_t realtime_ns, char *buf, size_t len)
{
    time_t s = (time_t)(realtime_ns / 1000000000);
    int ms = (int)((realtime_ns % 1000000000) / 1000000);
    if (ms < 0) {   /* before 1970: keep the fields in range */
        ms += 1000;
        s -= 1;
    }
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

static json_t *time_json(int64_t ns)
{
    char buf[40];
    proto_format_time(ns, buf, sizeof buf);
    return json_string(buf);
}

static const char *stage_name(int stage)
{
    return stage == BN_STAGE_SPECIALIST ? "specialist"
           : stage == PROTO_STAGE_REUSE ? "reuse"
                                        : "light";
}

json_t *proto_label_json(const proto_label *m)
{
    json_t *lat = json_pack("{s:f, s:f, s:f, s:f, s:f}",
                            "light", proto_round(m->ms_light, 3),
                            "synth", proto_round(m->ms_synth, 3),
                            "specialist", proto_round(m->ms_specialist, 3),
                            "total", proto_round(m->ms_total, 3),
                            "capture_to_publish", proto_round(m->ms_capture_to_publish, 3));
    if (!lat)
        return NULL;
    if (m->gated)
        json_object_set_new(lat, "gate", json_real(proto_round(m->ms_gate, 3)));
    json_t *o = json_pack("{s:s, s:I, s:I, s:o, s:s, s:i, s:f, s:s}",
                          "type", "label",
                          "seq", (json_int_t)m->seq,
                          "pts_ns", (json_int_t)m->pts_ns,
                          "time", time_json(m->time_ns),
                          "label", m->label ? m->label : "",
                          "class", m->class_id,
                          "score", proto_round(m->score, 4),
                          "stage", stage_name(m->stage));
    if (!o) {
        json_decref(lat);
        return NULL;
    }
    if (m->reason)
        json_object_set_new(o, "reason", json_string(m->reason));
    if (m->stage == PROTO_STAGE_REUSE)
        json_object_set_new(o, "age_ms", json_real(proto_round(m->ms_age, 3)));
    if (m->gated && m->gate)
        json_object_set_new(o, "gate", json_string(m->gate));
    json_object_set_new(o, "threshold", json_real(proto_round(m->threshold, 4)));
    json_object_set_new(o, "latency_ms", lat);
    if (m->synth_reuse_on && m->stage == BN_STAGE_SPECIALIST)
        json_object_set_new(o, "synth_reused", json_integer(m->synth_reused));
    json_object_set_new(o, "dropped_frames", json_integer((json_int_t)m->dropped_frames));
    return o;
}

json_t *proto_change_json(uint64_t seq, uint64_t pts_ns, int64_t time_ns, const char *label,
                          int class_id, double score, const char *previous, int held_frames)
{
    return json_pack("{s:s, s:I, s:I, s:o, s:s, s:i, s:f, s:o, s:i}",
                     "type", "change",
                     "seq", (json_int_t)seq,
                     "pts_ns", (json_int_t)pts_ns,
                     "time", time_json(time_ns),
                     "label", label ? label : "",
                     "class", class_id,
                     "score", proto_round(score, 4),
                     "previous", previous ? json_string(previous) : json_null(),
                     "frames", held_frames);
}

/* Free text for a message (an error that quotes the bad input — jansson's "near '...'" cuts
 * it mid-character —, a GStreamer error naming a file): a JSON string even when the text is
 * not valid UTF-8 (each invalid byte becomes U+FFFD), so the message is still sent. */
static json_t *text_json(const char *text)
{
    if (!text)
        return json_string("");
    if (g_utf8_validate(text, -1, NULL))
        return json_string(text);
    char *valid = g_utf8_make_valid(text, -1);
    json_t *v = json_string(valid);
    g_free(valid);
    return v;
}

json_t *proto_source_json(int64_t time_ns, const char *state, const char *message)
{
    return json_pack("{s:s, s:o, s:s, s:o}", "type", "source", "time", time_json(time_ns),
                     "state", state ? state : "", "message", text_json(message));
}

/* The id is kept as serialized JSON (string or integer) and decoded back for the reply. */
static void add_id(json_t *o, const char *id)
{
    if (!id || !*id)
        return;
    json_t *v = json_loads(id, JSON_DECODE_ANY, NULL);
    if (v)
        json_object_set_new(o, "id", v);
}

json_t *proto_reply_json(const char *cmd, const char *id)
{
    json_t *o = json_pack("{s:s, s:s, s:b}", "type", "reply", "cmd", cmd ? cmd : "", "ok", 1);
    if (o)
        add_id(o, id);
    return o;
}

json_t *proto_error_json(const char *cmd, const char *id, const char *msg)
{
    json_t *o = json_pack("{s:s, s:o}", "type", "error", "error", text_json(msg ? msg : "error"));
    if (!o)
        return NULL;
    if (cmd && *cmd)
        json_object_set_new(o, "cmd", json_string(cmd));
    add_id(o, id);
    return o;
}

char *proto_dump_line(const json_t *msg, size_t *len)
{
    char *s = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(12));
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return NULL;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    if (len)
        *len = n + 1;
    return line;
}

/* ---- filters ------------------------------------------------------------------------ */

void proto_filter_init(proto_filter *f)
{
    memset(f, 0, sizeof *f);
    f->all_labels = true;
}

static bool label_listed(const proto_filter *f, const char *label)
{
    if (f->all_labels)
        return true;
    for (int i = 0; i < f->n_labels; i++)
        if (strcmp(f->labels[i], label ? label : "") == 0)
            return true;
    return false;
}

bool proto_filter_pass_label(const proto_filter *f, const char *label, double score)
{
    return !f->changes_only && score >= f->min_score && label_listed(f, label);
}

bool proto_filter_pass_change(const proto_filter *f, const char *label)
{
    return label_listed(f, label);
}

/* ---- command parsing ------------------------------------------------------------------ */

typedef bn_status (*key_fn)(json_t *v, proto_command *cmd, char *err, size_t errlen);

typedef struct {
    proto_cmd_kind kind;
    const char *key;
    key_fn parse;
} key_desc;

static bn_status want_number(json_t *v, const char *key, double lo, double hi, double *out,
                             char *err, size_t errlen)
{
    if (!json_is_number(v)) {
        snprintf(err, errlen, "'%s' must be a number", key);
        return BN_ERR_INVALID_ARG;
    }
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) {
        snprintf(err, errlen, "'%s' must be from %g to %g, got %g", key, lo, hi, d);
        return BN_ERR_INVALID_ARG;
    }
    *out = d;
    return BN_OK;
}

static bn_status key_labels(json_t *v, proto_command *cmd, char *err, size_t errlen)
{
    proto_filter *f = &cmd->filter;
    if (json_is_null(v)) {
        f->all_labels = true;
        return BN_OK;
    }
    if (!json_is_array(v)) {
        snprintf(err, errlen, "'labels' must be an array of label names");
        return BN_ERR_INVALID_ARG;
    }
    if (json_array_size(v) > PROTO_MAX_FILTER_LABELS) {
        snprintf(err, errlen, "'labels' has %zu entries, at most %d allowed", json_array_size(v),
                 PROTO_MAX_FILTER_LABELS);
        return BN_ERR_INVALID_ARG;
    }
    f->all_labels = false;
    f->n_labels = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e) || json_string_length(e) >= PROTO_LABEL_MAX ||
            strlen(json_string_value(e)) != json_string_length(e)) {
            snprintf(err, errlen, "'labels[%zu]' must be a label name shorter than %d bytes", i,
                     PROTO_LABEL_MAX);
            return BN_ERR_INVALID_ARG;
        }
        memcpy(f->labels[f->n_labels++], json_string_value(e), json_string_length(e) + 1);
    }
    return BN_OK;
}

static bn_status key_min_score(json_t *v, proto_command *cmd, char *err, size_t errlen)
{
    return want_number(v, "min_score", 0.0, 1.0, &cmd->filter.min_score, err, errlen);
}

static bn_status key_changes(json_t *v, proto_command *cmd, char *err, size_t errlen)
{
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "'changes' must be true or false");
        return BN_ERR_INVALID_ARG;
    }
    cmd->filter.changes_only = json_is_true(v);
    return BN_OK;
}

static bn_status key_budget_ms(json_t *v, proto_command *cmd, char *err, size_t errlen)
{
    cmd->set.has_budget_ms = true;
    return want_number(v, "budget_ms", BUDGET_LATENCY_MS_MIN, BUDGET_LATENCY_MS_MAX, &cmd->set.budget_ms, err, errlen);
}

static bn_status key_threshold(json_t *v, proto_command *cmd, char *err, size_t errlen)
{
    cmd->set.has_threshold = true;
    return want_number(v, "threshold", 0.0, 1.0, &cmd->set.threshold, err, errlen);
}

static bn_status key_threshold_min(json_t *v, proto_command *cmd, char *err, size_t errlen)
{
    cmd->set.has_threshold_min = true;
    return want_number(v, "threshold_min", 0.0, 1.0, &cmd->set.threshold_min, err, errlen);
}

static bn_status key_threshold_max(json_t *v, proto_command *cmd, char *err, size_t errlen)
{
    cmd->set.has_threshold_max = true;
    return want_number(v, "threshold_max", 0.0, 1.0, &cmd->set.threshold_max, err, errlen);
}

static const key_desc key_table[] = {
    {PROTO_CMD_SUBSCRIBE, "labels", key_labels},
    {PROTO_CMD_SUBSCRIBE, "min_score", key_min_score},
    {PROTO_CMD_SUBSCRIBE, "changes", key_changes},
    {PROTO_CMD_SET, "budget_ms", key_budget_ms},
    {PROTO_CMD_SET, "threshold", key_threshold},
    {PROTO_CMD_SET, "threshold_min", key_threshold_min},
    {PROTO_CMD_SET, "threshold_max", key_threshold_max},
};

static const key_desc *find_key(proto_cmd_kind kind, const char *key)
{
    for (size_t i = 0; i < sizeof key_table / sizeof key_table[0]; i++)
        if (key_table[i].kind == kind && strcmp(key_table[i].key, key) == 0)
            return &key_table[i];
    return NULL;
}

static bn_status parse_id(json_t *v, proto_command *cmd, char *err, size_t errlen)
{
    if (!json_is_string(v) && !json_is_integer(v)) {
        snprintf(err, errlen, "'id' must be a string or an integer");
        return BN_ERR_INVALID_ARG;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    bn_status st = BN_OK;
    if (strlen(s) >= sizeof cmd->id) {
        snprintf(err, errlen, "'id' is longer than %d bytes", PROTO_ID_MAX - 1);
        st = BN_ERR_INVALID_ARG;
    } else {
        strcpy(cmd->id, s);
    }
    free(s);
    return st;
}

static bn_status parse_object(json_t *root, proto_command *cmd, char *err, size_t errlen)
{
    if (!json_is_object(root)) {
        snprintf(err, errlen, "a command must be a JSON object");
        return BN_ERR_FORMAT;
    }
    json_t *id = json_object_get(root, "id");
    if (id) {
        bn_status st = parse_id(id, cmd, err, errlen);
        if (st != BN_OK)
            return st;
    }
    json_t *name = json_object_get(root, "cmd");
    if (!name) {
        snprintf(err, errlen, "missing \"cmd\"");
        return BN_ERR_INVALID_ARG;
    }
    if (!json_is_string(name)) {
        snprintf(err, errlen, "\"cmd\" must be a string");
        return BN_ERR_INVALID_ARG;
    }
    const char *n = json_string_value(name);
    if (strlen(n) < sizeof cmd->name)   /* a longer one is not echoed: no cut UTF-8 */
        strcpy(cmd->name, n);
    cmd->kind = PROTO_CMD_COUNT;
    for (int k = 0; k < PROTO_CMD_COUNT; k++)
        if (strcmp(cmd_table[k].name, n) == 0)
            cmd->kind = (proto_cmd_kind)k;
    if (cmd->kind == PROTO_CMD_COUNT) {
        snprintf(err, errlen, "unknown command '%.64s' (known: ping, stats, subscribe, set, reload)",
                 n);
        return BN_ERR_INVALID_ARG;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "cmd") == 0 || strcmp(key, "id") == 0)
            continue;
        const key_desc *kd = find_key(cmd->kind, key);
        if (!kd) {
            snprintf(err, errlen, "unknown key '%.64s' for command '%s'", key, n);
            return BN_ERR_INVALID_ARG;
        }
        bn_status st = kd->parse(v, cmd, err, errlen);
        if (st != BN_OK)
            return st;
    }
    if (cmd->kind == PROTO_CMD_SET) {
        const proto_set *s = &cmd->set;
        if (!s->has_budget_ms && !s->has_threshold && !s->has_threshold_min &&
            !s->has_threshold_max) {
            snprintf(err, errlen,
                     "set needs one of budget_ms, threshold, threshold_min, threshold_max");
            return BN_ERR_INVALID_ARG;
        }
        if (s->has_threshold_min && s->has_threshold_max && s->threshold_min > s->threshold_max) {
            snprintf(err, errlen, "threshold_min %g is above threshold_max %g", s->threshold_min,
                     s->threshold_max);
            return BN_ERR_INVALID_ARG;
        }
    }
    return BN_OK;
}

bn_status proto_parse_command(const char *line, size_t len, proto_command *cmd, char *err,
                              size_t errlen)
{
    memset(cmd, 0, sizeof *cmd);
    cmd->kind = PROTO_CMD_COUNT;
    proto_filter_init(&cmd->filter);
    if (err && errlen)
        err[0] = '\0';
    char dummy[8];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    json_error_t jerr;
    json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, errlen, "malformed JSON at column %d: %s", jerr.column, jerr.text);
        return BN_ERR_FORMAT;
    }
    bn_status st = parse_object(root, cmd, err, errlen);
    json_decref(root);
    return st;
}
