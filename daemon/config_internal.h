/* The config parser's shared parts (not a public interface):
 *   config.c        reading the file, the checks before libyaml, the document, messages,
 *                   the public API
 *   config_keys.c   the key table, the walk over the document, checks across keys,
 *                   defaults (config_init and the ones derived from other keys)
 *   config_values.c one key's value: scalars, strings and paths, source.controls and
 *                   source.crop, what a message says was expected and what was written
 *   config_http.c   the http: section's http.listen and its loopback rule */
#ifndef BN_CONFIG_INTERNAL_H
#define BN_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "config.h"

/* Longest value echoed back in a message; the rest is elided. */
#define SHOW_MAX 48
/* A buffer for config_describe. */
#define GOT_MAX (SHOW_MAX * 4 + 16)

typedef enum {
    KEY_SECTION,  /* a mapping of further keys (source:, engine:, ...) */
    KEY_STRING,   /* char[size] */
    KEY_PATH,     /* char[size]; relative values resolve against the config's directory */
    KEY_INT,      /* int in [min, max] */
    KEY_DOUBLE,   /* double in [min, max] */
    KEY_BOOL,     /* bool */
    KEY_ENUM,     /* int-sized enum: index into names */
    KEY_MODE,     /* unsigned file mode written in octal (0660) */
    KEY_BYTES,    /* long long in [min, max]: an integer with an optional K, M or G (1024s) */
    KEY_CONTROLS, /* mapping of V4L2 control name -> integer (source.controls) */
    KEY_CROP,     /* mapping {x, y, width, height} of integers (source.crop) */
    KEY_LISTEN,   /* http.listen: ADDRESS:PORT or a Unix socket path (config_http.c) */
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
    double min, max;           /* KEY_INT, KEY_DOUBLE, KEY_MODE, KEY_BYTES */
    const char *const *names;  /* KEY_ENUM (and KEY_BOOL: unused), NULL-terminated */
    unsigned flags;
    size_t max_len;            /* KEY_STRING: longest accepted value if below size - 1 */
    const char *why;           /* KEY_REFUSED: the message */
} key_spec;

typedef struct {
    char *buf;     /* caller's buffer, may be NULL */
    size_t cap;
    size_t len;
    int count;     /* problems found, including any that did not fit */
} err_sink;

/* Indexed like config_keys (config_n_keys <= CONFIG_KEYS_MAX entries in use). */
typedef struct {
    const char *name;                  /* FILE in messages */
    char base_dir[BN_PATH_MAX];        /* absolute directory of the config; "" if unknown */
    bn_config *cfg;
    yaml_document_t *doc;
    err_sink err;
    bool seen[CONFIG_KEYS_MAX];        /* key present (even with a bad value) */
    bool valid[CONFIG_KEYS_MAX];       /* key present and its value accepted */
    yaml_mark_t mark[CONFIG_KEYS_MAX]; /* where the key was written */
    yaml_mark_t control_mark[BN_MAX_CONTROLS];
} parse_ctx;

/* The field of cfg a key fills. */
static inline void *config_field(parse_ctx *c, const key_spec *k)
{
    return (char *)c->cfg + k->offset;
}

/* config.c: one problem, as FILE:LINE:COLUMN: message (FILE: message without a mark). */
__attribute__((format(printf, 3, 4))) void config_err_at(parse_ctx *c, const yaml_mark_t *m,
                                                         const char *fmt, ...);

/* config_keys.c */
extern const int config_n_keys;
int config_key_index(const char *path);          /* -1 when no key has that path */
void config_walk_mapping(parse_ctx *c, const yaml_node_t *map, const char *prefix);
void config_check_document(parse_ctx *c, const yaml_node_t *root);
void config_fill_derived(parse_ctx *c);

/* config_values.c */
bool config_node_is_null(const yaml_node_t *n);
/* What the user wrote, for "got ..." in messages (out: GOT_MAX bytes). */
const char *config_describe(const yaml_node_t *n, char *out, size_t outlen);
void config_err_expected(parse_ctx *c, const key_spec *k, const char *path,
                         const yaml_node_t *v);
/* Each setter fills the key's field and returns whether the value was accepted. */
bool config_set_scalar(parse_ctx *c, const key_spec *k, const char *path, const yaml_node_t *v);
bool config_set_controls(parse_ctx *c, const key_spec *k, const char *path,
                         const yaml_node_t *v);
bool config_set_crop(parse_ctx *c, const key_spec *k, const char *path, const yaml_node_t *v);

/* What a config_pair_fn says of one key/value pair. */
typedef enum { PAIR_OK, PAIR_BAD, PAIR_STOP } pair_verdict;
typedef pair_verdict (*config_pair_fn)(parse_ctx *c, const char *path, const yaml_node_t *kn,
                                       const yaml_node_t *vn, void *state);
/* Hands every key/value pair of the mapping map (written at path) to fn, in order, until fn
 * says PAIR_STOP. Returns false when fn said PAIR_BAD or PAIR_STOP for any pair. */
bool config_each_pair(parse_ctx *c, const yaml_node_t *map, const char *path, config_pair_fn fn,
                      void *state);

/* config_http.c */
bool config_set_http_listen(parse_ctx *c, const key_spec *k, const char *path,
                            const yaml_node_t *v);
/* A non-loopback http.listen without http.allow_remote (from config_check_document). */
void config_check_http(parse_ctx *c);

#endif
