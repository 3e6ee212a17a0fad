/* The HTTP endpoints' answers (daemon/http.c serves them): /metrics is the Prometheus text of
 * the stats reply, /api/state the hello fields plus that reply, /healthz whether frames flow,
 * the pictures the newest frame of the slot the inference thread fills while HTTP is on,
 * /events the hello message and then what app_publish.c publishes. Everything is built by
 * the same functions the socket uses (app_publish.c, stats.c). */
#include <stdio.h>
#include <string.h>

#include "app_internal.h"
#include "bn_log.h"

#define MOD "daemon"
/* Frames count as flowing while one was classified within max(this, 3 frame intervals). */
#define HEALTH_STALE_US (5 * G_USEC_PER_SEC)

static char *http_metrics(void *user)
{
    app *a = user;
    json_t *st = app_stats_json(a);
    char *text = st ? stats_to_prometheus(st) : NULL; /* what `basisnetctl stats --prometheus` prints */
    json_decref(st);
    return text;
}

static json_t *http_state(void *user)
{
    app *a = user;
    json_t *o = app_hello_json(a);
    if (!o)
        return NULL;
    char t[40];
    proto_format_time(app_real_ns(), t, sizeof t);
    json_object_set_new(o, "type", json_string("state"));
    json_object_set_new(o, "time", json_string(t));
    json_object_set_new(o, "stats", app_stats_json(a));
    return o;
}

static bool http_health(void *user, char *why, size_t len)
{
    app *a = user;
    switch (a->src_state) {
    case CAPTURE_RUNNING:
        break;
    case CAPTURE_LOST:
        snprintf(why, len, "source lost: %s", a->src_msg[0] ? a->src_msg : "reconnecting");
        return false;
    case CAPTURE_EOS:
        snprintf(why, len, "source ended (end of stream)");
        return false;
    case CAPTURE_STARTING:
        snprintf(why, len, "source starting: no frame yet");
        return false;
    }
    gint64 stale = HEALTH_STALE_US;
    if (a->cfg.source.fps > 0 && 3 * G_USEC_PER_SEC / a->cfg.source.fps > stale)
        stale = 3 * G_USEC_PER_SEC / a->cfg.source.fps;
    gint64 age = g_get_monotonic_time() - a->last_frame_us;
    if (!a->last_frame_us) {
        snprintf(why, len, "no frame classified yet");
        return false;
    }
    if (age > stale) {
        snprintf(why, len, "no frame classified for %.1f s", (double)age / 1e6);
        return false;
    }
    return true;
}

static json_t *http_event_list(void *user)
{
    app *a = user;
    return a->events ? event_store_list(a->events) : NULL;
}

static bn_status http_event_file(void *user, const char *name, uint8_t **out, size_t *len)
{
    app *a = user;
    if (!a->events)
        return BN_ERR_UNSUPPORTED;
    return event_store_read(a->events, name, out, len);
}

static const frame_copy *http_frame(void *user)
{
    app *a = user;
    return frame_slot_get(a->frames);
}

static const char *http_label_name(void *user, int class_id)
{
    app *a = user;
    if (a->info && class_id >= 0 && class_id < a->info->num_classes)
        return a->info->labels[class_id];
    return "?";
}

/* Each open server holds the slot: frames are copied while at least one exists (during a
 * reload to a new address, two do). */
static void http_closed(void *user)
{
    app *a = user;
    frame_slot_release(a->frames);
}

/* "FILE:LINE:COL: key 'KEY': msg" into err; returns st. */
static bn_status keyed_error(const bn_config *cfg, const char *key, const char *msg,
                             bn_status st, char *err, size_t errlen)
{
    char where[BN_PATH_MAX + 128];
    config_where(cfg, key, where, sizeof where);
    snprintf(err, errlen, "%s: %s", where, msg);
    return st;
}

frame_slot *app_frame_slot(app *a)
{
    if (!a->frames)
        a->frames = frame_slot_new();
    return a->frames;
}

