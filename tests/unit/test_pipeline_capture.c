/* Capture against real GStreamer pipelines, the frames it delivers: test source (size,
 * channels, content, aspect modes, crops, drops with a slow consumer) and the bundled sample
 * clip (content checked against the Fashion-MNIST image it shows, real-time playback, end of
 * stream, loop). Failures and recovery: test_pipeline_capture_errors.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <zlib.h>

#include "capture_test.h"

#define SAMPLE_CLIP "samples/fmnist-sample.mkv"
#define SAMPLE_TRUTH "samples/fmnist-sample.truth.csv"
#define FMNIST_IMAGES "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"

/* ---- test source ------------------------------------------------------------------------ */

static void test_source_delivers_model_sized_gray_frames(void **state)
{
    (void)state;
    state_log log = {0};
    source_config s = base_source(SOURCE_TEST);
    snprintf(s.pattern, sizeof s.pattern, "white");
    capture_params p = base_params(28, 28, 1, &log, NULL);
    capture *c = open_ok(&s, &p);
    uint64_t last_seq = 0;
    for (int i = 0; i < 3; i++) {
        capture_frame f;
        pull_ok(c, &p, &f);
        assert_true(f.stride >= 28);
        assert_true(f.seq > last_seq);
        last_seq = f.seq;
        /* Captured within the last second, in CLOCK_MONOTONIC terms. */
        uint64_t now = now_ns();
        assert_true(f.capture_mono_ns <= now);
        assert_true(f.capture_mono_ns + 1000000000ull > now);
        assert_true(mean_value(&f, 0, 28) > 225.0);   /* white stays white through the conversion */
        capture_release(c, &f);
    }
    capture_stats st;
    capture_get_stats(c, &st);
    assert_int_equal(st.state, CAPTURE_RUNNING);
    assert_non_null(strstr(st.description, "videotestsrc"));
    assert_non_null(strstr(st.description, "format=GRAY8,width=28,height=28"));
    capture_close(c);
}

static void test_source_rgb_black(void **state)
{
    (void)state;
    source_config s = base_source(SOURCE_TEST);
    snprintf(s.pattern, sizeof s.pattern, "black");
    capture_params p = base_params(32, 24, 3, NULL, NULL);
    p.on_state = NULL;
    capture *c = open_ok(&s, &p);
    capture_frame f;
    pull_ok(c, &p, &f);
    assert_true(f.stride >= 32 * 3);
    assert_true(mean_value(&f, 0, 24) < 20.0);
    capture_release(c, &f);
    capture_close(c);
}
static void test_unknown_pattern_lists_known(void **state)
{
    (void)state;
    source_config s = base_source(SOURCE_TEST);
    snprintf(s.pattern, sizeof s.pattern, "plaid");
    expect_open_fails(s, BN_ERR_CONFIG, "unknown test pattern 'plaid'");
    expect_open_fails(s, BN_ERR_CONFIG, "smpte");
}

/* Letterbox keeps the whole (wide) picture and pads; crop fills the frame; stretch too. */
static void test_aspect_modes(void **state)
{
    (void)state;
    static const struct {
        aspect_mode mode;
        bool borders;
    } cases[] = {{ASPECT_LETTERBOX, true}, {ASPECT_CROP, false}, {ASPECT_STRETCH, false}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        source_config s = base_source(SOURCE_TEST);
        snprintf(s.pattern, sizeof s.pattern, "white");
        s.width = 320;
        s.height = 80;   /* 4:1 into a square model input */
        s.aspect = cases[i].mode;
        capture_params p = base_params(32, 32, 1, NULL, NULL);
        capture *c = open_ok(&s, &p);
        capture_frame f;
        pull_ok(c, &p, &f);
        double top = mean_value(&f, 0, 4), mid = mean_value(&f, 14, 18);
        assert_true(mid > 225.0);
        if (cases[i].borders)
            assert_true(top < 30.0);
        else
            assert_true(top > 225.0);
        capture_release(c, &f);
        capture_close(c);
    }
}

