/* Capture: one GStreamer pipeline per source (v4l2, file, test, user pipeline) converted to
 * the model's input inside GStreamer, a one-slot latest-frame hand-off to the inference
 * thread, and reconnection with exponential back-off driven from the caller's main context.
 * This file is the runtime; the graph's description is capture_graph.c's. */
#include "capture.h"

#include <errno.h>
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bn_log.h"
#include "capture_internal.h"
#include "rtsp.h"

/* capture_open waits this long for a non-live pipeline to preroll, so that an undecodable
 * file fails at open with GStreamer's message instead of later as a "source lost". */
#define OPEN_PREROLL_TIMEOUT_NS (10 * GST_SECOND)

typedef struct {
    GstSample *sample;
    GstVideoFrame vf;
} frame_priv;

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t mono_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void set_state_locked(capture *c, capture_state st)
{
    c->state = st;
    g_cond_broadcast(&c->cond);
}

static void emit_state(capture *c, capture_state st, const char *msg)
{
    if (c->params.on_state)
        c->params.on_state(st, msg, c->params.user);
}

static GstFlowReturn on_new_sample(GstAppSink *sink, gpointer user);
static gboolean on_bus_message(GstBus *bus, GstMessage *msg, gpointer user);

static void teardown(capture *c)
{
    /* A streaming thread waiting in on_new_sample (every_frame) would block the state
     * change to NULL below, which joins it. */
    g_mutex_lock(&c->lock);
    c->flushing = true;
    g_cond_broadcast(&c->cond);
    g_mutex_unlock(&c->lock);
    if (c->bus_source) {
        g_source_destroy(c->bus_source);
        g_source_unref(c->bus_source);
        c->bus_source = NULL;
    }
    if (c->pipeline) {
        /* Joins the streaming threads: on_new_sample never runs after this. */
        gst_element_set_state(c->pipeline, GST_STATE_NULL);
        gst_object_unref(c->pipeline);
        c->pipeline = NULL;
    }
    g_mutex_lock(&c->lock);
    if (c->latest) {
        gst_sample_unref(c->latest);
        c->latest = NULL;
    }
    c->notify_running = false;
    c->flushing = false;
    g_mutex_unlock(&c->lock);
}

/* Builds the graph and sets it PLAYING. wait: block until a non-live pipeline prerolled
 * (capture_open only; retries never block the main context). */