bn_status app_http_open(app *a, const bn_config *cfg, http_server **out, char *err,
                        size_t errlen)
{
    http_handlers h = {.metrics = http_metrics, .state = http_state, .health = http_health,
                       .frame = http_frame, .label_name = http_label_name,
                       .hello = app_hello_cb, .closed = http_closed,
                       .event_list = http_event_list, .event_file = http_event_file, .user = a};
    if (!app_frame_slot(a)) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    char msg[1024];
    bn_status st = http_open(&cfg->http, &h, NULL, out, msg, sizeof msg);
    if (st != BN_OK)
        return keyed_error(cfg, "http.listen", msg, st, err, errlen);
    frame_slot_hold(a->frames);
    BN_LOGI(MOD, "HTTP on %s (/, /metrics, /api/state, /healthz, /snapshot.jpg, /stream.mjpg, "
                 "/events)", http_address(*out));
    return BN_OK;
}

bn_status app_http_auth_load(const bn_config *cfg, http_auth **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->http.enabled || !cfg->http.auth_file[0])
        return BN_OK;
    char msg[BN_PATH_MAX + 512];
    bn_status st = http_auth_load(cfg->http.auth_file, out, msg, sizeof msg);
    if (st != BN_OK)
        return keyed_error(cfg, "http.auth_file", msg, st, err, errlen);
    BN_LOGI(MOD, "HTTP basic authentication: %d user%s from %s (/healthz stays open)",
            http_auth_users(*out), http_auth_users(*out) == 1 ? "" : "s", cfg->http.auth_file);
    return BN_OK;
}

json_t *app_http_stats_json(const app *a)
{
    http_stats hs;
    http_get_stats(a->http, &hs);
    return json_pack("{s:s, s:i, s:i, s:I, s:I, s:i, s:i, s:I, s:I, s:b, s:I}", "listen",
                     http_address(a->http), "connected", hs.connected, "max",
                     a->cfg.http.max_clients, "requests", (json_int_t)hs.requests, "rejected",
                     (json_int_t)hs.rejected, "streams", hs.streams, "event_clients",
                     hs.event_clients, "jpegs", (json_int_t)hs.jpegs, "events_lost",
                     (json_int_t)hs.events_lost, "auth", a->cfg.http.auth_file[0] != '\0',
                     "auth_failed", (json_int_t)hs.auth_failed);
}

bn_status app_events_open(app *a, const bn_config *cfg, event_store **out, char *err,
                          size_t errlen)
{
    if (!app_frame_slot(a)) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    char msg[BN_PATH_MAX + 256];
    bn_status st = event_store_open(&cfg->events, out, msg, sizeof msg);
    if (st != BN_OK)
        return keyed_error(cfg, "events.dir", msg, st, err, errlen);
    frame_slot_hold(a->frames);
    event_store_stats es;
    event_store_get_stats(*out, &es);
    BN_LOGI(MOD, "event snapshots in %s (%d there, keep %d, at most %lld bytes)",
            cfg->events.dir, es.files, cfg->events.keep, cfg->events.max_bytes);
    return BN_OK;
}

void app_events_close(app *a, event_store *s)
{
    if (!s)
        return;
    event_store_close(s);
    frame_slot_release(a->frames);
}

json_t *app_events_stats_json(const app *a)
{
    event_store_stats es;
    event_store_get_stats(a->events, &es);
    return json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:{s:f, s:f, s:f}, s:s}", "dir",
                     event_store_dir(a->events), "files", es.files, "bytes",
                     (json_int_t)es.bytes, "saved", (json_int_t)es.saved, "failed",
                     (json_int_t)es.failed, "dropped", (json_int_t)es.dropped, "removed",
                     (json_int_t)es.removed, "save_ms", "last", proto_round(es.save_ms_last, 3),
                     "mean", proto_round(es.save_ms_mean, 3), "max",
                     proto_round(es.save_ms_max, 3), "last_error", es.last_error);
}