/* Crop with nothing to crop: the source already has the model's aspect ratio (640x480 into
 * 64x48). The pipeline once held two caps filters in a row here and did not parse. */
static void test_crop_same_aspect(void **state)
{
    (void)state;
    source_config s = base_source(SOURCE_TEST);
    snprintf(s.pattern, sizeof s.pattern, "white");
    s.width = 640;
    s.height = 480;
    s.aspect = ASPECT_CROP;
    capture_params p = base_params(64, 48, 3, NULL, NULL);
    capture *c = open_ok(&s, &p);
    capture_stats st;
    capture_get_stats(c, &st);
    assert_null(strstr(st.description, "videocrop"));
    capture_frame f;
    pull_ok(c, &p, &f);
    assert_true(mean_value(&f, 0, 48) > 225.0);
    capture_release(c, &f);
    capture_close(c);
}

/* A user pipeline whose size is unknown until negotiation is cropped by aspectratiocrop;
 * one ending in sized caps gets the fixed crop. Both fill a square input from a 4:1 source. */
static void test_pipeline_crop_paths(void **state)
{
    (void)state;
    static const char *const pipelines[] = {
        "videotestsrc is-live=true pattern=white ! video/x-raw,width=320,height=80,framerate=30/1 ! identity",
        "videotestsrc is-live=true pattern=white ! video/x-raw,width=320,height=80,framerate=30/1",
    };
    static const char *const expect[] = {"aspectratiocrop aspect-ratio=1/1", "videocrop left=48 right=48"};
    for (size_t i = 0; i < 2; i++) {
        source_config s = base_source(SOURCE_PIPELINE);
        s.aspect = ASPECT_CROP;
        snprintf(s.pipeline, sizeof s.pipeline, "%s", pipelines[i]);
        capture_params p = base_params(32, 32, 1, NULL, NULL);
        capture *c = open_ok(&s, &p);
        capture_stats st;
        capture_get_stats(c, &st);
        assert_non_null(strstr(st.description, expect[i]));
        capture_frame f;
        pull_ok(c, &p, &f);
        assert_true(mean_value(&f, 0, 4) > 225.0);   /* cropped, not letterboxed */
        capture_release(c, &f);
        capture_close(c);
    }
}

/* source.crop: videocrop before the scaler, with edges fixed at build (fixed caps at the end
 * of a pipeline) or from the caps (identity at the end); the region seen is the one asked
 * for (SMPTE's first bar is light grey, its seventh blue); a crop outside the frame fails
 * with BN_ERR_SOURCE_LOST naming the crop and the frame, with the config origin if given. */
