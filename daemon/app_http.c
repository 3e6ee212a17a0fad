/* The HTTP endpoints' answers (daemon/http.c serves them): /metrics is the Prometheus text of
 * the stats reply, /api/state the hello fields plus that reply, /healthz whether frames flow.
 * Everything is built by the same functions the socket uses (app_publish.c, stats.c). */
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

bn_status app_http_open(app *a, const bn_config *cfg, http_server **out, char *err,
                        size_t errlen)
{
    http_handlers h = {.metrics = http_metrics, .state = http_state, .health = http_health,
                       .user = a};
    char msg[1024];
    bn_status st = http_open(&cfg->http, &h, NULL, out, msg, sizeof msg);
    if (st != BN_OK) {
        char where[BN_PATH_MAX + 128];
        config_where(cfg, "http.listen", where, sizeof where);
        snprintf(err, errlen, "%s: %s", where, msg);
        return st;
    }
    BN_LOGI(MOD, "HTTP on %s (/metrics, /api/state, /healthz)", http_address(*out));
    return BN_OK;
}

json_t *app_http_stats_json(const app *a)
{
    http_stats hs;
    http_get_stats(a->http, &hs);
    return json_pack("{s:s, s:i, s:i, s:I, s:I}", "listen", http_address(a->http), "connected",
                     hs.connected, "max", a->cfg.http.max_clients, "requests",
                     (json_int_t)hs.requests, "rejected", (json_int_t)hs.rejected);
}
