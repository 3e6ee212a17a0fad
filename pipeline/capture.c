/* Capture: one GStreamer pipeline per source (v4l2, file, test, user pipeline) converted to
 * the model's input inside GStreamer, a one-slot latest-frame hand-off to the inference
 * thread, and reconnection with exponential back-off driven from the caller's main context. */
#include "capture.h"

#include <errno.h>
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bn_log.h"
#include "rtsp.h"
#include "source_check.h"
#include "v4l2_probe.h"

#define MOD "capture"
/* capture_open waits this long for a non-live pipeline to preroll, so that an undecodable
 * file fails at open with GStreamer's message instead of later as a "source lost". */
#define OPEN_PREROLL_TIMEOUT_NS (10 * GST_SECOND)

struct capture {
    source_config cfg;
    capture_params params;
    GMainContext *ctx;

    /* Owned by the context thread. */
    GstElement *pipeline;
    GSource *bus_source;
    GSource *retry_source;
    GSource *stall_source;   /* rtsp: frame timeout check (source.timeout_ms) */
    uint64_t started_mono_ns;
    int retry_delay_ms;
    bool lost_reported;      /* "source lost" said; next first frame says "recovered" */
    bool ever_running;
    char last_reason[1024];

    /* Shared with the streaming thread and the consumer: under lock. */
    GMutex lock;
    GCond cond;
    GstSample *latest;       /* one slot: a new frame replaces an unpulled one */
    uint64_t latest_mono_ns;
    uint64_t last_frame_mono_ns;
    capture_state state;
    bool closed;
    bool flushing;           /* teardown running: an every_frame wait must give up */
    bool notify_running;     /* streaming thread saw the first frame of this pipeline */
    GSource *notify_source;
    int pullers;
    uint64_t frames_in, frames_pulled, frames_dropped, dropped_since_pull, reconnects;
    bool synced;             /* appsink sync=true: PTS-based capture times are real time */
    char crop_origin[BN_PATH_MAX + 64]; /* capture_params.crop_origin, "" if none */
    char description[512];
};

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

/* Appends to a fixed buffer; returns false when it did not fit. */
static bool appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *off, len - *off, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *off)
        return false;
    *off += (size_t)n;
    return true;
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

static bn_status status_from_gerror(const GError *e)
{
    if (!e)
        return BN_ERR_IO;
    if (e->domain == GST_RESOURCE_ERROR) {
        switch (e->code) {
        case GST_RESOURCE_ERROR_NOT_FOUND: return BN_ERR_NO_DEVICE;
        case GST_RESOURCE_ERROR_BUSY: return BN_ERR_BUSY;
        case GST_RESOURCE_ERROR_NOT_AUTHORIZED: return BN_ERR_PERMISSION;
        default: return BN_ERR_IO;
        }
    }
    if (e->domain == GST_STREAM_ERROR && (e->code == GST_STREAM_ERROR_FORMAT ||
                                          e->code == GST_STREAM_ERROR_WRONG_TYPE ||
                                          e->code == GST_STREAM_ERROR_TYPE_NOT_FOUND ||
                                          e->code == GST_STREAM_ERROR_CODEC_NOT_FOUND ||
                                          e->code == GST_STREAM_ERROR_DECODE ||
                                          e->code == GST_STREAM_ERROR_DEMUX))
        return BN_ERR_FORMAT;
    if (e->domain == GST_CORE_ERROR && e->code == GST_CORE_ERROR_MISSING_PLUGIN)
        return BN_ERR_UNSUPPORTED;
    return BN_ERR_IO;
}

/* "source.crop X,Y WxH lies outside the FWxFH frame (...)", or with the config's origin
 * "cam.yaml:7:3: key 'source.crop': X,Y WxH lies outside ...". false when it fits. */
static bool crop_outside(const capture *c, int fw, int fh, char *buf, size_t len)
{
    char why[256];
    if (source_crop_fits(&c->cfg.crop, fw, fh, why, sizeof why))
        return false;
    if (c->crop_origin[0])
        snprintf(buf, len, "%s: %s", c->crop_origin, why + strlen("source.crop "));
    else
        snprintf(buf, len, "%s", why);
    return true;
}

