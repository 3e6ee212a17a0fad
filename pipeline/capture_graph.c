/* Capture's graph: the gst-launch description for each source kind (conversion to the
 * model input, aspect handling, source.crop), the source element's properties, the crop
 * probe for sizes known only at negotiation, and GStreamer's errors in the user's terms. */
#include "capture_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bn_log.h"
#include "rtsp.h"
#include "source_check.h"
#include "v4l2_probe.h"

/* ---- messages ------------------------------------------------------------------------------ */

bool capture_appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
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

void capture_source_label(const capture *c, char *buf, size_t len)
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
bn_status capture_describe_error_message(const capture *c, GstMessage *msg, char *buf,
                                         size_t len)
{
    GError *e = NULL;
    gchar *dbg = NULL;
    gst_message_parse_error(msg, &e, &dbg);
    const char *who = GST_MESSAGE_SRC(msg) ? GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)) : "pipeline";
    bn_status st = status_from_gerror(e);
    const char *nn = dbg ? strstr(dbg, "not-negotiated") : NULL;
    if (!strcmp(who, "bncrop") && e && e->domain == GST_STREAM_ERROR &&
        e->code == GST_STREAM_ERROR_FORMAT)
        snprintf(buf, len, "%s", e->message), st = BN_ERR_SOURCE_LOST;   /* the crop probe's */
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
            ok = capture_appendf(
                buf, len, off,
                " ! videoscale ! video/x-raw,width=%d,height=%d,pixel-aspect-ratio=1/1"
                " ! videoconvert",
                iw, ih);
            /* Two caps filters in a row do not parse ("no element video"): the format caps
             * go before videocrop only when there is something to crop. */
            if (ok && (iw != w || ih != h))
                ok = capture_appendf(
                    buf, len, off,
                    " ! video/x-raw,format=%s ! videocrop left=%d right=%d top=%d bottom=%d", fmt,
                    l, iw - w - l, t, ih - h - t);
            return ok && capture_appendf(
                             buf, len, off,
                             " ! video/x-raw,format=%s,width=%d,height=%d,pixel-aspect-ratio=1/1"
                             " ! appsink name=bnsink",
                             fmt, w, h);
        } else {
            /* Unknown until negotiation: aspectratiocrop computes the crop from the caps. */
            int g = w, b = h;
            while (b) { int tmp = g % b; g = b; b = tmp; }
            ok = capture_appendf(
                buf, len, off, " ! aspectratiocrop aspect-ratio=%d/%d ! videoscale", w / g, h / g);
        }
        break;
    case ASPECT_LETTERBOX:
        ok = capture_appendf(buf, len, off, " ! videoscale add-borders=true");
        break;
    case ASPECT_STRETCH:
    default:
        ok = capture_appendf(buf, len, off, " ! videoscale add-borders=false");
        break;
    }
    return ok && capture_appendf(buf, len, off,
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

bn_status capture_build_description(capture *c, char *desc, size_t len, char *err,
                                    size_t errlen)
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
        ok = capture_appendf(desc, len, &off, "v4l2src name=bnsrc ! %s", caps);
        src_w = m.width;
        src_h = m.height;
        if (ok && m.compressed)
            ok = capture_appendf(desc, len, &off, " ! jpegdec");
        break;
    }
    case SOURCE_FILE:
        if (access(s->path, R_OK) != 0) {
            snprintf(err, errlen, "cannot open video file '%s': %s", s->path, strerror(errno));
            return errno == EACCES ? BN_ERR_PERMISSION : BN_ERR_IO;
        }
        ok = capture_appendf(desc, len, &off, "filesrc name=bnsrc ! decodebin");
        break;
    case SOURCE_TEST:
        ok = capture_appendf(desc, len, &off,
                             "videotestsrc name=bnsrc is-live=true ! video/x-raw,width=%d,"
                             "height=%d,framerate=%d/1",
                             sw, sh, fps);
        src_w = sw;
        src_h = sh;
        break;
    case SOURCE_PIPELINE:
        if (!s->pipeline[0]) {
            snprintf(err, errlen, "source.kind is pipeline but source.pipeline is empty");
            return BN_ERR_CONFIG;
        }
        ok = capture_appendf(desc, len, &off, "%s", s->pipeline);
        pipeline_tail_size(s->pipeline, &src_w, &src_h);
        break;
    case SOURCE_RTSP:
        if (!s->url[0]) {
            snprintf(err, errlen, "source.kind is rtsp but source.url is empty");
            return BN_ERR_CONFIG;
        }
        /* Only the video stream is linked (a camera's audio stream stays unlinked);
         * decodebin picks the depayloader and the highest-ranked decoder (hardware first). */
        ok = capture_appendf(desc, len, &off,
                             "rtspsrc name=bnsrc ! application/x-rtp,media=video ! decodebin");
        break;
    default:
        snprintf(err, errlen, "unknown source kind %d", (int)s->kind);
        return BN_ERR_INVALID_ARG;
    }
    /* source.crop: cut the region of interest out of the source frame before any scaling,
     * so that everything after sees a crop.width x crop.height frame. With the frame size
     * known now the edges are fixed here; otherwise capture_crop_caps_probe sets them from the
     * negotiated caps (and fails the pipeline if the crop does not fit). */
    const source_crop *cr = &s->crop;
    if (ok && cr->width > 0) {
        if (src_w > 0 && src_h > 0) {
            char why[BN_PATH_MAX + 400], label[256];
            if (crop_outside(c, src_w, src_h, why, sizeof why)) {
                capture_source_label(c, label, sizeof label);
                snprintf(err, errlen, "%s: %s", label, why);
                return BN_ERR_SOURCE_LOST;
            }
            ok = capture_appendf(
                desc, len, &off, " ! videocrop name=bncrop left=%d top=%d right=%d bottom=%d",
                cr->x, cr->y, src_w - cr->x - cr->width, src_h - cr->y - cr->height);
        } else {
            ok = capture_appendf(desc, len, &off, " ! videocrop name=bncrop");
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

bn_status capture_set_source_properties(capture *c, GstElement *src, char *err, size_t errlen)
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


/* Streaming thread, on videocrop's sink pad when the source size is known only at
 * negotiation (file, rtsp, pipeline without fixed caps at its end): sets the crop's edges
 * from the frame size, or posts an ERROR naming source.crop, the crop and the frame when
 * the crop does not fit (handled like any other streaming error: reported, and retried
 * where the source kind retries). */
GstPadProbeReturn capture_crop_caps_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user)
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

/* ---- a failed start -------------------------------------------------------------------------- */

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
bn_status capture_take_bus_error(capture *c, bool may_wait, char *err, size_t errlen)
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
    capture_source_label(c, label, sizeof label);
    if (m) {
        st = capture_describe_error_message(c, m, why, sizeof why);
        gst_message_unref(m);
    } else {
        snprintf(why, sizeof why, "failed to start (no error message from GStreamer)");
    }
    snprintf(err, errlen, "%s: %s", label, why);
    gst_object_unref(bus);
    return st;
}
