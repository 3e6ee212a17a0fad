/* basisnetd configuration: what the user asked for, parsed from YAML (libyaml) by a
 * table of keys (daemon/config_keys.c). Every key is documented in docs/config.md.
 * The struct holds only plain values: it can be copied, compared and swapped on reload. */
#ifndef BN_CONFIG_H
#define BN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "bn_error.h"
#include "budget.h"
#include "config_http.h"
#include "source_config.h"

typedef struct {
    int threads;        /* engine threads (1 recommended on 2 cores) */
    double threshold;   /* fixed early-exit threshold when budget.mode is off */
    double synth_reuse; /* 0 = off; relative weight change under which synthesis is skipped */
} engine_config;

typedef struct {
    budget_mode mode;   /* one enum with the controller (engine/budget.h) */
    double latency_ms;  /* budget per frame */
    double min, max;    /* threshold bounds */
    int window;         /* frames of light confidences kept */
    int horizon;        /* mean mode: frames over which no window may overspend; 0: off */
} budget_config;

typedef enum { GATE_MODE_OFF = 0, GATE_MODE_AUTO } gate_mode;

typedef struct {
    gate_mode mode;                 /* auto: reuse the last answer while the scene is unchanged */
    int refresh_ms;                 /* classify anyway once the last answer is this old */
    double cell_sigmas;             /* a cell changed: difference > this x the noise sigma */
    double min_area;                /* share of changed cells that makes a frame classified */
    double min_score;               /* an answer scored below this is not reused by a closed gate */
    int hold_frames;                /* frames held between classified ones while it changes */
} gate_config;

typedef struct {
    char socket[BN_PATH_MAX];       /* Unix socket path */
    unsigned mode;                  /* file mode of the socket (octal in YAML, e.g. 0660) */
    char group[BN_NAME_MAX];        /* group owning the socket ("" = process group) */
    char control_group[BN_NAME_MAX];/* peers in this group may change state ("" = root only) */
    int max_clients;
    int queue;                      /* messages buffered per client before dropping oldest */
    int max_line;                   /* longest command line accepted, bytes */
    int change_frames;              /* frames a label must hold before a change event */
} publish_config;

typedef struct {
    bool enabled;                   /* true when the YAML has an mqtt: section */
    char host[256];
    int port;
    char client_id[BN_NAME_MAX];
    char topic_prefix[256];         /* default "basisnet/<camera>" */
    int qos;                        /* 0 or 1 */
    bool retain;                    /* retain last change and source messages */
    int keepalive;                  /* seconds */
    char ca_file[BN_PATH_MAX], cert_file[BN_PATH_MAX], key_file[BN_PATH_MAX];
    char username[BN_NAME_MAX];
    char password_file[BN_PATH_MAX];
    int queue;                      /* messages kept while the broker is unreachable */
    bool publish_labels;            /* every label message, or only change/source/stats */
} mqtt_config;

/* The events: section (docs/http.md#event-snapshots): a JPEG and a JSON sidecar per change
 * event, kept to events.keep files and events.max_bytes bytes. */
typedef struct {
    bool enabled;                   /* true when the YAML has an events: section */
    char dir[BN_PATH_MAX];          /* default /var/lib/basisnetd/events (StateDirectory=) */
    int keep;                       /* events kept (each a .jpg and a .json) */
    long long max_bytes;            /* bytes of both files of every event kept */
} events_config;

/* Where each key was written, so that checks after parsing (files, pipelines, the model)
 * report FILE:LINE:COLUMN like the parser does (config_where). Indexed by the key table. */
#define CONFIG_KEYS_MAX 128
typedef struct {
    char file[BN_PATH_MAX];         /* the config's name as given ("" for config_init only) */
    unsigned line[CONFIG_KEYS_MAX]; /* 1-based; 0 = not written (the default applies) */
    unsigned column[CONFIG_KEYS_MAX];
} config_origin;

typedef struct {
    char camera[BN_NAME_MAX];       /* camera name in messages and topics */
    char model[BN_PATH_MAX];        /* model file (.bnm); relative paths are relative to the
                                       config file's directory */
    source_config source;
    engine_config engine;
    budget_config budget;
    gate_config gate;               /* daemon/gate.h, docs/gate.md */
    publish_config publish;
    mqtt_config mqtt;
    http_config http;               /* config_http.h */
    events_config events;
    int log_level;                  /* bn_log_level */
    int stats_interval_s;           /* STATUS= / stats message period */
    config_origin origin;
} bn_config;

/* Defaults for every optional key. */
void config_init(bn_config *cfg);

/* Parses and validates FILE into cfg (config_init first). On error returns BN_ERR_CONFIG
 * (or BN_ERR_IO) and writes every problem found, one per line, in the form
 *   FILE:LINE:COLUMN: key 'source.fps': expected an integer from 1 to 240, got "thirty"
 * into err (truncated to errlen). cfg is unspecified on error: parse into a temporary
 * struct and swap on success (that is what reload does). */
bn_status config_load(const char *path, bn_config *cfg, char *err, size_t errlen);
/* Same from a memory buffer; `name` is used as FILE in messages. */
bn_status config_load_buffer(const char *name, const char *data, size_t len, bn_config *cfg,
                             char *err, size_t errlen);

/* "FILE:LINE:COLUMN: key 'KEY'" where the key was written, or "FILE: key 'KEY' (default)"
 * when it was not: the start of a message about that key's value found after parsing. */
void config_where(const bn_config *cfg, const char *key, char *buf, size_t len);

#endif