static bn_status start_pipeline(capture *c, bool wait, char *err, size_t errlen)
{
    char desc[sizeof c->description + BN_PIPELINE_MAX];
    desc[0] = '\0';
    bn_status st = capture_build_description(c, desc, sizeof desc, err, errlen);
    if (st != BN_OK)
        return st;

    GError *gerr = NULL;
    GstParseContext *pctx = gst_parse_context_new();
    GstElement *p = gst_parse_launch_full(desc, pctx, GST_PARSE_FLAG_FATAL_ERRORS, &gerr);
    if (!p || gerr) {
        gchar **missing = gst_parse_context_get_missing_elements(pctx);
        snprintf(err, errlen, "cannot build %s pipeline '%s': %s%s%s",
                 source_kind_name(c->cfg.kind), c->cfg.kind == SOURCE_PIPELINE ? c->cfg.pipeline : desc,
                 gerr ? gerr->message : "unknown parse error",
                 missing && missing[0] ? " (missing element: " : "",
                 missing && missing[0] ? missing[0] : "");
        if (missing && missing[0])
            capture_appendf(err, errlen, &(size_t){strlen(err)}, ")");
        g_strfreev(missing);
        if (gerr)
            g_error_free(gerr);
        if (p)
            gst_object_unref(p);
        gst_parse_context_free(pctx);
        return BN_ERR_CONFIG;
    }
    gst_parse_context_free(pctx);
    if (!GST_IS_PIPELINE(p)) {
        gst_object_unref(p);
        snprintf(err, errlen, "internal: '%s' did not make a pipeline", desc);
        return BN_ERR_INTERNAL;
    }
    c->pipeline = p;

    GstElement *src = gst_bin_get_by_name(GST_BIN(p), "bnsrc");
    if (src) {
        st = capture_set_source_properties(c, src, err, errlen);
        gst_object_unref(src);
        if (st != BN_OK) {
            teardown(c);
            return st;
        }
    }
    GstElement *crop = gst_bin_get_by_name(GST_BIN(p), "bncrop");
    if (crop) {
        GstPad *pad = gst_element_get_static_pad(crop, "sink");
        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, capture_crop_caps_probe, c,
                          NULL);
        gst_object_unref(pad);
        gst_object_unref(crop);
    }
    GstElement *sink = gst_bin_get_by_name(GST_BIN(p), "bnsink");
    if (!sink) {
        teardown(c);
        snprintf(err, errlen, "internal: appsink missing from '%s'", desc);
        return BN_ERR_INTERNAL;
    }
    bool sync = (c->cfg.kind == SOURCE_FILE || c->cfg.kind == SOURCE_PIPELINE) && !c->params.no_sync;
    g_object_set(sink, "max-buffers", 1u, "drop", TRUE, "sync", sync, "emit-signals", FALSE,
                 "enable-last-sample", FALSE, NULL);
    GstAppSinkCallbacks cbs = {.new_sample = on_new_sample};
    gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cbs, c, NULL);
    gst_object_unref(sink);

    GstBus *bus = gst_element_get_bus(p);
    c->bus_source = gst_bus_create_watch(bus);
    gst_object_unref(bus);
    g_source_set_callback(c->bus_source, (GSourceFunc)(void (*)(void))on_bus_message, c, NULL);
    g_source_attach(c->bus_source, c->ctx);

    g_mutex_lock(&c->lock);
    c->synced = sync;
    c->started_mono_ns = mono_now_ns();
    c->loop_mark = c->frames_in;
    /* Truncated to the stats field (512 bytes). */
    g_strlcpy(c->description, desc, sizeof c->description);
    if (c->cfg.kind == SOURCE_V4L2 || c->cfg.kind == SOURCE_FILE || c->cfg.kind == SOURCE_RTSP) {
        /* Show the path the property carries, as gst-launch would take it (an RTSP URL
         * with its user info masked). */
        char *at = strstr(desc, "name=bnsrc");
        char masked[BN_PATH_MAX];
        rtsp_url_mask(c->cfg.url, masked, sizeof masked);
        if (at) {
            *at = '\0';
            gchar *shown = g_strdup_printf("%s%s=\"%s\"%s", desc,
                                           c->cfg.kind == SOURCE_V4L2 ? "device" : "location",
                                           c->cfg.kind == SOURCE_V4L2 ? c->cfg.device
                                           : c->cfg.kind == SOURCE_RTSP ? masked : c->cfg.path,
                                           at + strlen("name=bnsrc"));
            g_strlcpy(c->description, shown, sizeof c->description);
            g_free(shown);
        }
    }
    g_mutex_unlock(&c->lock);

    GstStateChangeReturn r = gst_element_set_state(p, GST_STATE_PLAYING);
    if (r == GST_STATE_CHANGE_ASYNC && wait)
        r = gst_element_get_state(p, NULL, NULL, OPEN_PREROLL_TIMEOUT_NS);
    if (r == GST_STATE_CHANGE_FAILURE) {
        st = capture_take_bus_error(c, wait, err, errlen);
        teardown(c);
        return st;
    }
    /* Once at open; each retry's (the same graph) at debug level. */
    if (wait)
        BN_LOGI(MOD, "pipeline: %s", c->description);
    else
        BN_LOGD(MOD, "pipeline: %s", c->description);
    return BN_OK;
}

/* ---- streaming thread ------------------------------------------------------------------------ */