/* What the user configured, for the start of error messages. */
static void source_label(const capture *c, char *buf, size_t len)
{
    switch (c->cfg.kind) {
    case SOURCE_V4L2: snprintf(buf, len, "device '%.200s'", c->cfg.device); break;
    case SOURCE_FILE: snprintf(buf, len, "video file '%.200s'", c->cfg.path); break;
    case SOURCE_TEST: snprintf(buf, len, "test source"); break;
    case SOURCE_RTSP: {
        char masked[BN_PATH_MAX];
        rtsp_url_mask(c->cfg.url, masked, sizeof masked);
        snprintf(buf, len, "RTSP source '%.200s'", masked);
        break;
    }
    default: snprintf(buf, len, "pipeline '%.200s'", c->cfg.pipeline); break;
    }
}

/* "v4l2src0: Could not read from resource. (not-negotiated: ...)" from an ERROR message. */
static bn_status describe_error_message(const capture *c, GstMessage *msg, char *buf, size_t len)
{
    GError *e = NULL;
    gchar *dbg = NULL;
    gst_message_parse_error(msg, &e, &dbg);
    const char *who = GST_MESSAGE_SRC(msg) ? GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)) : "pipeline";
    bn_status st = status_from_gerror(e);
    const char *nn = dbg ? strstr(dbg, "not-negotiated") : NULL;
    if (!strcmp(who, "bncrop") && e && e->domain == GST_STREAM_ERROR &&
        e->code == GST_STREAM_ERROR_FORMAT)
        snprintf(buf, len, "%s", e->message), st = BN_ERR_SOURCE_LOST;   /* crop_caps_probe's */
    else if (c->cfg.kind == SOURCE_RTSP && rtsp_explain_error(e, dbg, buf, len, &st))
        ;   /* said in the user's terms; GStreamer's words are in the debug line below */
    else if (nn)
        snprintf(buf, len, "%s: %s (not-negotiated: the source's formats cannot be converted to "
                           "the model input)", who, e ? e->message : "error");
    else if (e && e->domain == GST_RESOURCE_ERROR && dbg && strstr(dbg, "No such device"))
        snprintf(buf, len, "%s: %s (device unplugged)", who, e->message), st = BN_ERR_NO_DEVICE;
    else
        snprintf(buf, len, "%s: %s", who, e ? e->message : "error");
    if (dbg)
        g_strdelimit(dbg, "\n", ' ');   /* one log line */
    BN_LOGD(MOD, "error detail: %s", dbg ? dbg : "(none)");
    if (e)
        g_error_free(e);
    g_free(dbg);
    return st;
}

/* ---- the graph ----------------------------------------------------------------------------- */

/* Conversion to exactly the model input: scale before converting (the scaler then works on
 * the small image's pixels only: measured 3x cheaper), aspect handling as configured. */
static bool append_conversion(const capture *c, int src_w, int src_h, char *buf, size_t len,
                              size_t *off)
{
    int w = c->params.width, h = c->params.height;
    const char *fmt = c->params.channels == 1 ? "GRAY8" : "RGB";
    bool ok = true;
    switch (c->cfg.aspect) {
    case ASPECT_CROP:
        if (src_w > 0 && src_h > 0) {
            /* Size known (probe, test source): scale to the model's height (or width) keeping
             * the aspect ratio, convert, then crop the few extra columns (or rows) of the small
             * image. Cropping the camera's full frame first would cost more, and videocrop on
             * v4l2src's buffers produced garbage here (GStreamer 1.22, vivid). */
            int iw = w, ih = h;
            if ((long long)src_w * h > (long long)src_h * w)
                iw = (int)(((long long)src_w * h + src_h / 2) / src_h);
            else
                ih = (int)(((long long)src_h * w + src_w / 2) / src_w);
            int l = (iw - w) / 2, t = (ih - h) / 2;
            if (c->cfg.crop.width > 0 && (iw != w || ih != h))
                BN_LOGW(MOD, "source.crop %dx%d and the model's %dx%d differ in aspect: "
                        "source.aspect crop cuts %d %s off each side of the region (the "
                        "scaled %dx%d); source.aspect letterbox keeps all of it",
                        src_w, src_h, w, h, iw != w ? l : t, iw != w ? "columns" : "rows", iw,
                        ih);
            ok = appendf(buf, len, off,
                         " ! videoscale ! video/x-raw,width=%d,height=%d,pixel-aspect-ratio=1/1"
                         " ! videoconvert",
                         iw, ih);
            /* Two caps filters in a row do not parse ("no element video"): the format caps
             * go before videocrop only when there is something to crop. */
            if (ok && (iw != w || ih != h))
                ok = appendf(buf, len, off,
                             " ! video/x-raw,format=%s ! videocrop left=%d right=%d top=%d bottom=%d",
                             fmt, l, iw - w - l, t, ih - h - t);
            return ok && appendf(buf, len, off,
                                 " ! video/x-raw,format=%s,width=%d,height=%d,pixel-aspect-ratio=1/1"
                                 " ! appsink name=bnsink",
                                 fmt, w, h);
        } else {
            /* Unknown until negotiation: aspectratiocrop computes the crop from the caps. */
            int g = w, b = h;
            while (b) { int tmp = g % b; g = b; b = tmp; }
            ok = appendf(buf, len, off, " ! aspectratiocrop aspect-ratio=%d/%d ! videoscale",
                         w / g, h / g);
        }
        break;
    case ASPECT_LETTERBOX:
        ok = appendf(buf, len, off, " ! videoscale add-borders=true");
        break;
    case ASPECT_STRETCH:
    default:
        ok = appendf(buf, len, off, " ! videoscale add-borders=false");
        break;
    }
    return ok && appendf(buf, len, off,
                         " ! videoconvert ! video/x-raw,format=%s,width=%d,height=%d,"
                         "pixel-aspect-ratio=1/1 ! appsink name=bnsink",
                         fmt, w, h);
}

