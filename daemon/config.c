/* basisnetd configuration: loads a YAML file with libyaml's document API and fills a
 * bn_config from one static table of keys. Every problem is reported (not only the first),
 * one per line, as FILE:LINE:COLUMN: message; docs/config.md documents every key. This
 * file reads the file and the document; the keys and their values are config_keys.c's and
 * config_values.c's (config_internal.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "bn_log.h"
#include "config_internal.h"

/* A config is a few KiB; anything this large is a mistake (a video file passed by
 * accident). The bound also caps libyaml's quadratic anchor bookkeeping: a file of
 * nothing but anchors this size is rejected in about a second. */
#define CONFIG_MAX_BYTES (256 * 1024)
/* Deepest [ / { nesting accepted (see flow_too_deep_at). */
#define FLOW_DEPTH_MAX 64

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

void config_err_at(parse_ctx *c, const yaml_mark_t *m, const char *fmt, ...)
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
        config_err_at(c, NULL, "out of memory while parsing");
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
        config_err_at(c, &m, "not valid YAML: %s (%s at line %zu, column %zu)%s", problem,
                      p->context, p->context_mark.line + 1, p->context_mark.column + 1, hint);
    else
        config_err_at(c, &m, "not valid YAML: %s%s", problem, hint);
}

static void parse_document(parse_ctx *c, const char *data, size_t len)
{
    size_t bad = utf8_invalid_at((const unsigned char *)data, len);
    if (bad < len) {
        yaml_mark_t m = mark_of_offset(data, len, bad);
        config_err_at(c, &m, "not valid UTF-8 (byte 0x%02x); the config must be UTF-8 text",
                      (unsigned char)data[bad]);
        return;
    }
    size_t deep = flow_too_deep_at(data, len);
    if (deep < len) {
        yaml_mark_t m = mark_of_offset(data, len, deep);
        config_err_at(c, &m,
                      "brackets nested more than %d deep; a config needs three levels at most",
                      FLOW_DEPTH_MAX);
        return;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        config_err_at(c, NULL, "out of memory while parsing");
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
    char got[GOT_MAX];
    if (!root || config_node_is_null(root))
        config_err_at(c, root ? &root->start_mark : &start,
                      "the file is empty; a config needs at least the keys 'model' and 'source'");
    else if (root->type != YAML_MAPPING_NODE)
        config_err_at(c, &root->start_mark, "expected a mapping of keys at the top level, got %s",
                      config_describe(root, got, sizeof got));
    else {
        config_walk_mapping(c, root, "");
        config_check_document(c, root);
        config_fill_derived(c);
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
                config_err_at(c, &r2->start_mark,
                              "a second YAML document; a config file holds exactly one");
            yaml_document_delete(&next);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

/* ---- public API ------------------------------------------------------------------------ */

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
    for (int i = 0; i < config_n_keys; i++)
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
    int i = config_key_index(key);
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