static gboolean on_notify_idle(gpointer user)
{
    capture *c = user;
    g_mutex_lock(&c->lock);
    bool running = c->notify_running && c->state == CAPTURE_RUNNING;
    c->notify_running = false;
    if (c->notify_source) {
        g_source_unref(c->notify_source);
        c->notify_source = NULL;
    }
    g_mutex_unlock(&c->lock);
    if (running) {
        if (c->lost_reported) {
            BN_LOGI(MOD, "source recovered");
            c->lost_reported = false;
            c->last_reason[0] = '\0';
            emit_state(c, CAPTURE_RUNNING, "source recovered");
        } else if (!c->ever_running) {
            emit_state(c, CAPTURE_RUNNING, "source running");
        }
        c->ever_running = true;
        c->retry_delay_ms = c->cfg.retry_initial_ms;
    }
    return G_SOURCE_REMOVE;
}

static GstFlowReturn on_new_sample(GstAppSink *sink, gpointer user)
{
    capture *c = user;
    GstSample *pulled = gst_app_sink_pull_sample(sink);
    if (!pulled)
        return GST_FLOW_OK;
    /* appsink reuses the GstSample it hands out and sets new caps on it in place after a
     * flush (file loop); holding its object in our slot makes that fail. Keep our own. */
    GstSample *s = gst_sample_new(gst_sample_get_buffer(pulled), gst_sample_get_caps(pulled),
                                  gst_sample_get_segment(pulled), NULL);
    gst_sample_unref(pulled);
    uint64_t now = mono_now_ns();
    uint64_t mono = now;
    GstBuffer *b = gst_sample_get_buffer(s);
    const GstSegment *seg = gst_sample_get_segment(s);
    GstElement *pipe = GST_ELEMENT(gst_object_get_parent(GST_OBJECT(sink)));
    if (pipe && b && seg && GST_BUFFER_PTS_IS_VALID(b)) {
        /* The pipeline's clock is GStreamer's system clock, CLOCK_MONOTONIC by default, so
         * base time + running time is the capture instant in CLOCK_MONOTONIC terms. Frames
         * of an unsynchronized file have no real capture instant: they keep "now". */
        guint64 rt = gst_segment_to_running_time(seg, GST_FORMAT_TIME, GST_BUFFER_PTS(b));
        GstClockTime base = gst_element_get_base_time(pipe);
        GstClock *clk = gst_element_get_clock(pipe);
        bool mono_clock = false;
        if (clk && GST_IS_SYSTEM_CLOCK(clk)) {
            GstClockType ct;
            g_object_get(clk, "clock-type", &ct, NULL);
            mono_clock = ct == GST_CLOCK_TYPE_MONOTONIC;
        }
        if (clk)
            gst_object_unref(clk);
        bool live_or_synced = c->synced || c->cfg.kind == SOURCE_V4L2 ||
                              c->cfg.kind == SOURCE_TEST || c->cfg.kind == SOURCE_RTSP;
        if (mono_clock && live_or_synced && GST_CLOCK_TIME_IS_VALID(rt) &&
            GST_CLOCK_TIME_IS_VALID(base) && base + rt <= now)
            mono = base + rt;
    }
    if (pipe)
        gst_object_unref(pipe);

    g_mutex_lock(&c->lock);
    /* every_frame: back-pressure instead of replacement; the decoder waits for the pull. */
    if (c->params.every_frame && c->cfg.kind == SOURCE_FILE)
        while (c->latest && !c->closed && !c->flushing)
            g_cond_wait(&c->cond, &c->lock);
    if (c->closed || c->flushing) {
        g_mutex_unlock(&c->lock);
        gst_sample_unref(s);
        return GST_FLOW_FLUSHING;
    }
    c->frames_in++;
    if (c->latest) {
        gst_sample_unref(c->latest);
        c->frames_dropped++;
        c->dropped_since_pull++;
    }
    c->latest = s;
    c->latest_mono_ns = mono;
    c->last_frame_mono_ns = now;
    if (c->state != CAPTURE_RUNNING) {
        c->state = CAPTURE_RUNNING;
        c->notify_running = true;
        if (!c->notify_source) {
            c->notify_source = g_idle_source_new();
            g_source_set_callback(c->notify_source, on_notify_idle, c, NULL);
            g_source_attach(c->notify_source, c->ctx);
        }
    }
    g_cond_broadcast(&c->cond);
    g_mutex_unlock(&c->lock);
    return GST_FLOW_OK;
}