/* When a user pipeline ends in caps with a fixed size ("... ! video/x-raw,width=640,
 * height=480"), the crop can be computed now, as for a probed camera. */
static void pipeline_tail_size(const char *pipeline, int *w, int *h)
{
    const char *last = strrchr(pipeline, '!');
    GstCaps *caps = gst_caps_from_string(last ? last + 1 : pipeline);
    if (caps && gst_caps_get_size(caps) == 1) {
        const GstStructure *st = gst_caps_get_structure(caps, 0);
        int cw, ch;
        if (gst_structure_get_int(st, "width", &cw) && gst_structure_get_int(st, "height", &ch) &&
            cw > 0 && ch > 0) {
            *w = cw;
            *h = ch;
        }
    }
    if (caps)
        gst_caps_unref(caps);
}

static bn_status build_description(capture *c, char *desc, size_t len, char *err, size_t errlen)
{
    const source_config *s = &c->cfg;
    int fps = s->fps > 0 ? s->fps : 30;
    int sw = s->width > 0 ? s->width : 640, sh = s->height > 0 ? s->height : 480;
    size_t off = 0;
    bool ok = true;
    int src_w = 0, src_h = 0;   /* known for v4l2 (probed) and test sources */
    switch (s->kind) {
    case SOURCE_V4L2: {
        v4l2_mode m;
        source_config want = *s;
        want.width = sw;
        want.height = sh;
        want.fps = fps;
        bn_status st = v4l2_prepare_source(&want, &m, err, errlen);
        if (st != BN_OK)
            return st;
        char caps[160];
        if (!v4l2_mode_caps(&m, caps, sizeof caps)) {
            snprintf(err, errlen, "internal: no caps for the chosen mode of '%s'", s->device);
            return BN_ERR_INTERNAL;
        }
        /* The device is set as a property after parsing: no quoting problems with paths. */
        ok = appendf(desc, len, &off, "v4l2src name=bnsrc ! %s", caps);
        src_w = m.width;
        src_h = m.height;
        if (ok && m.compressed)
            ok = appendf(desc, len, &off, " ! jpegdec");
        break;
    }
    case SOURCE_FILE:
        if (access(s->path, R_OK) != 0) {
            snprintf(err, errlen, "cannot open video file '%s': %s", s->path, strerror(errno));
            return errno == EACCES ? BN_ERR_PERMISSION : BN_ERR_IO;
        }
        ok = appendf(desc, len, &off, "filesrc name=bnsrc ! decodebin");
        break;
    case SOURCE_TEST:
        ok = appendf(desc, len, &off,
                     "videotestsrc name=bnsrc is-live=true ! video/x-raw,width=%d,height=%d,"
                     "framerate=%d/1",
                     sw, sh, fps);
        src_w = sw;
        src_h = sh;
        break;
    case SOURCE_PIPELINE:
        if (!s->pipeline[0]) {
            snprintf(err, errlen, "source.kind is pipeline but source.pipeline is empty");
            return BN_ERR_CONFIG;
        }
        ok = appendf(desc, len, &off, "%s", s->pipeline);
        pipeline_tail_size(s->pipeline, &src_w, &src_h);
        break;
    case SOURCE_RTSP:
        if (!s->url[0]) {
            snprintf(err, errlen, "source.kind is rtsp but source.url is empty");
            return BN_ERR_CONFIG;
        }
        /* Only the video stream is linked (a camera's audio stream stays unlinked);
         * decodebin picks the depayloader and the highest-ranked decoder (hardware first). */
        ok = appendf(desc, len, &off,
                     "rtspsrc name=bnsrc ! application/x-rtp,media=video ! decodebin");
        break;
    default:
        snprintf(err, errlen, "unknown source kind %d", (int)s->kind);
        return BN_ERR_INVALID_ARG;
    }
    /* source.crop: cut the region of interest out of the source frame before any scaling,
     * so that everything after sees a crop.width x crop.height frame. With the frame size
     * known now the edges are fixed here; otherwise crop_caps_probe sets them from the
     * negotiated caps (and fails the pipeline if the crop does not fit). */
    const source_crop *cr = &s->crop;
    if (ok && cr->width > 0) {
        if (src_w > 0 && src_h > 0) {
            char why[BN_PATH_MAX + 400], label[256];
            if (crop_outside(c, src_w, src_h, why, sizeof why)) {
                source_label(c, label, sizeof label);
                snprintf(err, errlen, "%s: %s", label, why);
                return BN_ERR_SOURCE_LOST;
            }
            ok = appendf(desc, len, &off,
                         " ! videocrop name=bncrop left=%d top=%d right=%d bottom=%d", cr->x,
                         cr->y, src_w - cr->x - cr->width, src_h - cr->y - cr->height);
        } else {
            ok = appendf(desc, len, &off, " ! videocrop name=bncrop");
        }
        src_w = cr->width;
        src_h = cr->height;
    }
    if (!ok || !append_conversion(c, src_w, src_h, desc, len, &off)) {
        snprintf(err, errlen, "pipeline description too long (limit %zu bytes)", len - 1);
        return BN_ERR_CONFIG;
    }
    return BN_OK;
}

