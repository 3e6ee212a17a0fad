/* Capture: builds a GStreamer pipeline for a source_config and hands the latest frame,
 * already converted to the model's input (8-bit, HWC, channels x width x height), to one
 * consumer thread. appsink max-buffers=1 drop=true: a slow consumer gets the newest frame
 * and the frames it missed are counted as dropped.
 *
 * Threads: capture_open/capture_close and the bus watch run on the GLib main context given
 * in capture_params (the daemon's event loop); capture_pull is called from the inference
 * thread and blocks at most timeout_ms. Recoverable source failures (unplug, EOS without
 * loop, not-negotiated, streaming errors) are logged once, reported through on_state, and
 * retried with exponential back-off; the process never exits on them. */
#ifndef BN_CAPTURE_H
#define BN_CAPTURE_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bn_error.h"
#include "source_config.h"

typedef struct capture capture;

typedef enum {
    CAPTURE_STARTING = 0,  /* pipeline built, no frame yet */
    CAPTURE_RUNNING,       /* frames flowing */
    CAPTURE_LOST,          /* failed, waiting to retry */
    CAPTURE_EOS,           /* file ended and loop is off (terminal until capture_close) */
} capture_state;

typedef void (*capture_state_fn)(capture_state state, const char *message, void *user);

typedef struct {
    int width, height, channels;    /* the model's input: frames are delivered exactly so */
    GMainContext *context;          /* where the bus watch and retry timers run (NULL: default) */
    capture_state_fn on_state;      /* called on the context's thread; may be NULL. Once
                                       per state change, and again with CAPTURE_LOST while
                                       lost when the reason of a failed retry differs from
                                       the last one given */
    void *user;
    /* Added by the capture engineer (zero = the default behaviour): */
    bool no_sync;                   /* file/pipeline kinds: deliver frames as fast as they
                                       decode instead of at the stream's own frame rate
                                       (offline evaluation, tests); default: real time, as a
                                       camera would deliver them */
    bool wait_for_device;           /* a missing or busy source at capture_open is not an
                                       error: start in CAPTURE_LOST and retry with back-off */
    bool every_frame;               /* file kind only: a decoded frame waits until the
                                       consumer pulled the one before, instead of replacing
                                       it, so every frame is delivered once (offline work:
                                       basisnet grab, evaluation). With no_sync, the file is
                                       read as fast as the consumer takes frames. Live
                                       sources ignore it: a camera cannot wait. */
    bool no_retry;                  /* a loss after a successful open is final: it is not
                                       retried and not logged here, only passed to on_state
                                       (and capture_pull returns BN_ERR_SOURCE_LOST), so a
                                       one-shot tool reports it once, in its own words */
    const char *crop_origin;        /* where source.crop was written, e.g. "cam.yaml:7:3: key
                                       'source.crop'" (config_where); copied at open. A crop
                                       outside the frame is reported as "ORIGIN: X,Y WxH lies
                                       outside the FWxFH frame (...)" (NULL: "source.crop X,Y
                                       WxH lies ..."), with BN_ERR_SOURCE_LOST: a recoverable
                                       loss, retried like any other (a camera's mode or an
                                       RTSP stream's size may change) */
} capture_params;

typedef struct {
    const uint8_t *data;            /* HWC 8-bit, valid until capture_release */
    int width, height, channels;
    size_t stride;                  /* bytes per row */
    uint64_t seq;                   /* frames delivered so far, from 1 */
    uint64_t pts_ns;                /* buffer PTS (stream time) */
    uint64_t capture_mono_ns;       /* CLOCK_MONOTONIC time the frame was captured
                                       (pipeline base time + PTS, in monotonic terms) */
    uint64_t dropped;               /* frames dropped before the consumer since the last pull */
    void *priv;
} capture_frame;

typedef struct {
    uint64_t frames_in;             /* frames that reached the appsink */
    uint64_t frames_pulled;
    uint64_t frames_dropped;        /* overwritten in the appsink before being pulled */
    uint64_t reconnects;
    capture_state state;
    char description[512];          /* the pipeline actually built (gst-launch syntax) */
} capture_stats;

bn_status capture_open(const source_config *cfg, const capture_params *params, capture **out,
                       char *err, size_t errlen);
/* Waits up to timeout_ms for a new frame. BN_OK with *frame filled; BN_ERR_TIMEOUT;
 * BN_ERR_SOURCE_LOST while reconnecting; BN_ERR_EOS when a non-looping file ended;
 * BN_ERR_CLOSED after capture_close started. */
bn_status capture_pull(capture *c, capture_frame *frame, int timeout_ms);
void capture_release(capture *c, capture_frame *frame);
void capture_get_stats(capture *c, capture_stats *st);
/* Stops the pipeline and frees everything; idempotent on NULL. Wakes a blocked capture_pull. */
void capture_close(capture *c);

#endif
