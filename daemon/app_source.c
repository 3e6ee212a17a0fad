/* The source and the inference thread: opening the capture (and retrying a missing one with
 * back-off), starting and stopping inference, draining its results into app_publish.c, and
 * the source's state changes. Runs on the event loop's thread. */
#include <glib-unix.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "app_internal.h"
#include "bn_log.h"

#define MOD "daemon"
#define DRAIN_BATCH 32

static void on_source_state(capture_state state, const char *message, void *user);

bn_status app_open_capture(app *a, const bn_config *cfg, const bn_model_info *mi,
                              capture **out, char *err, size_t errlen)
{
    capture_params cp = {.width = mi->width, .height = mi->height, .channels = mi->channels,
                         .context = NULL, .on_state = on_source_state, .user = a};
    char crop_where[BN_PATH_MAX + 64];
    config_where(cfg, "source.crop", crop_where, sizeof crop_where);
    cp.crop_origin = crop_where;
    return capture_open(&cfg->source, &cp, out, err, errlen);
}

bn_status app_start_infer(app *a, char *err, size_t errlen)
{
    budget_ctl *b = app_budget_create(&a->eng.bp, a->info, a->eng.t_light_ns, a->eng.t_spec_ns,
                                      err, errlen);
    if (!b)
        return BN_ERR_INVALID_ARG;
    infer_params ip = {.cap = a->cap, .session = a->eng.session, .budget = b, .queue = 64};
    const gate_config *gc = &a->cfg.gate;
    ip.gate_on = gc->mode == GATE_MODE_AUTO;
    ip.gate = (gate_params){.width = a->info->width, .height = a->info->height,
                            .channels = a->info->channels, .refresh_ms = gc->refresh_ms,
                            .cell_sigmas = gc->cell_sigmas, .min_area = gc->min_area,
                            .min_score = gc->min_score, .hold_frames = gc->hold_frames,
                            .confirm_frames = a->cfg.publish.change_frames};
    ip.frames = app_frame_slot(a);  /* copies only while an HTTP server holds it */
    return infer_start(&ip, &a->inf, err, errlen);
}

static gboolean on_results(gint fd, GIOCondition cond, gpointer data);

void app_attach_results(app *a)
{
    a->result_src = g_unix_fd_source_new(infer_eventfd(a->inf), G_IO_IN);
    g_source_set_callback(a->result_src, G_SOURCE_FUNC(on_results), a, NULL);
    g_source_attach(a->result_src, NULL);
}

static void detach_results(app *a)
{
    if (a->result_src) {
        g_source_destroy(a->result_src);
        g_source_unref(a->result_src);
        a->result_src = NULL;
    }
}

static void drain_results(app *a, bool *eos)
{
    infer_result rs[DRAIN_BATCH];
    int n;
    *eos = false;
    if (!a->inf)
        return;
    while ((n = infer_drain(a->inf, rs, DRAIN_BATCH, eos)) > 0)
        for (int i = 0; i < n; i++)
            app_publish_result(a, &rs[i]);
}

void app_stop_infer(app *a)
{
    bool eos;
    infer_stop(a->inf);
    drain_results(a, &eos);
    detach_results(a);
    infer_free(a->inf);
    a->inf = NULL;
}

static gboolean on_source_retry(gpointer data);

void app_cancel_retry(app *a)
{
    if (a->retry_src) {
        g_source_destroy(a->retry_src);
        g_source_unref(a->retry_src);
        a->retry_src = NULL;
    }
    a->retry_ms = 0;
}

static void schedule_retry(app *a)
{
    if (a->retry_src)
        return;
    int lo = a->cfg.source.retry_initial_ms > 0 ? a->cfg.source.retry_initial_ms : 500;
    int hi = a->cfg.source.retry_max_ms >= lo ? a->cfg.source.retry_max_ms : lo;
    a->retry_ms = a->retry_ms <= 0 ? lo : (a->retry_ms > hi / 2 ? hi : a->retry_ms * 2);
    a->retry_src = g_timeout_source_new((guint)a->retry_ms);
    g_source_set_callback(a->retry_src, on_source_retry, a, NULL);
    g_source_attach(a->retry_src, NULL);
}

