/* Capture against real GStreamer pipelines, when things go wrong: a clear error for each
 * failure class at open (missing or undecodable file, no V4L2 device, a bad user pipeline,
 * not-negotiated, a bad model input), loss and recovery through the bus watch on a running
 * main context, and close waking a blocked pull. Frames: test_pipeline_capture.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "capture_test.h"

/* ---- file source ------------------------------------------------------------------------- */

static void test_missing_file_is_clear(void **state)
{
    (void)state;
    source_config s = file_source("/nonexistent/clip.mkv");
    expect_open_fails(s, BN_ERR_IO, "cannot open video file '/nonexistent/clip.mkv': No such file or directory");
}

static void test_undecodable_file_fails_at_open(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "/tmp/bn-capture-junk-%d.mkv", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 4096; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    source_config s = file_source(path);
    /* Names the file, then GStreamer's own words, naming the element that failed. */
    char want[200];
    snprintf(want, sizeof want, "video file '%s': typefind: ", path);
    expect_open_fails(s, BN_ERR_FORMAT, want);
    unlink(path);
}

/* ---- v4l2 without a device -------------------------------------------------------------- */

static void test_missing_device(void **state)
{
    (void)state;
    expect_v4l2_open_fails("/dev/video-bn-missing", BN_ERR_NO_DEVICE,
                           "no such device '/dev/video-bn-missing'");
}

static void test_not_a_device(void **state)
{
    (void)state;
    expect_v4l2_open_fails("/etc/hostname", BN_ERR_UNSUPPORTED, "'/etc/hostname' is not a device node");
}

static void test_not_a_v4l2_device(void **state)
{
    (void)state;
    expect_v4l2_open_fails("/dev/null", BN_ERR_UNSUPPORTED, "'/dev/null' is not a V4L2 device");
}

/* With wait_for_device the daemon starts without its camera and reports it as lost. */
static void test_wait_for_missing_device(void **state)
{
    (void)state;
    GMainContext *ctx = g_main_context_new();
    state_log log = {0};
    source_config s = base_source(SOURCE_V4L2);
    snprintf(s.device, sizeof s.device, "/dev/video-bn-missing");
    capture_params p = base_params(28, 28, 1, &log, ctx);
    p.wait_for_device = true;
    capture *c = open_ok(&s, &p);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.states[0], CAPTURE_LOST);
    assert_non_null(strstr(log.messages[0], "source lost: no such device '/dev/video-bn-missing'"));
    capture_frame f;
    assert_int_equal(capture_pull(c, &f, 50), BN_ERR_SOURCE_LOST);
    /* Retries happen on the context, quietly: still one report. */
    g_usleep(350 * 1000);
    while (g_main_context_iteration(ctx, FALSE))
        ;
    capture_stats st;
    capture_get_stats(c, &st);
    assert_true(st.reconnects >= 1);
    assert_int_equal(st.state, CAPTURE_LOST);
    assert_int_equal(log.n, 1);
    capture_close(c);
    g_main_context_unref(ctx);
}

/* ---- user pipelines ------------------------------------------------------------------------ */

static void test_pipeline_kind(void **state)
{
    (void)state;
    source_config s = base_source(SOURCE_PIPELINE);
    snprintf(s.pipeline, sizeof s.pipeline,
             "videotestsrc is-live=true pattern=white ! video/x-raw,width=64,height=48,framerate=30/1");
    capture_params p = base_params(28, 28, 1, NULL, NULL);
    capture *c = open_ok(&s, &p);
    capture_frame f;
    pull_ok(c, &p, &f);
    assert_true(mean_value(&f, 0, 28) > 225.0);
    capture_release(c, &f);
    capture_stats st;
    capture_get_stats(c, &st);
    assert_non_null(strstr(st.description, "pattern=white"));
    assert_non_null(strstr(st.description, "appsink"));
    capture_close(c);
}

