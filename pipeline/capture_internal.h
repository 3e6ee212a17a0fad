/* Capture's shared parts (not a public interface):
 *   capture.c       the runtime: open and close, starting and tearing down the pipeline,
 *                   the streaming thread's hand-off, bus messages, loss and retries, pull
 *   capture_graph.c the gst-launch description for each source kind, the source element's
 *                   properties, the source.crop probe, and GStreamer's errors in the
 *                   user's terms */
#ifndef BN_CAPTURE_INTERNAL_H
#define BN_CAPTURE_INTERNAL_H

#include <gst/gst.h>
#include <stdbool.h>
#include <stdint.h>

#include "capture.h"

#define MOD "capture"

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
    uint64_t loop_mark;      /* frames_in when the looping file last started from its start */

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

/* Appends to a fixed buffer; returns false when it did not fit. */
bool capture_appendf(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* capture_graph.c */
/* The gst-launch description of the whole graph into desc (len bytes). */
bn_status capture_build_description(capture *c, char *desc, size_t len, char *err,
                                    size_t errlen);
bn_status capture_set_source_properties(capture *c, GstElement *src, char *err, size_t errlen);
GstPadProbeReturn capture_crop_caps_probe(GstPad *pad, GstPadProbeInfo *info, gpointer user);
/* What the user configured, for the start of error messages. */
void capture_source_label(const capture *c, char *buf, size_t len);
bn_status capture_describe_error_message(const capture *c, GstMessage *msg, char *buf,
                                         size_t len);
bn_status capture_take_bus_error(capture *c, bool may_wait, char *err, size_t errlen);

#endif
