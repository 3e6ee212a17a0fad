/* One config key's value: scalars (integers, numbers, booleans, enums, file modes),
 * strings and paths, and the two keys that are mappings of their own (source.controls,
 * source.crop). Also what a message says was expected and what was written. */
#include "config_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtsp.h"

bool config_node_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return len == 0 || (len == 1 && v[0] == '~') ||
           (len == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

/* A quoted, escaped, shortened scalar or the kind of node. */
const char *config_describe(const yaml_node_t *n, char *out, size_t outlen)
{
    if (!n)
        return "nothing";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (config_node_is_null(n))
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

/* ---- values --------------------------------------------------------------------------- */

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
    case KEY_BYTES:
        snprintf(out, outlen,
                 "expected a size in bytes from %.0fK to %.0fG, with an optional K, M or G "
                 "(1024, 1024^2, 1024^3) such as 50M",
                 k->min / 1024, k->max / (1024.0 * 1024 * 1024));
        return out;
    case KEY_CONTROLS:
        return "expected a mapping of control names to integers";
    case KEY_CROP:
        return "expected a mapping {x: X, y: Y, width: W, height: H} of integers in source "
               "pixels";
    case KEY_LISTEN:
        return HTTP_LISTEN_EXPECTED;
    case KEY_REFUSED:
        break;
    }
    return "expected something else";
}

