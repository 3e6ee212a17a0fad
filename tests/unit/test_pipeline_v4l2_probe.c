/* The V4L2 mode chooser as a pure function over format tables, control-name keys, caps
 * strings and the "what the device offers" summary. The real device is tested in tests/vm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <linux/videodev2.h>
#include <stdio.h>
#include <string.h>

#include "v4l2_probe.h"

#define YUYV V4L2_PIX_FMT_YUYV
#define MJPG V4L2_PIX_FMT_MJPEG
#define NV12 V4L2_PIX_FMT_NV12
#define H264 V4L2_PIX_FMT_H264
#define RGB3 V4L2_PIX_FMT_RGB24

#define RAW(f, w, h, fps) {f, w, h, fps, 1, false, false}
#define JPG(w, h, fps) {MJPG, w, h, fps, 1, true, false}

/* A typical UVC webcam: YUYV only reaches 30 fps at small sizes, MJPEG everywhere. */
static const v4l2_mode uvc[] = {
    RAW(YUYV, 640, 480, 30), RAW(YUYV, 640, 480, 15), RAW(YUYV, 320, 240, 30),
    RAW(YUYV, 1280, 720, 10), RAW(YUYV, 1280, 720, 5), RAW(YUYV, 1920, 1080, 5),
    JPG(640, 480, 30),        JPG(1280, 720, 30),      JPG(1920, 1080, 30),
    JPG(320, 240, 30),        {H264, 1920, 1080, 30, 1, true, false},
};

typedef struct {
    const char *what;
    int w, h, fps;
    source_format pref;
    uint32_t fourcc;
    int ew, eh, efps;   /* expected; ew = 0: no mode */
} choose_case;

static const choose_case cases[] = {
    {"raw reaches the rate: raw", 640, 480, 30, PIXFMT_AUTO, YUYV, 640, 480, 30},
    {"lowest rate that reaches fps", 640, 480, 15, PIXFMT_AUTO, YUYV, 640, 480, 15},
    {"raw too slow at 720p: MJPEG", 1280, 720, 30, PIXFMT_AUTO, MJPG, 1280, 720, 30},
    {"raw forced: fastest raw at 720p", 1280, 720, 30, PIXFMT_RAW, YUYV, 640, 480, 30},
    {"raw forced, slow rate ok: 720p", 1280, 720, 10, PIXFMT_RAW, YUYV, 1280, 720, 10},
    {"mjpeg forced", 640, 480, 30, PIXFMT_MJPEG, MJPG, 640, 480, 30},
    {"smaller request: smallest covering", 300, 200, 30, PIXFMT_AUTO, YUYV, 320, 240, 30},
    {"1080p30 only as MJPEG", 1920, 1080, 30, PIXFMT_AUTO, MJPG, 1920, 1080, 30},
    {"rate nobody reaches: fastest", 640, 480, 60, PIXFMT_AUTO, YUYV, 640, 480, 30},
};

static void test_choose_uvc_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const choose_case *k = &cases[i];
        int idx = v4l2_choose_mode(uvc, sizeof uvc / sizeof uvc[0], k->w, k->h, k->fps, k->pref);
        if (idx < 0 || uvc[idx].fourcc != k->fourcc || uvc[idx].width != k->ew ||
            uvc[idx].height != k->eh || uvc[idx].fps_num != k->efps) {
            char cc[5] = "-";
            if (idx >= 0)
                v4l2_fourcc_str(uvc[idx].fourcc, cc);
            fail_msg("case '%s': got %s %dx%d@%d", k->what, cc, idx >= 0 ? uvc[idx].width : 0,
                     idx >= 0 ? uvc[idx].height : 0, idx >= 0 ? uvc[idx].fps_num : 0);
        }
    }
}