/* Opens the source of a->cfg and starts inference on it. A source that is missing or busy
 * (a recoverable status) is not fatal: the daemon keeps serving its socket, reports the
 * source as lost (and READY to systemd), and retries with the configured back-off. Only
 * errors a retry cannot fix are returned. */
bn_status app_source_begin(app *a, char *err, size_t errlen)
{
    bn_status st = app_open_capture(a, &a->cfg, a->info, &a->cap, err, errlen);
    if (st == BN_OK) {
        a->retry_ms = 0;
        st = app_start_infer(a, err, errlen);
        if (st == BN_OK)
            app_attach_results(a);
        return st;
    }
    if (!bn_status_recoverable(st))
        return st;
    if (a->src_state != CAPTURE_LOST)
        BN_LOGW(MOD, "source: %s; retrying every %d..%d ms", err, a->cfg.source.retry_initial_ms,
                a->cfg.source.retry_max_ms);
    on_source_state(CAPTURE_LOST, err, a);  /* the first time a `source` event, then the reason */
    schedule_retry(a);
    return BN_OK;
}

static gboolean on_source_retry(gpointer data)
{
    app *a = data;
    g_source_unref(a->retry_src);   /* this one-shot source ends with this call */
    a->retry_src = NULL;
    char err[1024];
    bn_status st = app_source_begin(a, err, sizeof err);
    if (st != BN_OK) {
        /* e.g. the device exists now but refuses the format: keep trying, slowly (logged
         * when the reason changes, not at every retry) */
        if (strcmp(err, a->src_msg) != 0)
            BN_LOGE(MOD, "source: %s", err);
        on_source_state(CAPTURE_LOST, err, a);
        a->retry_ms = a->cfg.source.retry_max_ms;
        schedule_retry(a);
    }
    return G_SOURCE_REMOVE;
}

void app_set_ready(app *a, const char *why)
{
    if (a->ready)
        return;
    a->ready = true;
    BN_LOGI(MOD, "ready (%s)", why);
    sd_notifyf(0, "READY=1\nSTATUS=%s", why);
}

static gboolean on_results(gint fd, GIOCondition cond, gpointer data)
{
    app *a = data;
    (void)fd;
    (void)cond;
    bool eos;
    drain_results(a, &eos);
    if (a->stats.classified > 0)
        app_set_ready(a, "first frame classified");
    if (eos) {
        a->src_state = CAPTURE_EOS;
        if (a->opt.exit_on_eos) {
            BN_LOGI(MOD, "end of stream: exiting (--exit-on-eos)");
            g_main_loop_quit(a->loop);
        }
    }
    return G_SOURCE_CONTINUE;
}

void app_source_frame_seen(app *a, uint64_t capture_mono_ns)
{
    if (a->src_state == CAPTURE_LOST && capture_mono_ns > a->src_lost_mono_ns)
        on_source_state(CAPTURE_RUNNING, "source recovered", a);
}

static void on_source_state(capture_state state, const char *message, void *user)
{
    app *a = user;
    capture_state old = a->src_state;
    bool same_msg = strcmp(a->src_msg, message ? message : "") == 0;
    a->src_state = state;
    snprintf(a->src_msg, sizeof a->src_msg, "%s", message ? message : "");
    if (state != old || !same_msg)
        app_rebuild_hello(a);
    if (state == old)   /* e.g. still lost, for another reason: stats and hello say it */
        return;
    switch (state) {
    case CAPTURE_LOST:
        a->src_was_lost = true;
        a->src_lost_mono_ns = app_mono_ns();
        app_publish_source(a, "lost", message);
        /* The daemon is up and serving while it waits for the camera: ready to systemd. */
        app_set_ready(a, "source lost, reconnecting");
        break;
    case CAPTURE_RUNNING:
        if (a->src_was_lost) {
            app_publish_source(a, "recovered", message);
            a->src_was_lost = false;
        }
        break;
    case CAPTURE_EOS:
        app_publish_source(a, "eos", message);
        break;
    default:
        break;
    }
}