static bn_status set_source_properties(capture *c, GstElement *src, char *err, size_t errlen)
{
    const source_config *s = &c->cfg;
    switch (s->kind) {
    case SOURCE_V4L2:
        g_object_set(src, "device", s->device, NULL);
        break;
    case SOURCE_FILE:
        g_object_set(src, "location", s->path, NULL);
        break;
    case SOURCE_TEST: {
        int v = source_test_pattern(src, s->pattern[0] ? s->pattern : "smpte", err, errlen);
        if (v < 0)
            return BN_ERR_CONFIG;
        g_object_set(src, "pattern", v, NULL);
        break;
    }
    case SOURCE_RTSP:
        return rtsp_configure_src(src, s, err, errlen);
    default:
        break;
    }
    return BN_OK;
}

static GstFlowReturn on_new_sample(GstAppSink *sink, gpointer user);
static gboolean on_bus_message(GstBus *bus, GstMessage *msg, gpointer user);

/* Streaming thread, on videocrop's sink pad when the source size is known only at
 * negotiation (file, rtsp, pipeline without fixed caps at its end): sets the crop's edges
 * from the frame size, or posts an ERROR naming source.crop, the crop and the frame when
 * the crop does not fit (handled like any other streaming error: reported, and retried
 * where the source kind retries). */
static GstPadProbeReturn crop_caps_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user)
{
    capture *c = user;
    GstEvent *ev = GST_PAD_PROBE_INFO_EVENT(info);
    if (GST_EVENT_TYPE(ev) != GST_EVENT_CAPS)
        return GST_PAD_PROBE_OK;
    GstCaps *caps;
    gst_event_parse_caps(ev, &caps);
    const GstStructure *st = caps && gst_caps_get_size(caps) ? gst_caps_get_structure(caps, 0) : NULL;
    int fw = 0, fh = 0;
    if (!st || !gst_structure_get_int(st, "width", &fw) || !gst_structure_get_int(st, "height", &fh))
        return GST_PAD_PROBE_OK;   /* videocrop itself refuses caps without a size */
    const source_crop *cr = &c->cfg.crop;
    GstElement *crop = gst_pad_get_parent_element(pad);
    char why[BN_PATH_MAX + 400];
    if (crop_outside(c, fw, fh, why, sizeof why)) {
        GError *e = g_error_new_literal(GST_STREAM_ERROR, GST_STREAM_ERROR_FORMAT, why);
        gst_element_post_message(crop, gst_message_new_error(GST_OBJECT(crop), e, NULL));
        g_error_free(e);
        gst_object_unref(crop);
        return GST_PAD_PROBE_DROP;   /* nothing flows: the pipeline fails on our ERROR */
    }
    g_object_set(crop, "left", cr->x, "top", cr->y, "right", fw - cr->x - cr->width, "bottom",
                 fh - cr->y - cr->height, NULL);
    BN_LOGD(MOD, "source.crop %d,%d %dx%d of the %dx%d frame", cr->x, cr->y, cr->width,
            cr->height, fw, fh);
    gst_object_unref(crop);
    return GST_PAD_PROBE_OK;
}

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