static void test_source_crop(void **state)
{
    (void)state;
    static const char *const pipelines[] = {
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=140,height=120,framerate=30/1",
        "videotestsrc is-live=true pattern=smpte ! video/x-raw,width=140,height=120,framerate=30/1 ! identity",
    };
    for (size_t i = 0; i < 2; i++) {
        for (int bar = 0; bar < 2; bar++) {
            source_config s = base_source(SOURCE_PIPELINE);
            snprintf(s.pipeline, sizeof s.pipeline, "%s", pipelines[i]);
            s.crop = (source_crop){bar ? 122 : 2, 0, 16, 60};
            s.aspect = ASPECT_STRETCH;   /* the picture fills the frame */
            capture_params p = base_params(16, 16, 1, NULL, NULL);
            capture *c = open_ok(&s, &p);
            capture_stats st;
            capture_get_stats(c, &st);
            assert_non_null(strstr(st.description, i == 0 ? "videocrop name=bncrop left=" : "videocrop name=bncrop !"));
            if (i == 0 && bar)
                assert_non_null(strstr(st.description, "left=122 top=0 right=2 bottom=60"));
            capture_frame f;
            pull_ok(c, &p, &f);
            double m = mean_value(&f, 2, 14);
            if (bar ? m > 80.0 : m < 150.0)
                fail_msg("pipeline %zu, bar %d: mean %.1f", i, bar, m);
            capture_release(c, &f);
            capture_close(c);
        }
    }
    source_config s = base_source(SOURCE_PIPELINE);
    snprintf(s.pipeline, sizeof s.pipeline, "%s",
             "videotestsrc pattern=smpte ! video/x-raw,width=140,height=120 ! identity");
    s.crop = (source_crop){130, 0, 20, 10};
    expect_open_fails(s, BN_ERR_SOURCE_LOST,
                      "source.crop 130,0 20x10 lies outside the 140x120 frame (x + width = 150 > 140)");
    s = base_source(SOURCE_TEST);
    s.crop = (source_crop){0, 100, 20, 30};
    capture_params p = base_params(28, 28, 1, NULL, NULL);
    p.crop_origin = "cam.yaml:7:3: key 'source.crop'";
    expect_open_fails_with(&s, &p, BN_ERR_SOURCE_LOST,
                           "test source: cam.yaml:7:3: key 'source.crop': 0,100 20x30 lies outside "
                           "the 160x120 frame (y + height = 130 > 120)");
}

/* A consumer slower than the source gets the newest frame; the rest are counted. */
static void test_slow_consumer_counts_drops(void **state)
{
    (void)state;
    source_config s = base_source(SOURCE_TEST);
    capture_params p = base_params(28, 28, 1, NULL, NULL);
    capture *c = open_ok(&s, &p);
    uint64_t dropped = 0;
    for (int i = 0; i < 3; i++) {
        capture_frame f;
        pull_ok(c, &p, &f);
        if (i > 0)
            dropped += f.dropped;
        capture_release(c, &f);
        g_usleep(200 * 1000);   /* 6 frames arrive at 30 fps while we "infer" */
    }
    assert_true(dropped >= 2);
    capture_stats st;
    capture_get_stats(c, &st);
    assert_int_equal(st.frames_pulled, 3);
    assert_true(st.frames_dropped >= dropped);
    /* Every frame that came in was either pulled, dropped, or is waiting in the slot. */
    assert_true(st.frames_in >= st.frames_pulled + st.frames_dropped);
    assert_true(st.frames_in <= st.frames_pulled + st.frames_dropped + 1);
    capture_close(c);
}

/* ---- file source: the bundled clip ---------------------------------------------------- */

static unsigned char *load_fmnist_images(int *count)
{
    gzFile gz = gzopen(FMNIST_IMAGES, "rb");
    if (!gz)
        return NULL;
    unsigned char hdr[16];
    if (gzread(gz, hdr, 16) != 16) {
        gzclose(gz);
        return NULL;
    }
    int n = (hdr[4] << 24) | (hdr[5] << 16) | (hdr[6] << 8) | hdr[7];
    unsigned char *buf = malloc((size_t)n * 784);
    if (!buf || gzread(gz, buf, (unsigned)n * 784) != n * 784) {
        free(buf);
        gzclose(gz);
        return NULL;
    }
    gzclose(gz);
    *count = n;
    return buf;
}

typedef struct {
    int first, last, label, image;
} truth_row;

static int load_truth(truth_row *rows, int max)
{
    FILE *f = fopen(SAMPLE_TRUTH, "r");
    if (!f)
        return -1;
    char line[256];
    int n = 0;
    if (!fgets(line, sizeof line, f)) {   /* header */
        fclose(f);
        return -1;
    }
    while (n < max && fgets(line, sizeof line, f)) {
        char name[64];
        if (sscanf(line, "%d,%d,%d,%63[^,],%d", &rows[n].first, &rows[n].last, &rows[n].label,
                   name, &rows[n].image) == 5)
            n++;
    }
    fclose(f);
    return n;
}