static void test_bad_pipeline_names_problem(void **state)
{
    (void)state;
    static const struct {
        const char *pipeline, *expect;
    } cases[] = {
        {"nosuchelement0 ! videoconvert", "no element \"nosuchelement0\""},
        {"videotestsrc ! ! videoconvert", "syntax error"},
        {"videotestsrc ! audio/x-raw", "could not link"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        source_config s = base_source(SOURCE_PIPELINE);
        snprintf(s.pipeline, sizeof s.pipeline, "%s", cases[i].pipeline);
        capture_params p = base_params(28, 28, 1, NULL, NULL);
        capture *c = NULL;
        char err[1024] = "";
        assert_int_equal(capture_open(&s, &p, &c, err, sizeof err), BN_ERR_CONFIG);
        assert_null(c);
        /* The user's pipeline is quoted in the message, and GStreamer's reason follows. */
        assert_non_null(strstr(err, cases[i].pipeline));
        assert_non_null(strstr(err, "cannot build pipeline pipeline '"));
        assert_non_null(strstr(err, cases[i].expect));
    }
}

/* A live source whose stream fails: identity error-after=N posts a real streaming ERROR
 * after N buffers. */
#define ERROR_AFTER_5                                                                         \
    "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=30/1 ! "          \
    "identity error-after=5"

static bool recovered(void *user)
{
    const state_log *log = user;
    for (int i = 0; i < log->n; i++)
        if (log->states[i] == CAPTURE_RUNNING && !strcmp(log->messages[i], "source recovered"))
            return true;
    return false;
}

static void check_loss_and_recovery(const char *pipeline, const char *reason)
{
    GMainContext *ctx = g_main_context_new();
    state_log log = {0};
    source_config s = base_source(SOURCE_PIPELINE);
    snprintf(s.pipeline, sizeof s.pipeline, "%s", pipeline);
    capture_params p = base_params(28, 28, 1, &log, ctx);
    capture *c = open_ok(&s, &p);
    assert_true(run_until(ctx, recovered, &log, 8000));
    /* running -> lost (with the reason) -> recovered, each said once. */
    assert_true(log.n >= 3);
    assert_int_equal(log.states[0], CAPTURE_RUNNING);
    assert_string_equal(log.messages[0], "source running");
    assert_int_equal(log.states[1], CAPTURE_LOST);
    assert_non_null(strstr(log.messages[1], "source lost: "));
    assert_non_null(strstr(log.messages[1], reason));
    assert_int_equal(log.states[2], CAPTURE_RUNNING);
    assert_string_equal(log.messages[2], "source recovered");
    capture_frame f;
    pull_ok(c, &p, &f);
    capture_release(c, &f);
    capture_stats st;
    capture_get_stats(c, &st);
    assert_true(st.reconnects >= 1);
    capture_close(c);
    g_main_context_unref(ctx);
}

static bool lost(void *user)
{
    const state_log *log = user;
    for (int i = 0; i < log->n; i++)
        if (log->states[i] == CAPTURE_LOST)
            return true;
    return false;
}

/* no_retry (one-shot tools): the loss is reported once to on_state and is final. */
static void test_no_retry_loss_is_final(void **state)
{
    (void)state;
    GMainContext *ctx = g_main_context_new();
    state_log log = {0};
    source_config s = base_source(SOURCE_PIPELINE);
    snprintf(s.pipeline, sizeof s.pipeline, "%s", ERROR_AFTER_5);
    capture_params p = base_params(28, 28, 1, &log, ctx);
    p.no_retry = true;
    capture *c = open_ok(&s, &p);
    assert_true(run_until(ctx, lost, &log, 8000));
    /* Longer than the first two retry delays of base_source: nothing may be retried. */
    g_usleep(600 * 1000);
    while (g_main_context_iteration(ctx, FALSE))
        ;
    assert_int_equal(log.n, 2);
    assert_int_equal(log.states[0], CAPTURE_RUNNING);
    assert_int_equal(log.states[1], CAPTURE_LOST);
    assert_non_null(strstr(log.messages[1], "source lost: "));
    assert_non_null(strstr(log.messages[1], "identity"));
    capture_frame f;
    assert_int_equal(capture_pull(c, &f, 50), BN_ERR_SOURCE_LOST);
    capture_stats st;
    capture_get_stats(c, &st);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.state, CAPTURE_LOST);
    capture_close(c);
    g_main_context_unref(ctx);
}

