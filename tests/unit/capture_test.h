/* What the capture tests share (test_pipeline_capture.c, test_pipeline_capture_errors.c):
 * sources and params for a 28x28 model input, opening and pulling that must succeed or fail
 * with a given message, a state log, and running a main context until something happens.
 * Functions are static inline so that each test program uses only what it needs. */
#ifndef BN_TEST_CAPTURE_H
#define BN_TEST_CAPTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"


typedef struct {
    capture_state states[32];
    char messages[32][320];
    int n;
} state_log;

static inline void record_state(capture_state st, const char *msg, void *user)
{
    state_log *log = user;
    if (log->n < 32) {
        log->states[log->n] = st;
        snprintf(log->messages[log->n], sizeof log->messages[0], "%s", msg);
        log->n++;
    }
}

static inline source_config base_source(source_kind kind)
{
    source_config s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.width = 160;
    s.height = 120;
    s.fps = 30;
    s.aspect = ASPECT_STRETCH;
    s.retry_initial_ms = 100;
    s.retry_max_ms = 400;
    return s;
}

/* A file source playing `path`. */
static inline source_config file_source(const char *path)
{
    source_config s = base_source(SOURCE_FILE);
    snprintf(s.path, sizeof s.path, "%s", path);
    return s;
}

static inline capture_params base_params(int w, int h, int ch, state_log *log,
                                         GMainContext *ctx)
{
    capture_params p = {.width = w, .height = h, .channels = ch, .context = ctx,
                        .on_state = record_state, .user = log, .no_sync = true};
    return p;
}

/* capture_open of `s` must succeed; the error it gave otherwise is the failure message. */
static inline capture *open_ok(const source_config *s, const capture_params *p)
{
    capture *c = NULL;
    char err[512] = "";
    bn_status st = capture_open(s, p, &c, err, sizeof err);
    if (st != BN_OK)
        fail_msg("capture_open: status %d: %s", (int)st, err);
    assert_non_null(c);
    return c;
}

/* capture_pull must deliver a frame within 3 s, of the model input's size (p). */
static inline void pull_ok(capture *c, const capture_params *p, capture_frame *f)
{
    assert_int_equal(capture_pull(c, f, 3000), BN_OK);
    assert_int_equal(f->width, p->width);
    assert_int_equal(f->height, p->height);
    assert_int_equal(f->channels, p->channels);
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline gboolean wake_once(gpointer user)
{
    (void)user;
    return G_SOURCE_REMOVE;
}

/* Iterates ctx until pred(user) holds or timeout_ms passed. */
static inline bool run_until(GMainContext *ctx, bool (*pred)(void *), void *user,
                             int timeout_ms)
{
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    while (!pred(user)) {
        if (g_get_monotonic_time() > end)
            return false;
        /* Bounded wait: a timeout source wakes the iteration so the deadline is checked. */
        GSource *t = g_timeout_source_new(20);
        g_source_set_callback(t, wake_once, NULL, NULL);
        g_source_attach(t, ctx);
        g_main_context_iteration(ctx, TRUE);
        g_source_destroy(t);
        g_source_unref(t);
    }
    return true;
}

static inline double mean_value(const capture_frame *f, int y0, int y1)
{
    double sum = 0;
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = 0; x < f->width * f->channels; x++, n++)
            sum += f->data[(size_t)y * f->stride + (size_t)x];
    return n ? sum / n : 0;
}


/* capture_open of `s` with `p` must fail with `want`, give no capture and an error
 * containing `msg`. */
static inline void expect_open_fails_with(const source_config *s, const capture_params *p,
                                          bn_status want, const char *msg)
{
    capture *c = NULL;
    char err[1024] = "";
    assert_int_equal(capture_open(s, p, &c, err, sizeof err), want);
    assert_null(c);
    if (!strstr(err, msg))
        fail_msg("error '%s' lacks '%s'", err, msg);
}

/* The same for a 28x28 gray model input. */
static inline void expect_open_fails(source_config s, bn_status want, const char *msg)
{
    capture_params p = base_params(28, 28, 1, NULL, NULL);
    expect_open_fails_with(&s, &p, want, msg);
}

/* The same for a V4L2 source on `device`. */
static inline void expect_v4l2_open_fails(const char *device, bn_status want, const char *msg)
{
    source_config s = base_source(SOURCE_V4L2);
    snprintf(s.device, sizeof s.device, "%s", device);
    expect_open_fails(s, want, msg);
}


#endif