static double frame_diff(const capture_frame *f, const unsigned char *img)
{
    double sum = 0;
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++)
            sum += abs((int)f->data[(size_t)y * f->stride + (size_t)x] - (int)img[y * 28 + x]);
    return sum / 784.0;
}

/* Decoded, scaled 280 -> 28 frames show the test image the truth file names for that
 * frame number, and not the images around it. */
static void test_file_sample_clip_matches_truth(void **state)
{
    (void)state;
    int n_images = 0;
    unsigned char *images = load_fmnist_images(&n_images);
    assert_non_null(images);
    truth_row rows[256];
    int n_rows = load_truth(rows, 256);
    assert_true(n_rows >= 100);

    source_config s = file_source(SAMPLE_CLIP);
    s.aspect = ASPECT_CROP;   /* configs/sample.yaml's choice: aspectratiocrop on decoded frames */
    capture_params p = base_params(28, 28, 1, NULL, NULL);
    capture *c = open_ok(&s, &p);
    int checked = 0;
    for (int i = 0; i < 40; i++) {
        capture_frame f;
        bn_status st = capture_pull(c, &f, 3000);
        if (st == BN_ERR_EOS)
            break;
        assert_int_equal(st, BN_OK);
        int frame_no = (int)((f.pts_ns * 30 + 500000000ull) / 1000000000ull);
        const truth_row *r = NULL;
        for (int k = 0; k < n_rows && !r; k++)
            if (frame_no >= rows[k].first && frame_no <= rows[k].last)
                r = &rows[k];
        assert_non_null(r);
        assert_true(r->image >= 0 && r->image < n_images);
        double d = frame_diff(&f, images + (size_t)r->image * 784);
        assert_true(d < 6.0);
        /* ... and differs from the previous / next image in the clip. */
        const truth_row *other = r == &rows[0] ? &rows[1] : r - 1;
        assert_true(frame_diff(&f, images + (size_t)other->image * 784) > d + 10.0);
        checked++;
        capture_release(c, &f);
        g_usleep(2000);
    }
    assert_true(checked >= 10);
    capture_close(c);
    free(images);
}

/* Default timing for files: real time, as a camera would deliver the frames. */
static void test_file_plays_in_real_time_by_default(void **state)
{
    (void)state;
    source_config s = file_source(SAMPLE_CLIP);
    capture_params p = base_params(28, 28, 1, NULL, NULL);
    p.no_sync = false;
    capture *c = open_ok(&s, &p);
    capture_frame f;
    pull_ok(c, &p, &f);
    capture_release(c, &f);
    g_usleep(500 * 1000);
    pull_ok(c, &p, &f);
    /* Half a second later the clip is about half a second in, not seconds ahead. */
    assert_true(f.pts_ns < 2000000000ull);
    assert_true(f.pts_ns >= 300000000ull);
    capture_release(c, &f);
    capture_close(c);
}

static bool log_has_state(void *user)
{
    const state_log *log = user;
    return log->n > 0 && log->states[log->n - 1] == CAPTURE_EOS;
}

/* Setup of the tests that play a short clip: *state is the path of a fresh 20-frame file,
 * which remove_short_clip deletes after the test, passed or failed. */
static int make_short_clip(void **state)
{
    static char path[128];
    snprintf(path, sizeof path, "/tmp/bn-capture-test-%d.mkv", (int)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "gst-launch-1.0 -q videotestsrc num-buffers=20 ! video/x-raw,width=64,height=48,"
             "framerate=30/1 ! vp8enc deadline=1 ! matroskamux ! filesink location=%s", path);
    if (system(cmd) != 0) {
        print_error("cannot make the short clip: %s\n", cmd);
        return -1;
    }
    *state = path;
    return 0;
}

static int remove_short_clip(void **state)
{
    unlink(*state);
    return 0;
}