static void test_loss_on_error_then_recovery(void **state)
{
    (void)state;
    check_loss_and_recovery(ERROR_AFTER_5, "identity");
}

static void test_loss_on_unexpected_eos_then_recovery(void **state)
{
    (void)state;
    check_loss_and_recovery("videotestsrc is-live=true num-buffers=5 ! video/x-raw,width=64,"
                            "height=48,framerate=30/1",
                            "unexpected end of stream");
}

/* Formats that cannot be converted show up only when data flows (capssetter rewrites the
 * caps after linking): the message says not-negotiated. */
static void test_not_negotiated_is_named(void **state)
{
    (void)state;
    source_config s = base_source(SOURCE_PIPELINE);
    snprintf(s.pipeline, sizeof s.pipeline,
             "videotestsrc is-live=true ! video/x-raw,width=64,height=48,framerate=30/1 ! pngenc ! "
             "capssetter caps=\"video/x-raw\" join=false");
    capture_params p = base_params(28, 28, 1, NULL, NULL);
    capture *c = NULL;
    char err[1024] = "";
    assert_int_not_equal(capture_open(&s, &p, &c, err, sizeof err), BN_OK);
    assert_null(c);
    assert_non_null(strstr(err, "not-negotiated: the source's formats cannot be converted to the model input"));
}

typedef struct {
    capture *c;
    bn_status result;
    gint64 waited_us;
} puller;

static gpointer pull_thread(gpointer user)
{
    puller *pl = user;
    gint64 t0 = g_get_monotonic_time();
    capture_frame f;
    pl->result = capture_pull(pl->c, &f, 5000);
    pl->waited_us = g_get_monotonic_time() - t0;
    if (pl->result == BN_OK)
        capture_release(NULL, &f);
    return NULL;
}

static void test_close_wakes_blocked_pull(void **state)
{
    (void)state;
    GMainContext *ctx = g_main_context_new();
    source_config s = base_source(SOURCE_V4L2);
    snprintf(s.device, sizeof s.device, "/dev/video-bn-missing");
    capture_params p = base_params(28, 28, 1, NULL, ctx);
    p.on_state = NULL;
    p.wait_for_device = true;
    capture *c = open_ok(&s, &p);
    puller pl = {.c = c};
    GThread *t = g_thread_new("puller", pull_thread, &pl);
    g_usleep(100 * 1000);
    capture_close(c);
    g_thread_join(t);
    assert_int_equal(pl.result, BN_ERR_CLOSED);
    assert_true(pl.waited_us < 4000000);
    g_main_context_unref(ctx);
}

static void test_invalid_model_input(void **state)
{
    (void)state;
    source_config s = base_source(SOURCE_TEST);
    capture_params p = base_params(28, 28, 2, NULL, NULL);
    expect_open_fails_with(&s, &p, BN_ERR_INVALID_ARG, "28x28x2");
}

int main(void)
{
    /* Tests open files relative to the repository root. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file_is_clear),
        cmocka_unit_test(test_undecodable_file_fails_at_open),
        cmocka_unit_test(test_missing_device),
        cmocka_unit_test(test_not_a_device),
        cmocka_unit_test(test_not_a_v4l2_device),
        cmocka_unit_test(test_wait_for_missing_device),
        cmocka_unit_test(test_pipeline_kind),
        cmocka_unit_test(test_bad_pipeline_names_problem),
        cmocka_unit_test(test_loss_on_error_then_recovery),
        cmocka_unit_test(test_no_retry_loss_is_final),
        cmocka_unit_test(test_loss_on_unexpected_eos_then_recovery),
        cmocka_unit_test(test_not_negotiated_is_named),
        cmocka_unit_test(test_close_wakes_blocked_pull),
        cmocka_unit_test(test_invalid_model_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