/* ---- failures and retries (context thread) ----------------------------------------------------- */

static void schedule_retry(capture *c);

static void source_failed(capture *c, bn_status st, const char *reason)
{
    teardown(c);
    g_mutex_lock(&c->lock);
    set_state_locked(c, CAPTURE_LOST);
    g_mutex_unlock(&c->lock);
    if (!c->lost_reported) {
        /* Said once per outage; the retries that fail again only log at debug level. */
        c->lost_reported = true;
        snprintf(c->last_reason, sizeof c->last_reason, "%s", reason);
        if (c->params.no_retry)   /* a one-shot tool's: final, reported by it (on_state) */
            BN_LOGD(MOD, "source lost (%s): %s; not retried (no_retry)", bn_status_str(st), reason);
        else
            BN_LOGW(MOD, "source lost (%s): %s; retrying in %d ms", bn_status_str(st), reason,
                    c->retry_delay_ms);
        char msg[1100];
        snprintf(msg, sizeof msg, "source lost: %s", reason);
        emit_state(c, CAPTURE_LOST, msg);
    } else if (c->params.no_retry) {
        BN_LOGD(MOD, "retry failed: %s; not retried again (no_retry)", reason);
    } else if (strcmp(reason, c->last_reason) != 0) {
        /* Still lost, for another reason now: the caller's state shows the latest one. */
        snprintf(c->last_reason, sizeof c->last_reason, "%s", reason);
        BN_LOGI(MOD, "source still lost: %s; retrying in %d ms", reason, c->retry_delay_ms);
        char msg[1100];
        snprintf(msg, sizeof msg, "source lost: %s", reason);
        emit_state(c, CAPTURE_LOST, msg);
    } else {
        BN_LOGD(MOD, "retry failed: %s; next in %d ms", reason, c->retry_delay_ms);
    }
    if (!c->params.no_retry)
        schedule_retry(c);
}

static gboolean on_retry(gpointer user)
{
    capture *c = user;
    g_source_unref(c->retry_source);
    c->retry_source = NULL;
    g_mutex_lock(&c->lock);
    bool closed = c->closed;
    c->reconnects++;
    g_mutex_unlock(&c->lock);
    if (closed)
        return G_SOURCE_REMOVE;
    /* Back off before the attempt so that a failure inside it waits longer next time. */
    int next = c->retry_delay_ms * 2;
    c->retry_delay_ms = next > c->cfg.retry_max_ms ? c->cfg.retry_max_ms : next;
    char err[1024];
    bn_status st = start_pipeline(c, false, err, sizeof err);
    if (st != BN_OK)
        source_failed(c, st, err);
    else {
        g_mutex_lock(&c->lock);
        if (c->state == CAPTURE_LOST)
            set_state_locked(c, CAPTURE_STARTING);
        g_mutex_unlock(&c->lock);
    }
    return G_SOURCE_REMOVE;
}

/* A network source can stop without an error: UDP packets that no longer arrive, a server
 * that hangs. No frame for source.timeout_ms since the last one (or since the pipeline
 * started) is a loss like any other. */
static gboolean on_stall_check(gpointer user)
{
    capture *c = user;
    if (!c->pipeline)
        return G_SOURCE_CONTINUE;   /* lost already: the retry timer owns the next step */
    g_mutex_lock(&c->lock);
    uint64_t last = c->last_frame_mono_ns > c->started_mono_ns ? c->last_frame_mono_ns
                                                               : c->started_mono_ns;
    bool live = c->state == CAPTURE_RUNNING || c->state == CAPTURE_STARTING;
    g_mutex_unlock(&c->lock);
    if (live && mono_now_ns() - last > (uint64_t)c->cfg.timeout_ms * 1000000ull) {
        char label[256], reason[512];
        capture_source_label(c, label, sizeof label);
        snprintf(reason, sizeof reason, "%s: no frame for %d ms (source.timeout_ms)", label,
                 c->cfg.timeout_ms);
        source_failed(c, BN_ERR_TIMEOUT, reason);
    }
    return G_SOURCE_CONTINUE;
}