static void test_file_eos_without_loop(void **state)
{
    const char *path = *state;
    GMainContext *ctx = g_main_context_new();
    state_log log = {0};
    source_config s = file_source(path);
    capture_params p = base_params(28, 28, 1, &log, ctx);
    capture *c = open_ok(&s, &p);
    assert_true(run_until(ctx, log_has_state, &log, 5000));
    bn_status st;
    capture_frame f;
    while ((st = capture_pull(c, &f, 1000)) == BN_OK)
        capture_release(c, &f);
    assert_int_equal(st, BN_ERR_EOS);
    assert_string_equal(log.messages[log.n - 1], "end of stream");
    capture_close(c);
    g_main_context_unref(ctx);
}

/* A slow consumer of an unsynchronised file (no_sync): with every_frame it gets all 20 frames
 * in order and nothing dropped; without it (the control) the decoder overwrites frames. */
static void test_file_every_frame(void **state)
{
    const char *path = *state;
    for (int every = 1; every >= 0; every--) {
        GMainContext *ctx = g_main_context_new();
        state_log log = {0};
        source_config s = file_source(path);
        capture_params p = base_params(28, 28, 1, &log, ctx);
        p.every_frame = every;
        capture *c = open_ok(&s, &p);
        int got = 0, timeouts = 0;
        uint64_t dropped = 0, last_pts = 0;
        bn_status st;
        capture_frame f;
        for (;;) {
            while (g_main_context_iteration(ctx, FALSE))
                ;
            st = capture_pull(c, &f, 100);
            if (st == BN_ERR_TIMEOUT && ++timeouts < 50)
                continue;
            if (st != BN_OK)
                break;
            got++;
            dropped += f.dropped;
            if (got > 1)
                assert_true(f.pts_ns > last_pts);
            last_pts = f.pts_ns;
            capture_release(c, &f);
            g_usleep(15 * 1000); /* slower than the decoder */
        }
        assert_int_equal(st, BN_ERR_EOS);
        if (every) {
            assert_int_equal(got, 20);
            assert_int_equal((int)dropped, 0);
        } else {
            assert_true(got < 20);
            assert_true(dropped > 0);
        }
        capture_close(c);
        g_main_context_unref(ctx);
    }
}

static bool frames_beyond_20(void *user)
{
    capture_stats st;
    capture_get_stats(user, &st);
    return st.frames_in > 45;
}

static void test_file_loop_restarts(void **state)
{
    const char *path = *state;
    GMainContext *ctx = g_main_context_new();
    state_log log = {0};
    source_config s = file_source(path);
    s.loop = true;
    capture_params p = base_params(28, 28, 1, &log, ctx);
    capture *c = open_ok(&s, &p);
    /* 20-frame clip: more than two passes arrive and nothing reports a loss or the end. */
    assert_true(run_until(ctx, frames_beyond_20, c, 8000));
    for (int i = 0; i < log.n; i++)
        assert_int_equal(log.states[i], CAPTURE_RUNNING);
    capture_close(c);
    g_main_context_unref(ctx);
}

int main(void)
{
    /* Tests open files relative to the repository root. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_source_delivers_model_sized_gray_frames),
        cmocka_unit_test(test_source_rgb_black),
        cmocka_unit_test(test_unknown_pattern_lists_known),
        cmocka_unit_test(test_aspect_modes),
        cmocka_unit_test(test_crop_same_aspect),
        cmocka_unit_test_setup_teardown(test_file_every_frame, make_short_clip, remove_short_clip),
        cmocka_unit_test(test_pipeline_crop_paths),
        cmocka_unit_test(test_source_crop),
        cmocka_unit_test(test_slow_consumer_counts_drops),
        cmocka_unit_test(test_file_sample_clip_matches_truth),
        cmocka_unit_test(test_file_plays_in_real_time_by_default),
        cmocka_unit_test_setup_teardown(test_file_eos_without_loop, make_short_clip, remove_short_clip),
        cmocka_unit_test_setup_teardown(test_file_loop_restarts, make_short_clip, remove_short_clip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