static void test_choose_skips_unusable(void **state)
{
    (void)state;
    /* Emulated (libv4l2-only) and unmapped formats are never chosen, even when they fit best. */
    const v4l2_mode t[] = {
        {RGB3, 640, 480, 30, 1, false, true},
        {H264, 640, 480, 30, 1, true, false},
        RAW(NV12, 1280, 720, 30),
    };
    int idx = v4l2_choose_mode(t, 3, 640, 480, 30, PIXFMT_AUTO);
    assert_int_equal(idx, 2);
    assert_int_equal(v4l2_choose_mode(t, 2, 640, 480, 30, PIXFMT_AUTO), -1);
    assert_int_equal(v4l2_choose_mode(t, 3, 640, 480, 30, PIXFMT_MJPEG), -1);
    assert_int_equal(v4l2_choose_mode(NULL, 0, 640, 480, 30, PIXFMT_AUTO), -1);
}

static void test_fractional_rates(void **state)
{
    (void)state;
    /* 30000/1001 (29.97) counts as reaching 29 but not 30; 30/1 then wins. */
    const v4l2_mode t[] = {
        {YUYV, 640, 480, 30000, 1001, false, false},
        {YUYV, 640, 480, 30, 1, false, false},
    };
    assert_int_equal(v4l2_choose_mode(t, 2, 640, 480, 29, PIXFMT_AUTO), 0);
    assert_int_equal(v4l2_choose_mode(t, 2, 640, 480, 30, PIXFMT_AUTO), 1);
}

static void test_caps_strings(void **state)
{
    (void)state;
    char buf[160];
    v4l2_mode m = RAW(YUYV, 640, 480, 30);
    assert_true(v4l2_mode_caps(&m, buf, sizeof buf));
    assert_string_equal(buf, "video/x-raw,format=YUY2,width=640,height=480,framerate=30/1");
    v4l2_mode j = JPG(1280, 720, 30);
    assert_true(v4l2_mode_caps(&j, buf, sizeof buf));
    assert_string_equal(buf, "image/jpeg,width=1280,height=720,framerate=30/1");
    v4l2_mode h = {H264, 1920, 1080, 30, 1, true, false};
    assert_false(v4l2_mode_caps(&h, buf, sizeof buf));
    assert_string_equal(v4l2_fourcc_gst(V4L2_PIX_FMT_GREY), "GRAY8");
    char cc[5];
    v4l2_fourcc_str(V4L2_PIX_FMT_Y16, cc);
    assert_string_equal(cc, "Y16");
}

static void test_control_keys(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"Brightness", "brightness"},
        {"White Balance, Automatic", "white_balance_automatic"},
        {"Exposure Time, Absolute", "exposure_time_absolute"},
        {"  Gain  ", "gain"},
        {"Power Line Frequency", "power_line_frequency"},
        {"Test Pattern 2", "test_pattern_2"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        char out[32];
        v4l2_control_key(pairs[i][0], out, sizeof out);
        assert_string_equal(out, pairs[i][1]);
    }
    char small[6];
    v4l2_control_key("Brightness", small, sizeof small);
    assert_string_equal(small, "brigh");
}

static void test_describe_modes(void **state)
{
    (void)state;
    char buf[512];
    v4l2_describe_modes(uvc, 4, buf, sizeof buf);
    /* One entry per format x size at its best rate. */
    assert_string_equal(buf, "YUYV 640x480@30, YUYV 320x240@30, YUYV 1280x720@10");
    char tiny[20];
    v4l2_describe_modes(uvc, sizeof uvc / sizeof uvc[0], tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_string_equal(tiny + sizeof tiny - 4, "...");
}

static void test_probe_missing_device(void **state)
{
    (void)state;
    v4l2_probe_info info;
    char err[512];
    assert_int_equal(v4l2_probe_device("/dev/video-bn-none", &info, err, sizeof err),
                     BN_ERR_NO_DEVICE);
    assert_non_null(strstr(err, "no such device '/dev/video-bn-none'"));
    assert_int_equal(info.n_modes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choose_uvc_table),
        cmocka_unit_test(test_choose_skips_unusable),
        cmocka_unit_test(test_fractional_rates),
        cmocka_unit_test(test_caps_strings),
        cmocka_unit_test(test_control_keys),
        cmocka_unit_test(test_describe_modes),
        cmocka_unit_test(test_probe_missing_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
