/* The daemon runtime's state, shared by its parts (not a public interface):
 *   app.c          lifecycle: start-up, housekeeping tick, signals, stop
 *   app_commands.c control commands from socket clients
 *   app_reload.c   reload, all or nothing
 *   app_source.c   the source and the inference thread, results, source state
 *   app_http.c     the HTTP endpoints' answers (daemon/http.c serves them)
 *   app_publish.c  messages: hello, labels, change and source events, stats
 *   app_engine.c   the engine set (model, session, budget parameters)
 *   app_check.c    --check-config
 * Each part calls only parts listed below it, except app.c, which starts them all.
 * Everything here runs on the event loop's thread; the inference thread sees only what
 * infer_params hands it. */
#ifndef BN_APP_INTERNAL_H
#define BN_APP_INTERNAL_H

#include <glib.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "app.h"
#include "basisnet.h"
#include "budget.h"
#include "capture.h"
#include "config.h"
#include "config_check.h"
#include "debounce.h"
#include "event_store.h"
#include "frame_slot.h"
#include "http.h"
#include "infer.h"
#include "mqtt.h"
#include "outqueue.h"
#include "protocol.h"
#include "server.h"
#include "stats.h"

/* What a reload replaces as a whole: the model, its session and the budget parameters.
 * The controller itself is created from bp when inference starts and is owned by the
 * inference thread from then on. */
typedef struct {
    bn_model *model;
    bn_session *session;
    budget_params bp;
    uint64_t t_light_ns, t_spec_ns; /* warm-up stage costs: the controller's first guesses */
} engine_set;

typedef struct app {
    app_options opt;
    bn_config cfg;
    engine_set eng;
    const bn_model_info *info;
    capture *cap;
    infer *inf;
    server *srv;
    mqtt_client *mqtt;          /* NULL without an mqtt: section */
    http_server *http;          /* NULL without an http: section */
    event_store *events;        /* NULL without an events: section */
    frame_slot *frames;         /* the latest frame for HTTP pictures; NULL until HTTP or
                                   inference first starts; copies only while HTTP or the
                                   event store is on */
    GMainLoop *loop;
    GSource *result_src, *tick_src;
    GSource *retry_src;         /* pending source re-open (camera missing at start/reload) */
    int retry_ms;
    guint sig_term, sig_int, sig_hup;

    daemon_stats stats;
    debounce deb;
    uint64_t label_seq, change_seq, dropped_frames;
    pub_msg *hello;

    capture_state src_state;
    bool src_was_lost;
    uint64_t src_lost_mono_ns;      /* when the source was last reported lost */
    char src_msg[512];

    bool ready;
    uint64_t wd_usec;           /* 0: no watchdog */
    gint64 last_progress_us, last_status_us, last_mqtt_stats_us, start_us;
    gint64 last_frame_us;       /* monotonic time of the last classified frame, 0: none */
    uint64_t tick_frames, tick_heartbeat;
    double fps;
    gint64 fps_time_us;
    uint64_t fps_frames;

    uint64_t reloads_ok, reloads_failed;
    char reload_error[1024];
    int exit_code;
} app;

/* ---- app_source.c ---- */
/* READY=1 to systemd, once. */
void app_set_ready(app *a, const char *why);
bn_status app_open_capture(app *a, const bn_config *cfg, const bn_model_info *mi, capture **out,
                           char *err, size_t errlen);
/* Starts the inference thread on a->cap with a new controller from a->eng.bp. */
bn_status app_start_infer(app *a, char *err, size_t errlen);
/* Stops the inference thread, publishes what it left in its queue and frees it. */
void app_stop_infer(app *a);
void app_attach_results(app *a);
void app_cancel_retry(app *a);
/* Opens a->cfg's source and starts inference; a missing source is retried, not an error. */
bn_status app_source_begin(app *a, char *err, size_t errlen);
/* A classified frame captured at capture_mono_ns is about to be published: if it was
 * captured after the source was reported lost, the source delivers again, and `recovered`
 * is published now, before the frame's label (the capture's own report follows later). */
void app_source_frame_seen(app *a, uint64_t capture_mono_ns);

/* ---- app_http.c ---- */
/* Binds cfg's http.listen, serving a's endpoints; errors carry the key's FILE:LINE:COL. */
bn_status app_http_open(app *a, const bn_config *cfg, http_server **out, char *err,
                        size_t errlen);
/* cfg's http.auth_file, read (NULL without one); errors carry the key's FILE:LINE:COL. */
bn_status app_http_auth_load(const bn_config *cfg, http_auth **out, char *err, size_t errlen);
/* The "http" member of the stats reply (a->http open). */
json_t *app_http_stats_json(const app *a);
/* a->frames, created on first use (NULL: out of memory). */
frame_slot *app_frame_slot(app *a);
/* Opens cfg's events.dir (the store holds the frame slot while open); errors carry the key's
 * FILE:LINE:COL. */
bn_status app_events_open(app *a, const bn_config *cfg, event_store **out, char *err,
                          size_t errlen);
void app_events_close(app *a, event_store *s);
/* The "events" member of the stats reply (a->events open). */
json_t *app_events_stats_json(const app *a);

/* ---- app_publish.c ---- */
uint64_t app_mono_ns(void);
int64_t app_real_ns(void);
const char *app_capture_state_name(capture_state s);
json_t *app_budget_json(const budget_params *bp);
/* The hello message's fields (a new object); app_rebuild_hello serializes it. */
json_t *app_hello_json(app *a);
void app_rebuild_hello(app *a);
pub_msg *app_hello_cb(void *user);
void app_publish_source(app *a, const char *state, const char *message);
void app_publish_result(app *a, const infer_result *r);
json_t *app_stats_json(app *a);
/* The periodic stats message on MQTT (stats_interval_s). */
void app_publish_mqtt_stats(app *a);

/* ---- app_engine.c ---- */
bn_status app_engine_set_open(const bn_config *cfg, engine_set *e, char *err, size_t errlen);
void app_engine_set_free(engine_set *e);
/* A controller for bp, calibrated with the model's validation confidences and the costs. */
budget_ctl *app_budget_create(const budget_params *bp, const bn_model_info *mi, uint64_t t_light,
                              uint64_t t_spec, char *err, size_t errlen);
/* ---- app_reload.c ---- */
/* SIGHUP / `reload`: all or nothing; logs and counts the outcome. */
bn_status app_do_reload(app *a, char *err, size_t errlen);

/* ---- app_commands.c ---- */
void app_on_command(server *srv, server_client *c, const proto_command *cmd, void *user);

#endif