static void schedule_retry(capture *c)
{
    if (c->retry_source)
        return;
    c->retry_source = g_timeout_source_new((guint)c->retry_delay_ms);
    g_source_set_callback(c->retry_source, on_retry, c, NULL);
    g_source_attach(c->retry_source, c->ctx);
}

/* A looping file at its end: true (with the reason) when it cannot be played again as it
 * is, so that it is reported lost and reopened with back-off instead of replaying what the
 * demuxer still holds or seeking to an end of stream over and over: the file is gone or
 * empty now (truncated, or being rewritten in place), or the pass that just ended gave no
 * frame. */
static bool loop_file_gone(capture *c, char *reason, size_t len)
{
    struct stat sb;
    g_mutex_lock(&c->lock);
    bool no_frame = c->frames_in == c->loop_mark;
    c->loop_mark = c->frames_in;
    g_mutex_unlock(&c->lock);
    if (stat(c->cfg.path, &sb) != 0)
        snprintf(reason, len, "video file '%.200s' at its end: %s", c->cfg.path, strerror(errno));
    else if (sb.st_size == 0)
        snprintf(reason, len, "video file '%.200s' is empty now (truncated?)", c->cfg.path);
    else if (no_frame)
        snprintf(reason, len, "video file '%.200s' gave no frame since it last looped "
                              "(changed while playing?)", c->cfg.path);
    else
        return false;
    return true;
}

static gboolean on_bus_message(GstBus *bus, GstMessage *msg, gpointer user)
{
    (void)bus;
    capture *c = user;
    char reason[1024];
    switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ERROR: {
        char why[384], label[256];
        bn_status st = capture_describe_error_message(c, msg, why, sizeof why);
        capture_source_label(c, label, sizeof label);
        snprintf(reason, sizeof reason, "%s: %s", label, why);
        source_failed(c, st, reason);
        return G_SOURCE_REMOVE;   /* source_failed destroyed this watch */
    }
    case GST_MESSAGE_EOS:
        if (c->cfg.kind == SOURCE_FILE && c->cfg.loop) {
            if (loop_file_gone(c, reason, sizeof reason)) {
                source_failed(c, BN_ERR_EOS, reason);
                return G_SOURCE_REMOVE;
            }
            if (gst_element_seek_simple(c->pipeline, GST_FORMAT_TIME,
                                        GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_KEY_UNIT, 0)) {
                BN_LOGD(MOD, "end of '%s': looping", c->cfg.path);
                return G_SOURCE_CONTINUE;
            }
            source_failed(c, BN_ERR_EOS, "end of stream and the seek back to the start failed");
            return G_SOURCE_REMOVE;
        }
        if (c->cfg.kind == SOURCE_FILE) {
            BN_LOGI(MOD, "end of '%s'", c->cfg.path);
            g_mutex_lock(&c->lock);
            set_state_locked(c, CAPTURE_EOS);
            g_mutex_unlock(&c->lock);
            emit_state(c, CAPTURE_EOS, "end of stream");
            return G_SOURCE_CONTINUE;
        }
        /* A camera, test or user pipeline that ends is a failure to recover from. */
        source_failed(c, BN_ERR_EOS, c->cfg.kind == SOURCE_RTSP
                                         ? "the RTSP server ended the stream or closed the connection"
                                         : "unexpected end of stream");
        return G_SOURCE_REMOVE;
    case GST_MESSAGE_WARNING: {
        GError *e = NULL;
        gst_message_parse_warning(msg, &e, NULL);
        BN_LOGD(MOD, "%s: warning: %s", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)), e ? e->message : "?");
        if (e)
            g_error_free(e);
        return G_SOURCE_CONTINUE;
    }
    default:
        return G_SOURCE_CONTINUE;
    }
}