void config_err_expected(parse_ctx *c, const key_spec *k, const char *path,
                         const yaml_node_t *v)
{
    char exp[160], got[GOT_MAX];
    config_err_at(c, &v->start_mark, "key '%s': %s, got %s", path, expectation(k, exp, sizeof exp),
                  config_describe(v, got, sizeof got));
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

/* 52428800, 51200K, 50M, 1G: digits and at most one suffix, each a factor of 1024. */
static bool parse_bytes(const char *s, long long *out)
{
    char digits[32];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof digits)
        return false;
    long long mult = 1;
    switch (s[n - 1]) {
    case 'K': case 'k': mult = 1ll << 10; n--; break;
    case 'M': case 'm': mult = 1ll << 20; n--; break;
    case 'G': case 'g': mult = 1ll << 30; n--; break;
    default: break;
    }
    memcpy(digits, s, n);
    digits[n] = '\0';
    long long v;
    if (n == 0 || digits[0] < '0' || digits[0] > '9' || !parse_ll(digits, &v) ||
        v > (1ll << 50) / mult)
        return false;
    *out = v * mult;
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
        config_err_expected(c, k, path, v);
        return false;
    }
    const char *s = config_node_is_null(v) ? "" : (const char *)v->data.scalar.value;
    size_t len = config_node_is_null(v) ? 0 : v->data.scalar.length;
    if (len == 0 && (k->flags & KF_NONEMPTY)) {
        config_err_at(c, &v->start_mark, "key '%s': expected a non-empty %s, got %s", path,
                      k->type == KEY_PATH ? "file path" : "string",
                      len == 0 && !config_node_is_null(v) ? "\"\"" : "an empty value");
        return false;
    }
    if (memchr(s, '\0', len)) {
        config_err_at(c, &v->start_mark, "key '%s': the value contains a NUL character", path);
        return false;
    }
    size_t max_len = k->max_len ? k->max_len : k->size - 1;
    if (len > max_len) {
        config_err_at(c, &v->start_mark,
                      "key '%s': expected a string of at most %zu bytes, got %zu bytes", path,
                      max_len, len);
        return false;
    }
    if (((k->flags & KF_NAME) && !is_name(s, len)) ||
        ((k->flags & KF_TOPIC) && !is_topic(s, len))) {
        config_err_expected(c, k, path, v);
        return false;
    }
    if (k->flags & KF_RTSP_URL) {
        char why[BN_PATH_MAX + 200];
        char url[BN_PATH_MAX];
        memcpy(url, s, len);
        url[len] = '\0';
        if (rtsp_url_check(url, why, sizeof why) != BN_OK) {
            config_err_at(c, &v->start_mark, "key '%s': %s", path, why);
            return false;
        }
    }
    char *dst = config_field(c, k);
    if (k->type == KEY_PATH) {
        char tmp[BN_PATH_MAX];
        size_t need = resolve_path(c, s, tmp, sizeof tmp);
        if (need > max_len) {
            config_err_at(c, &v->start_mark,
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

bool config_set_scalar(parse_ctx *c, const key_spec *k, const char *path, const yaml_node_t *v)
{
    if (k->type == KEY_STRING || k->type == KEY_PATH)
        return set_string(c, k, path, v);
    if (v->type != YAML_SCALAR_NODE || config_node_is_null(v) ||
        memchr(v->data.scalar.value, '\0', v->data.scalar.length)) {
        config_err_expected(c, k, path, v);
        return false;
    }
    const char *s = (const char *)v->data.scalar.value;
    switch (k->type) {
    case KEY_INT: {
        long long x;
        if (!parse_ll(s, &x) || x < (long long)k->min || x > (long long)k->max)
            break;
        *(int *)config_field(c, k) = (int)x;
        return true;
    }
    case KEY_DOUBLE: {
        double x;
        if (!parse_double(s, &x) || x < k->min || x > k->max)
            break;
        *(double *)config_field(c, k) = x;
        return true;
    }
    case KEY_BOOL: {
        bool x;
        if (!parse_bool(s, &x))
            break;
        *(bool *)config_field(c, k) = x;
        return true;
    }
    case KEY_ENUM:
        for (int i = 0; k->names[i]; i++) {
            if (strcmp(s, k->names[i]) == 0) {
                *(int *)config_field(c, k) = i;
                return true;
            }
        }
        break;
    case KEY_MODE: {
        unsigned long x;
        if (!parse_mode(s, &x) || x < (unsigned long)k->min || x > (unsigned long)k->max)
            break;
        *(unsigned *)config_field(c, k) = (unsigned)x;
        return true;
    }
    case KEY_BYTES: {
        long long x;
        if (!parse_bytes(s, &x) || x < (long long)k->min || x > (long long)k->max)
            break;
        *(long long *)config_field(c, k) = x;
        return true;
    }
    default:
        break;
    }
    config_err_expected(c, k, path, v);
    return false;
}

bool config_each_pair(parse_ctx *c, const yaml_node_t *map, const char *path, config_pair_fn fn,
                      void *state)
{
    bool ok = true;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
        if (!kn || !vn)
            continue;
        pair_verdict v = fn(c, path, kn, vn, state);
        if (v != PAIR_OK)
            ok = false;
        if (v == PAIR_STOP)
            break;
    }
    return ok;
}

/* An integer scalar, as the sub-keys of source.controls and source.crop take. */
static bool scalar_ll(const yaml_node_t *vn, long long *out)
{
    return vn->type == YAML_SCALAR_NODE && !config_node_is_null(vn) &&
           !memchr(vn->data.scalar.value, '\0', vn->data.scalar.length) &&
           parse_ll((const char *)vn->data.scalar.value, out);
}

/* One "name: value" of source.controls. */
static pair_verdict control_pair(parse_ctx *c, const char *path, const yaml_node_t *kn,
                                 const yaml_node_t *vn, void *state)
{
    (void)state;
    source_config *src = &c->cfg->source;
    char got[GOT_MAX];
    if (kn->type != YAML_SCALAR_NODE ||
        !is_control_name((const char *)kn->data.scalar.value, kn->data.scalar.length)) {
        config_err_at(c, &kn->start_mark,
                      "key '%s': expected a control name of lower-case letters, digits and '_' "
                      "(as `basisnet probe` lists them), got %s",
                      path, config_describe(kn, got, sizeof got));
        return PAIR_BAD;
    }
    const char *name = (const char *)kn->data.scalar.value;
    if (kn->data.scalar.length >= BN_NAME_MAX) {
        config_err_at(c, &kn->start_mark,
                      "key '%s': expected a control name of at most %d bytes, got %zu bytes",
                      path, BN_NAME_MAX - 1, kn->data.scalar.length);
        return PAIR_BAD;
    }
    int dup = -1;
    for (int i = 0; i < src->n_controls; i++)
        if (strcmp(src->controls[i].name, name) == 0)
            dup = i;
    if (dup >= 0) {
        config_err_at(c, &kn->start_mark,
                      "duplicate key '%s.%s' (first given at line %zu, column %zu)", path, name,
                      c->control_mark[dup].line + 1, c->control_mark[dup].column + 1);
        return PAIR_BAD;
    }
    long long x;
    if (!scalar_ll(vn, &x)) {
        config_err_at(c, &vn->start_mark, "key '%s.%s': expected an integer, got %s", path, name,
                      config_describe(vn, got, sizeof got));
        return PAIR_BAD;
    }
    if (src->n_controls == BN_MAX_CONTROLS) {
        config_err_at(c, &kn->start_mark, "key '%s': expected at most %d controls, got more",
                      path, BN_MAX_CONTROLS);
        return PAIR_STOP;
    }
    source_control *ctl = &src->controls[src->n_controls];
    c->control_mark[src->n_controls] = kn->start_mark;
    src->n_controls++;
    memcpy(ctl->name, name, kn->data.scalar.length + 1);
    ctl->value = x;
    return PAIR_OK;
}

bool config_set_controls(parse_ctx *c, const key_spec *k, const char *path, const yaml_node_t *v)
{
    c->cfg->source.n_controls = 0;
    if (config_node_is_null(v))
        return true;
    if (v->type != YAML_MAPPING_NODE) {
        config_err_expected(c, k, path, v);
        return false;
    }
    return config_each_pair(c, v, path, control_pair, NULL);
}

static const char *const crop_parts[] = {"x", "y", "width", "height"};

/* What the pairs of source.crop have given so far. */
typedef struct {
    long long val[4];
    bool have[4];
    yaml_mark_t at[4];
} crop_state;

/* One "x: X" (or y, width, height) of source.crop. */
static pair_verdict crop_pair(parse_ctx *c, const char *path, const yaml_node_t *kn,
                              const yaml_node_t *vn, void *state)
{
    crop_state *st = state;
    char got[GOT_MAX];
    int i = -1;
    if (kn->type == YAML_SCALAR_NODE)
        for (int j = 0; j < 4; j++)
            if (strlen(crop_parts[j]) == kn->data.scalar.length &&
                !memcmp(crop_parts[j], kn->data.scalar.value, kn->data.scalar.length))
                i = j;
    if (i < 0) {
        config_err_at(c, &kn->start_mark,
                      "unknown key %s in '%s' (expected x, y, width and height)",
                      config_describe(kn, got, sizeof got), path);
        return PAIR_BAD;
    }
    if (st->have[i]) {
        config_err_at(c, &kn->start_mark,
                      "duplicate key '%s.%s' (first given at line %zu, column %zu)", path,
                      crop_parts[i], st->at[i].line + 1, st->at[i].column + 1);
        return PAIR_BAD;
    }
    st->have[i] = true;
    st->at[i] = kn->start_mark;
    long long lo = i < 2 ? 0 : 1;
    if (!scalar_ll(vn, &st->val[i]) || st->val[i] < lo || st->val[i] > SOURCE_CROP_MAX) {
        config_err_at(c, &vn->start_mark,
                      "key '%s.%s': expected an integer from %lld to %d%s, got %s", path,
                      crop_parts[i], lo, SOURCE_CROP_MAX,
                      i < 2 ? " (pixels from the frame's left or top edge)"
                            : " (a crop needs a positive size)",
                      config_describe(vn, got, sizeof got));
        return PAIR_BAD;
    }
    return PAIR_OK;
}

/* source.crop: {x: X, y: Y, width: W, height: H}, all four required. Every problem is
 * reported where it was written (the sub-key or its value). */
bool config_set_crop(parse_ctx *c, const key_spec *k, const char *path, const yaml_node_t *v)
{
    source_crop *crop = &c->cfg->source.crop;
    *crop = (source_crop){0};
    if (v->type != YAML_MAPPING_NODE) {
        config_err_expected(c, k, path, v);
        return false;
    }
    crop_state st = {.have = {false}};
    bool ok = config_each_pair(c, v, path, crop_pair, &st);
    for (int i = 0; i < 4 && ok; i++)
        if (!st.have[i]) {
            config_err_at(c, &v->start_mark,
                          "key '%s': missing '%s' (a crop is {x: X, y: Y, width: W, height: H})",
                          path, crop_parts[i]);
            ok = false;
        }
    if (!ok)
        return false;
    *crop = (source_crop){(int)st.val[0], (int)st.val[1], (int)st.val[2], (int)st.val[3]};
    return true;
}
