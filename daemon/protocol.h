/* Protocol v1 of the basisnetd socket (docs/protocol.md): encodes the daemon's messages
 * (hello, label, change, source, reply, error) as JSON lines and parses client commands.
 * Pure functions over jansson, no I/O: the fuzz target and unit tests drive them directly. */
#ifndef BN_PROTOCOL_H
#define BN_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"

#define PROTO_VERSION 1
#define PROTO_MAX_FILTER_LABELS 64
#define PROTO_LABEL_MAX 64
#define PROTO_NAME_MAX 32
#define PROTO_ID_MAX 64

/* What the event loop knows about one classified frame. */
typedef struct {
    uint64_t seq;               /* label messages published so far, from 1 */
    uint64_t pts_ns;            /* buffer PTS */
    int64_t time_ns;            /* CLOCK_REALTIME of the capture, for the "time" field */
    const char *label;
    int class_id;
    double score;
    int stage;                  /* bn_stage, or 2: the gate reused the last answer ("reuse") */
    const char *reason;         /* NULL, or why the stage was chosen ("deadline") */
    double threshold;
    double ms_light, ms_synth, ms_specialist, ms_total, ms_capture_to_publish;
    bool gated;                 /* the gate ran: latency_ms.gate and "gate" are present */
    double ms_gate;
    const char *gate;           /* gated: the gate's verdict ("closed", "held", "area", ...) */
    double ms_age;              /* stage reuse: age of the reused answer ("age_ms") */
    uint64_t dropped_frames;    /* frames since the previous label with no label of their own */
    int synth_reused;           /* specialist frames with engine.synth_reuse on: layers kept */
    bool synth_reuse_on;        /* "synth_reused" is present (specialist stage, reuse on) */
} proto_label;

/* proto_label.stage of a reused answer. */
#define PROTO_STAGE_REUSE 2

typedef enum {
    PROTO_CMD_PING = 0,
    PROTO_CMD_STATS,
    PROTO_CMD_SUBSCRIBE,
    PROTO_CMD_SET,
    PROTO_CMD_RELOAD,
    PROTO_CMD_COUNT
} proto_cmd_kind;

typedef struct {
    bool all_labels;            /* no "labels" key: every label passes */
    int n_labels;
    char labels[PROTO_MAX_FILTER_LABELS][PROTO_LABEL_MAX];
    double min_score;           /* label messages below this are not sent (0 = all) */
    bool changes_only;          /* only change/source messages, no label messages */
} proto_filter;

typedef struct {
    bool has_budget_ms, has_threshold, has_threshold_min, has_threshold_max;
    double budget_ms;
    double threshold;           /* fixed threshold: turns the budget controller off */
    double threshold_min, threshold_max;
} proto_set;

typedef struct {
    proto_cmd_kind kind;
    char id[PROTO_ID_MAX];      /* optional "id" echoed in the reply, serialized JSON ("" = none) */
    char name[PROTO_NAME_MAX];  /* "cmd" as sent when it was a short string, also when unknown
                                   (the error reply carries it); "" otherwise */
    proto_filter filter;        /* subscribe */
    proto_set set;              /* set */
} proto_command;

/* Name of a command as it appears in "cmd", e.g. "subscribe". */
const char *proto_cmd_name(proto_cmd_kind kind);
/* True for commands that change the daemon's state (need the control group). */
bool proto_cmd_needs_control(proto_cmd_kind kind);

/* Parses one command line (without the newline; need not be NUL-terminated). On error
 * returns BN_ERR_FORMAT (bad JSON, not an object) or BN_ERR_INVALID_ARG (unknown command,
 * wrong type or range) and writes a one-line message for the error reply into err. When the
 * command name or id was readable they are still filled in cmd (kind = PROTO_CMD_COUNT if
 * the name was unknown), so the error reply can carry them. */
bn_status proto_parse_command(const char *line, size_t len, proto_command *cmd, char *err,
                              size_t errlen);

/* Default filter: every label, every score, label + change messages. */
void proto_filter_init(proto_filter *f);
/* True when a message of this kind for this label/score passes the filter. */
bool proto_filter_pass_label(const proto_filter *f, const char *label, double score);
bool proto_filter_pass_change(const proto_filter *f, const char *label);

/* Message builders: each returns a new JSON object (caller json_decref) or NULL on ENOMEM. */
json_t *proto_label_json(const proto_label *m);
/* pts_ns/time_ns: the frame that completed the run of held_frames frames. */
json_t *proto_change_json(uint64_t seq, uint64_t pts_ns, int64_t time_ns, const char *label,
                          int class_id, double score, const char *previous, int held_frames);
json_t *proto_source_json(int64_t time_ns, const char *state, const char *message);
/* {"type":"reply","cmd":NAME,"ok":true[,"id":ID]}; add fields to the result. */
json_t *proto_reply_json(const char *cmd, const char *id);
/* {"type":"error","error":MSG[,"cmd":NAME][,"id":ID]}. cmd/id may be NULL or "". */
json_t *proto_error_json(const char *cmd, const char *id, const char *msg);

/* Serializes as one compact line terminated by '\n'. Returns a malloc'd string (free()) and
 * its length, or NULL. Reals are rounded by the builders, so they print short. */
char *proto_dump_line(const json_t *msg, size_t *len);

/* RFC 3339 UTC with milliseconds, "2026-11-26T09:56:42.123Z"; buf needs 32 bytes. */
void proto_format_time(int64_t realtime_ns, char *buf, size_t len);

/* Rounds to `decimals` decimal places (for short, stable JSON numbers). */
double proto_round(double v, int decimals);

#endif