/* ---- public API -------------------------------------------------------------------------------- */

bn_status capture_open(const source_config *cfg, const capture_params *params, capture **out,
                       char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg || !params || params->width <= 0 || params->height <= 0 ||
        (params->channels != 1 && params->channels != 3)) {
        snprintf(err, errlen, "capture: model input must be WxHx1 or WxHx3, got %dx%dx%d",
                 params ? params->width : 0, params ? params->height : 0,
                 params ? params->channels : 0);
        return BN_ERR_INVALID_ARG;
    }
    GError *gerr = NULL;
    if (!gst_init_check(NULL, NULL, &gerr)) {
        snprintf(err, errlen, "cannot initialise GStreamer: %s", gerr ? gerr->message : "?");
        if (gerr)
            g_error_free(gerr);
        return BN_ERR_INTERNAL;
    }
    capture *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return BN_ERR_NOMEM;
    }
    c->cfg = *cfg;
    if (c->cfg.retry_initial_ms <= 0)
        c->cfg.retry_initial_ms = 500;
    if (c->cfg.retry_max_ms < c->cfg.retry_initial_ms)
        c->cfg.retry_max_ms = c->cfg.retry_initial_ms > 10000 ? c->cfg.retry_initial_ms : 10000;
    c->params = *params;
    if (params->crop_origin)
        g_strlcpy(c->crop_origin, params->crop_origin, sizeof c->crop_origin);
    c->params.crop_origin = NULL;
    c->ctx = params->context ? params->context : g_main_context_default();
    g_main_context_ref(c->ctx);
    g_mutex_init(&c->lock);
    g_cond_init(&c->cond);
    c->state = CAPTURE_STARTING;
    c->retry_delay_ms = c->cfg.retry_initial_ms;

    if (c->cfg.kind == SOURCE_RTSP && c->cfg.timeout_ms > 0) {
        c->stall_source = g_timeout_source_new((guint)(c->cfg.timeout_ms / 4));
        g_source_set_callback(c->stall_source, on_stall_check, c, NULL);
        g_source_attach(c->stall_source, c->ctx);
    }
    bn_status st = start_pipeline(c, true, err, errlen);
    if (st != BN_OK) {
        if (params->wait_for_device && (st == BN_ERR_NO_DEVICE || st == BN_ERR_BUSY)) {
            /* Reported like any later loss (on_state is called here, on the context's
             * thread), then retried with back-off. */
            c->lost_reported = true;
            snprintf(c->last_reason, sizeof c->last_reason, "%s", err);
            c->state = CAPTURE_LOST;
            BN_LOGW(MOD, "source not available (%s): %s; waiting for it", bn_status_str(st), err);
            char msg[1100];
            snprintf(msg, sizeof msg, "source lost: %.1000s", err);
            emit_state(c, CAPTURE_LOST, msg);
            schedule_retry(c);
            *out = c;
            return BN_OK;
        }
        capture_close(c);
        return st;
    }
    *out = c;
    return BN_OK;
}