static bool m_generic(GstMessage *m)
{
    GError *ge = NULL;
    gst_message_parse_error(m, &ge, NULL);
    bool generic = ge && ge->domain == GST_STREAM_ERROR && ge->code == GST_STREAM_ERROR_FAILED;
    if (ge)
        g_error_free(ge);
    return generic;
}

/* Pops the most specific ERROR the pipeline posted (after a failed state change). */
static bn_status take_bus_error(capture *c, bool may_wait, char *err, size_t errlen)
{
    GstBus *bus = gst_element_get_bus(c->pipeline);
    /* Several elements may fail at once; "Internal data stream error" from a source is
     * the consequence, the specific one (typefind, decoder, device) is the cause. */
    GstMessage *m = NULL, *e;
    /* A failed state change may return before the failing element's streaming thread has
     * posted its ERROR (typefind does): wait for the first one a little, at capture_open
     * only (retries run on the caller's main loop and never block it). */
    GstClockTime wait = may_wait ? 500 * GST_MSECOND : 0;
    while ((e = gst_bus_timed_pop_filtered(bus, wait, GST_MESSAGE_ERROR))) {
        wait = 0;
        if (!m || (!m_generic(e) && m_generic(m))) {
            if (m)
                gst_message_unref(m);
            m = e;
        } else {
            gst_message_unref(e);
        }
    }
    /* Only the generic one yet: the specific one may still be on its way from another
     * streaming thread. */
    if (may_wait && m && m_generic(m)) {
        GstMessage *late = gst_bus_timed_pop_filtered(bus, 200 * GST_MSECOND, GST_MESSAGE_ERROR);
        if (late && !m_generic(late)) {
            gst_message_unref(m);
            m = late;
        } else if (late) {
            gst_message_unref(late);
        }
    }
    bn_status st = BN_ERR_IO;
    char label[256], why[768];
    source_label(c, label, sizeof label);
    if (m) {
        st = describe_error_message(c, m, why, sizeof why);
        gst_message_unref(m);
    } else {
        snprintf(why, sizeof why, "failed to start (no error message from GStreamer)");
    }
    snprintf(err, errlen, "%s: %s", label, why);
    gst_object_unref(bus);
    return st;
}

/* Builds the graph and sets it PLAYING. wait: block until a non-live pipeline prerolled
 * (capture_open only; retries never block the main context). */
static bn_status start_pipeline(capture *c, bool wait, char *err, size_t errlen)
{
    char desc[sizeof c->description + BN_PIPELINE_MAX];
    desc[0] = '\0';
    bn_status st = build_description(c, desc, sizeof desc, err, errlen);
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
            appendf(err, errlen, &(size_t){strlen(err)}, ")");
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
        st = set_source_properties(c, src, err, errlen);
        gst_object_unref(src);
        if (st != BN_OK) {
            teardown(c);
            return st;
        }
    }
    GstElement *crop = gst_bin_get_by_name(GST_BIN(p), "bncrop");
    if (crop) {
        GstPad *pad = gst_element_get_static_pad(crop, "sink");
        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, crop_caps_probe, c, NULL);
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
        st = take_bus_error(c, wait, err, errlen);
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
        snprintf(c->last_reason, sizeof c->last_reason, "%s", reason);
        BN_LOGI(MOD, "source still lost: %s; retrying in %d ms", reason, c->retry_delay_ms);
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
        source_label(c, label, sizeof label);
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

static gboolean on_bus_message(GstBus *bus, GstMessage *msg, gpointer user)
{
    (void)bus;
    capture *c = user;
    char reason[1024];
    switch (GST_MESSAGE_TYPE(msg)) {
    case GST_MESSAGE_ERROR: {
        char why[384], label[256];
        bn_status st = describe_error_message(c, msg, why, sizeof why);
        source_label(c, label, sizeof label);
        snprintf(reason, sizeof reason, "%s: %s", label, why);
        source_failed(c, st, reason);
        return G_SOURCE_REMOVE;   /* source_failed destroyed this watch */
    }
    case GST_MESSAGE_EOS:
        if (c->cfg.kind == SOURCE_FILE && c->cfg.loop) {
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