bn_status capture_pull(capture *c, capture_frame *frame, int timeout_ms)
{
    if (!c || !frame)
        return BN_ERR_INVALID_ARG;
    memset(frame, 0, sizeof *frame);
    gint64 deadline = g_get_monotonic_time() + (gint64)(timeout_ms > 0 ? timeout_ms : 0) * 1000;
    g_mutex_lock(&c->lock);
    c->pullers++;
    bn_status st;
    for (;;) {
        if (c->closed) {
            st = BN_ERR_CLOSED;
            break;
        }
        if (c->latest) {
            st = BN_OK;
            break;
        }
        if (c->state == CAPTURE_EOS) {
            st = BN_ERR_EOS;
            break;
        }
        if (!g_cond_wait_until(&c->cond, &c->lock, deadline)) {
            st = c->closed ? BN_ERR_CLOSED : c->latest ? BN_OK
                 : c->state == CAPTURE_LOST ? BN_ERR_SOURCE_LOST
                 : c->state == CAPTURE_EOS ? BN_ERR_EOS : BN_ERR_TIMEOUT;
            break;
        }
    }
    GstSample *s = NULL;
    uint64_t mono = 0, dropped = 0, seq = 0;
    if (st == BN_OK) {
        s = c->latest;
        c->latest = NULL;
        mono = c->latest_mono_ns;
        dropped = c->dropped_since_pull;
        c->dropped_since_pull = 0;
        seq = ++c->frames_pulled;
    }
    c->pullers--;
    /* capture_close waits for pullers to leave; an every_frame decoder waits for the slot */
    if (c->closed || (st == BN_OK && c->params.every_frame))
        g_cond_broadcast(&c->cond);
    g_mutex_unlock(&c->lock);
    if (st != BN_OK)
        return st;

    frame_priv *fp = calloc(1, sizeof *fp);
    GstVideoInfo info;
    GstCaps *caps = gst_sample_get_caps(s);
    GstBuffer *buf = gst_sample_get_buffer(s);
    if (!fp || !caps || !buf || !gst_video_info_from_caps(&info, caps) ||
        !gst_video_frame_map(&fp->vf, &info, buf, GST_MAP_READ)) {
        free(fp);
        gst_sample_unref(s);
        BN_LOGE(MOD, "cannot map a frame");
        return BN_ERR_INTERNAL;
    }
    fp->sample = s;
    frame->data = GST_VIDEO_FRAME_PLANE_DATA(&fp->vf, 0);
    frame->width = GST_VIDEO_FRAME_WIDTH(&fp->vf);
    frame->height = GST_VIDEO_FRAME_HEIGHT(&fp->vf);
    frame->channels = GST_VIDEO_FRAME_N_COMPONENTS(&fp->vf);
    frame->stride = (size_t)GST_VIDEO_FRAME_PLANE_STRIDE(&fp->vf, 0);
    frame->seq = seq;
    frame->pts_ns = GST_BUFFER_PTS_IS_VALID(buf) ? GST_BUFFER_PTS(buf) : 0;
    frame->capture_mono_ns = mono;
    frame->dropped = dropped;
    frame->priv = fp;
    return BN_OK;
}

void capture_release(capture *c, capture_frame *frame)
{
    (void)c;   /* frames own their buffer: releasing after capture_close is fine */
    if (!frame || !frame->priv)
        return;
    frame_priv *fp = frame->priv;
    gst_video_frame_unmap(&fp->vf);
    gst_sample_unref(fp->sample);
    free(fp);
    memset(frame, 0, sizeof *frame);
}

void capture_get_stats(capture *c, capture_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!c)
        return;
    g_mutex_lock(&c->lock);
    st->frames_in = c->frames_in;
    st->frames_pulled = c->frames_pulled;
    st->frames_dropped = c->frames_dropped;
    st->reconnects = c->reconnects;
    st->state = c->state;
    snprintf(st->description, sizeof st->description, "%s", c->description);
    g_mutex_unlock(&c->lock);
}

void capture_close(capture *c)
{
    if (!c)
        return;
    g_mutex_lock(&c->lock);
    c->closed = true;
    g_cond_broadcast(&c->cond);
    while (c->pullers > 0)
        g_cond_wait(&c->cond, &c->lock);
    GSource *ns = c->notify_source;
    c->notify_source = NULL;
    g_mutex_unlock(&c->lock);
    if (ns) {
        g_source_destroy(ns);
        g_source_unref(ns);
    }
    GSource *timers[] = {c->retry_source, c->stall_source};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
        if (timers[i]) {
            g_source_destroy(timers[i]);
            g_source_unref(timers[i]);
        }
    c->retry_source = c->stall_source = NULL;
    teardown(c);
    g_main_context_unref(c->ctx);
    g_mutex_clear(&c->lock);
    g_cond_clear(&c->cond);
    free(c);
}
